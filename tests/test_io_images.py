"""Tests of vistool.io.images: every input kind and mode, EXIF orientation, bad inputs.

All inputs are real files, bytes and arrays made on the spot.
"""

from __future__ import annotations

import dataclasses
import http.server
import io
import os
import socket
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vistool.errors import ImageLoadError, VistoolError
from vistool.io import LoadedImage, load_image
from vistool.io import images as images_module

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# --- helpers ---------------------------------------------------------------------------


def close_to(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 60) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


def jpeg_bytes(image: Image.Image, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    kwargs: dict = {"quality": 95, "subsampling": 0}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(width: int, height: int, idat: bytes) -> bytes:
    """A 1-bit grayscale PNG with the given header size and compressed pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def open_handles_to(path: Path) -> list[str]:
    """Paths of this process's open file descriptors that point at `path` (Linux)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path.resolve()):
                found.append(fd)
        except OSError:
            pass
    return found


def rgb_at(loaded: LoadedImage, x: int, y: int) -> tuple[int, int, int]:
    return loaded.image.getpixel((x, y))


# --- EXIF orientation ------------------------------------------------------------------

# Stored image: 60x40, red block at the stored top-left, green block at the stored
# top-right. Where a viewer shows those corners for each EXIF orientation value, from
# the EXIF specification ("row 0 is the visual ..., column 0 is the visual ..."):
EXPECTED_CORNERS = {
    1: ("top-left", "top-right"),
    2: ("top-right", "top-left"),
    3: ("bottom-right", "bottom-left"),
    4: ("bottom-left", "bottom-right"),
    5: ("top-left", "bottom-left"),
    6: ("top-right", "bottom-right"),
    7: ("bottom-right", "top-right"),
    8: ("bottom-left", "top-left"),
}


def corner_point(corner: str, width: int, height: int) -> tuple[int, int]:
    vertical, horizontal = corner.split("-")
    x = 3 if horizontal == "left" else width - 4
    y = 3 if vertical == "top" else height - 4
    return x, y


def marked_image() -> Image.Image:
    image = Image.new("RGB", (60, 40), BLUE)
    image.paste(RED, (0, 0, 12, 10))
    image.paste(GREEN, (48, 0, 60, 10))
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_displayed_size_and_corners(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"orientation_{orientation}.jpg"
    path.write_bytes(jpeg_bytes(marked_image(), orientation))

    loaded = load_image(path)

    expected_size = (60, 40) if orientation <= 4 else (40, 60)
    assert loaded.size == expected_size
    assert loaded.image.size == expected_size
    assert (loaded.width, loaded.height) == expected_size
    red_corner, green_corner = EXPECTED_CORNERS[orientation]
    width, height = expected_size
    assert close_to(rgb_at(loaded, *corner_point(red_corner, width, height)), RED)
    assert close_to(rgb_at(loaded, *corner_point(green_corner, width, height)), GREEN)
    # The other two corners are the blue background.
    for corner in {"top-left", "top-right", "bottom-left", "bottom-right"} - {red_corner, green_corner}:
        assert close_to(rgb_at(loaded, *corner_point(corner, width, height)), BLUE)


def test_exif_orientation_applies_to_bytes_and_opened_pil_images() -> None:
    data = jpeg_bytes(marked_image(), 6)
    assert load_image(data).size == (40, 60)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.size == (60, 40)  # as stored
        loaded = load_image(opened)
    assert loaded.size == (40, 60)
    assert close_to(rgb_at(loaded, 36, 3), RED)  # top-right, as displayed


# --- accepted input kinds --------------------------------------------------------------


def test_path_str_path_bytes_and_pil_inputs(tmp_path: Path) -> None:
    image = marked_image()
    path = tmp_path / "marked.png"
    path.write_bytes(png_bytes(image))

    inputs = [
        (str(path), str(path)),
        (path, str(path)),
        (path.read_bytes(), f"<bytes {path.stat().st_size}>"),
        (bytearray(path.read_bytes()), f"<bytes {path.stat().st_size}>"),
        (memoryview(path.read_bytes()), f"<bytes {path.stat().st_size}>"),
        (image, "<PIL image>"),
    ]
    for value, source in inputs:
        loaded = load_image(value)
        assert isinstance(loaded, LoadedImage)
        assert loaded.image.mode == "RGB"
        assert loaded.size == (60, 40)
        assert loaded.source == source
        assert rgb_at(loaded, 3, 3) == RED  # PNG is lossless
        assert rgb_at(loaded, 56, 3) == GREEN


def test_pil_input_is_copied_not_shared() -> None:
    image = Image.new("RGB", (8, 6), RED)
    loaded = load_image(image)
    image.paste(BLUE, (0, 0, 8, 6))
    assert rgb_at(loaded, 0, 0) == RED
    assert loaded.image is not image


def test_loaded_image_is_frozen_and_passes_through() -> None:
    loaded = load_image(Image.new("RGB", (8, 6)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.width = 3  # type: ignore[misc]
    assert load_image(loaded) is loaded


@pytest.mark.parametrize(
    ("array", "source", "pixel"),
    [
        (np.full((40, 60), 200, np.uint8), "<numpy array 40x60>", (200, 200, 200)),
        (np.full((40, 60, 1), 7, np.uint8), "<numpy array 40x60x1>", (7, 7, 7)),
        (np.full((40, 60, 2), [90, 255], np.uint8), "<numpy array 40x60x2>", (90, 90, 90)),
        (np.full((40, 60, 2), [90, 0], np.uint8), "<numpy array 40x60x2>", WHITE),  # transparent
        (np.full((40, 60, 3), [255, 0, 0], np.uint8), "<numpy array 40x60x3>", RED),  # RGB order kept
        (np.full((40, 60, 4), [0, 0, 255, 255], np.uint8), "<numpy array 40x60x4>", BLUE),
        (np.full((40, 60, 4), [0, 0, 255, 0], np.uint8), "<numpy array 40x60x4>", WHITE),  # on white
        (np.full((40, 60, 4), [0, 0, 0, 128], np.uint8), "<numpy array 40x60x4>", (127, 127, 127)),
        (np.full((40, 60), 65535, np.uint16), "<numpy array 40x60>", WHITE),
        (np.full((40, 60, 3), [65535, 32896, 0], np.uint16), "<numpy array 40x60x3>", (255, 128, 0)),
        (np.full((40, 60, 3), [1.0, 0.5, 0.0], np.float32), "<numpy array 40x60x3>", (255, 128, 0)),
        (np.full((40, 60), 200.0, np.float64), "<numpy array 40x60>", (200, 200, 200)),  # 0..255 floats
        (np.ones((40, 60), bool), "<numpy array 40x60>", WHITE),
    ],
)
def test_numpy_inputs(array: np.ndarray, source: str, pixel: tuple[int, int, int]) -> None:
    loaded = load_image(array)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (60, 40)
    assert loaded.source == source
    assert close_to(rgb_at(loaded, 5, 5), pixel, tolerance=1)


def test_numpy_non_contiguous_and_big_endian() -> None:
    array = np.zeros((40, 60, 3), np.uint8)
    array[..., 0] = 255
    loaded = load_image(array[:, ::-1])  # a negative-stride view
    assert loaded.size == (60, 40) and rgb_at(loaded, 0, 0) == RED
    big_endian = np.full((4, 5), 65535, dtype=">u2")
    assert rgb_at(load_image(big_endian), 0, 0) == WHITE


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((4, 5, 5), np.uint8), "unsupported array shape"),
        (np.zeros((2, 4, 5, 3), np.uint8), "unsupported array shape"),
        (np.zeros((5,), np.uint8), "unsupported array shape"),
        (np.zeros((0, 5, 3), np.uint8), "no pixels"),
        (np.zeros((4, 5), np.int64), "unsupported dtype int64"),
        (np.zeros((4, 5), np.complex64), "unsupported dtype complex64"),
        (np.zeros((4, 5), object), "unsupported dtype object"),
    ],
)
def test_numpy_bad_shape_or_dtype(array: np.ndarray, reason: str) -> None:
    with pytest.raises(ImageLoadError, match=r"cannot load image <numpy array [0-9x]+>: ") as raised:
        load_image(array)
    assert reason in str(raised.value)


def test_unsupported_input_type() -> None:
    with pytest.raises(ImageLoadError, match=r"cannot load image <int>: unsupported input type"):
        load_image(42)  # type: ignore[arg-type]


# --- every PIL mode --------------------------------------------------------------------


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (60, 40), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (30, 0, 60, 40))
    image.info["transparency"] = 0  # index 0 (left half) fully transparent
    return image


def sixteen_bit() -> Image.Image:
    array = np.zeros((40, 60), np.uint16)
    array[:, 30:] = 65535
    return Image.fromarray(array)  # mode I;16


MODE_CASES = {
    # name: (image factory, expected (left-half pixel, right-half pixel))
    "CMYK": (lambda: Image.new("CMYK", (60, 40), (0, 255, 255, 0)), (RED, RED)),
    "P+transparency": (palette_with_transparency, (WHITE, RED)),
    "P": (lambda: Image.new("RGB", (60, 40), GREEN).convert("P"), (GREEN, GREEN)),
    "PA": (lambda: palette_with_transparency().convert("PA"), (WHITE, RED)),
    "I;16": (sixteen_bit, ((0, 0, 0), WHITE)),
    "I;16B": (lambda: Image.new("I;16B", (60, 40), 32896), ((128,) * 3, (128,) * 3)),
    "I": (lambda: sixteen_bit().convert("I"), ((0, 0, 0), WHITE)),
    "L": (lambda: Image.new("L", (60, 40), 77), ((77,) * 3, (77,) * 3)),
    "LA": (lambda: Image.new("LA", (60, 40), (0, 0)), (WHITE, WHITE)),
    "RGBA": (lambda: Image.new("RGBA", (60, 40), (255, 0, 0, 255)), (RED, RED)),
    "RGBA transparent": (lambda: Image.new("RGBA", (60, 40), (255, 0, 0, 0)), (WHITE, WHITE)),
    "F 0..1": (lambda: Image.fromarray(np.full((40, 60), 0.5, np.float32)), ((128,) * 3, (128,) * 3)),
    "F 0..255": (lambda: Image.fromarray(np.full((40, 60), 100.0, np.float32)), ((100,) * 3, (100,) * 3)),
    "1": (lambda: Image.new("1", (60, 40), 1), (WHITE, WHITE)),
    "YCbCr": (lambda: Image.new("RGB", (60, 40), BLUE).convert("YCbCr"), (BLUE, BLUE)),
    "HSV": (lambda: Image.new("RGB", (60, 40), GREEN).convert("HSV"), (GREEN, GREEN)),
}


@pytest.mark.parametrize("name", MODE_CASES)
def test_every_mode_becomes_rgb(name: str) -> None:
    factory, (left, right) = MODE_CASES[name]
    image = factory()
    loaded = load_image(image)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (60, 40)
    assert close_to(rgb_at(loaded, 5, 20), left, tolerance=2), rgb_at(loaded, 5, 20)
    assert close_to(rgb_at(loaded, 55, 20), right, tolerance=2), rgb_at(loaded, 55, 20)


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        ("P+transparency", "png", (WHITE, RED)),
        ("I;16", "png", ((0, 0, 0), WHITE)),
        ("LA", "png", (WHITE, WHITE)),
        ("1", "png", (WHITE, WHITE)),
        ("F 0..1", "tiff", ((128,) * 3, (128,) * 3)),
        ("CMYK", "jpg", (RED, RED)),
        ("CMYK", "tiff", (RED, RED)),
        ("I;16", "tiff", ((0, 0, 0), WHITE)),
    ],
)
def test_modes_round_trip_through_files(
    tmp_path: Path, name: str, suffix: str, expected: tuple
) -> None:
    image = MODE_CASES[name][0]()
    path = tmp_path / f"image.{suffix}"
    image.save(path)
    with Image.open(path) as reopened:
        stored_mode = reopened.mode
    loaded = load_image(path)
    assert loaded.image.mode == "RGB", stored_mode
    assert loaded.size == (60, 40)
    left, right = expected
    assert close_to(rgb_at(loaded, 5, 20), left, tolerance=3), (stored_mode, rgb_at(loaded, 5, 20))
    assert close_to(rgb_at(loaded, 55, 20), right, tolerance=3), (stored_mode, rgb_at(loaded, 55, 20))


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (20, 10), colour) for colour in (RED, GREEN, BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(path)
    assert loaded.size == (20, 10)
    assert close_to(rgb_at(loaded, 5, 5), RED, tolerance=10)
    assert open_handles_to(path) == []


# --- file handles ----------------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
@pytest.mark.parametrize("suffix", ["jpg", "png", "tiff"])
def test_no_file_handle_left_open(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"image.{suffix}"
    marked_image().save(path)
    loaded = load_image(path)
    assert open_handles_to(path) == []
    path.unlink()  # the image is fully decoded: it no longer needs the file
    assert loaded.image.copy().getpixel((3, 3)) is not None
    assert loaded.image.getpixel((30, 30)) is not None


# --- bad inputs ------------------------------------------------------------------------


def assert_load_error(value: object, source: str, reason: str, **kwargs: object) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as raised:
        load_image(value, **kwargs)  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith(f"cannot load image {source}: "), message
    assert reason in message, message
    assert "\n" not in message
    assert isinstance(raised.value, VistoolError)
    return raised.value


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    assert_load_error(path, str(path), "no such file")
    assert_load_error(str(path), str(path), "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_load_error(tmp_path, str(tmp_path), "is a directory")


def test_empty_file_and_empty_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert_load_error(path, str(path), "empty (0 bytes)")
    assert_load_error(b"", "<bytes 0>", "empty (0 bytes)")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 20)
    assert_load_error(path, str(path), "not an image")
    assert_load_error(b"hello", "<bytes 5>", "not an image")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg(tmp_path: Path, keep: float) -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    data = jpeg_bytes(noisy)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    assert_load_error(path, str(path), "truncated")
    assert open_handles_to(path) == []


def test_truncated_png(tmp_path: Path) -> None:
    data = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)))
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    assert_load_error(path, str(path), "truncated")


def test_bomb_small_image_above_low_limit(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(png_bytes(marked_image()))
    assert_load_error(path, str(path), "60x40 = 2400 pixels exceeds the limit of 2399", max_pixels=2399)
    assert load_image(path, max_pixels=2400).size == (60, 40)
    assert_load_error(marked_image(), "<PIL image>", "exceeds the limit", max_pixels=100)
    assert_load_error(np.zeros((40, 60), np.uint8), "<numpy array 40x60>", "exceeds the limit", max_pixels=100)


def test_module_default_limit_can_be_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(png_bytes(marked_image()))
    assert images_module.DEFAULT_MAX_PIXELS == 100_000_000
    monkeypatch.setattr(images_module, "DEFAULT_MAX_PIXELS", 1000)
    assert_load_error(path, str(path), "exceeds the limit of 1000")
    assert load_image(path, max_pixels=5000).size == (60, 40)  # the keyword wins


def test_bad_max_pixels_argument() -> None:
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            load_image(marked_image(), max_pixels=bad)  # type: ignore[arg-type]


def test_bomb_header_is_checked_before_decoding(tmp_path: Path) -> None:
    # The header claims 12000x12000 (144 MP: above our default, below Pillow's own
    # hard limit) but the pixel data is cut short. Decoding it would report truncation;
    # the size check must come first.
    path = tmp_path / "claims_144mp.png"
    path.write_bytes(handmade_png(12000, 12000, zlib.compress(bytes(1000))[:20]))
    assert_load_error(path, str(path), "12000x12000 = 144000000 pixels exceeds the limit of 100000000")


@pytest.fixture(scope="module")
def real_bomb_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete, valid 1-bit 20000x20000 PNG (400 MP) of about 50 kB."""
    row = bytes(1 + 20000 // 8)  # filter byte + 2500 bytes of zero bits
    path = tmp_path_factory.mktemp("bomb") / "bomb_20000x20000.png"
    path.write_bytes(handmade_png(20000, 20000, zlib.compress(row * 20000, 9)))
    return path


def test_real_bomb_png(real_bomb_png: Path) -> None:
    assert real_bomb_png.stat().st_size < 100_000
    reason = "400000000 pixels exceeds the limit of 100000000"
    assert_load_error(real_bomb_png, str(real_bomb_png), reason)
    data = real_bomb_png.read_bytes()
    assert_load_error(data, f"<bytes {len(data)}>", "400000000 pixels exceeds the limit")
    assert open_handles_to(real_bomb_png) == []


def test_limit_above_pillows_own_guard_says_so(real_bomb_png: Path) -> None:
    assert_load_error(real_bomb_png, str(real_bomb_png), "PIL.Image.MAX_IMAGE_PIXELS", max_pixels=500_000_000)


# --- URLs (a real HTTP server on the loopback interface) -------------------------------


@pytest.fixture
def http_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Serve tmp_path over HTTP on 127.0.0.1; yields (base URL, folder)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_url_loads_with_orientation(http_root) -> None:
    base, folder = http_root
    (folder / "photo.jpg").write_bytes(jpeg_bytes(marked_image(), 8))
    url = f"{base}/photo.jpg"
    loaded = load_image(url, allow_urls=True)
    assert loaded.source == url
    assert loaded.size == (40, 60)
    assert close_to(rgb_at(loaded, 3, 56), RED)  # bottom-left, as displayed


def test_url_errors(http_root) -> None:
    base, folder = http_root
    (folder / "notes.png").write_text("not an image")
    assert_load_error(f"{base}/missing.jpg", f"{base}/missing.jpg", "HTTP 404", allow_urls=True)
    assert_load_error(f"{base}/notes.png", f"{base}/notes.png", "not an image", allow_urls=True)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.jpg"
    assert_load_error(url, url, "cannot reach server", timeout=5, allow_urls=True)
