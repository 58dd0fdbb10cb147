"""Image input: load any image once, as displayed, in RGB, with a size guard.

`load_image` is the single entry point. It accepts a file path, encoded bytes, a PIL
image, a numpy array or, when asked (`allow_urls=True`), an http(s) URL; applies the
EXIF orientation; converts every
mode to RGB; refuses images above a pixel limit before decoding their pixels; and
returns a `LoadedImage` whose `width`/`height` are the size AS DISPLAYED. Every box and
point vistool produces refers to that size.

Every failure raises `vistool.errors.ImageLoadError` with the message
``cannot load image <source>: <reason>``.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vistool.errors import ImageLoadError
from vistool.io.files import FileCheckError, open_regular_file, sha256_of

# Images with more pixels than this are refused unless `max_pixels` says otherwise.
# Change it here (``vistool.io.images.DEFAULT_MAX_PIXELS = ...``); it is read at call time.
DEFAULT_MAX_PIXELS: int = 100_000_000

# Seconds a whole download may take (connection to last byte), and the most bytes read.
DEFAULT_URL_TIMEOUT_S: float = 30.0
MAX_URL_BYTES: int = 64 * 1024 * 1024

_WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


@dataclass(frozen=True)
class LoadedImage:
    """A fully decoded RGB image, oriented as displayed, with its size and origin.

    `image` is an RGB PIL image detached from any file; `width` and `height` are its size
    as displayed (after the EXIF orientation), which is the size every box refers to;
    `source` is a short human-readable name of the input (a path, a URL,
    ``<bytes 1234>``, ``<PIL image>``, ``<numpy array 480x640x3>``).
    """

    image: Image.Image
    width: int
    height: int
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """The displayed size as (width, height)."""
        return (self.width, self.height)


# Everything `load_image` accepts.
ImageInput = Union[
    str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray, LoadedImage
]


def load_image(
    image: ImageInput,
    *,
    max_pixels: int | None = None,
    timeout: float | None = None,
    allow_urls: bool = False,
) -> LoadedImage:
    """Load an image once, as displayed, in RGB.

    Takes:
      - a path (``str`` or ``os.PathLike``) to an image file (a regular file: see
        `vistool.io.files`);
      - with ``allow_urls=True``, a ``str`` starting with ``http://`` or ``https://``,
        fetched within ``timeout`` seconds in all (default `DEFAULT_URL_TIMEOUT_S`), at
        most `MAX_URL_BYTES` bytes, following at most 5 redirects. URLs are off by
        default, so that an application passing user strings through cannot be made
        to fetch from its own network (the `vistool` command line turns them on for
        the image argument a user types);
      - encoded image bytes (``bytes``, ``bytearray`` or ``memoryview``);
      - a PIL image (not modified; the result is a copy);
      - a numpy array of shape HxW (gray), HxWx1, HxWx2 (gray + alpha), HxWx3 (RGB) or
        HxWx4 (RGBA). Channels are taken to be in RGB order: convert OpenCV's BGR arrays
        with ``cv2.cvtColor(a, cv2.COLOR_BGR2RGB)`` first. dtypes: uint8 (0..255),
        uint16 (0..65535), bool, and floats (0..1 when every value is <= 1, else
        0..255; clipped, NaN -> 0);
      - a `LoadedImage`, returned unchanged.

    For files, bytes and URLs the EXIF orientation is applied (PIL images too, when they
    carry EXIF). Every mode becomes RGB: CMYK, palette, 16/32-bit integer (16-bit range
    scaled to 8 bits), float, 1-bit, gray; transparency is composited on white. For
    multi-frame files (GIF, TIFF, APNG) the first frame is used.

    ``max_pixels`` (default: the module's `DEFAULT_MAX_PIXELS`, read at call time) bounds
    width x height; for encoded inputs it is checked from the header, before any pixel
    is decoded. Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``, which refuses twice
    its value) still applies: to allow more than that, raise it too.

    Returns a `LoadedImage` (RGB image, displayed width and height, source name).
    Raises `ImageLoadError` (``cannot load image <source>: <reason>``) on any failure.
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")

    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        text = os.fspath(image)
        if isinstance(text, str) and text.lower().startswith(("http://", "https://")):
            if allow_urls:
                return _load_url(text, limit, DEFAULT_URL_TIMEOUT_S if timeout is None else timeout)
            if not os.path.lexists(text):
                raise _error(text, "fetching URLs is off; pass allow_urls=True to load images from the web")
        return _load_path(text, limit)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return _load_encoded(io.BytesIO(data), f"<bytes {len(data)}>", limit, empty=len(data) == 0)
    if isinstance(image, Image.Image):
        return _load_pil(image, limit)
    if isinstance(image, np.ndarray):
        return _load_array(image, limit)
    raise _error(
        f"<{type(image).__name__}>",
        "unsupported input type (expected a path, URL, bytes, PIL image or numpy array)",
    )


# --- one loader per input kind ---------------------------------------------------------


def image_file_sha256(path: str | os.PathLike, *, max_pixels: int | None = None) -> str:
    """Check that a path is an image file, without decoding it, and return its sha256.

    Takes the path and the pixel limit (default `DEFAULT_MAX_PIXELS`). Checks, before
    reading the file's bytes: a regular file (not a pipe, device, folder or broken link)
    within `vistool.io.files.MAX_FILE_BYTES`, not empty, whose header Pillow recognises,
    with at most `max_pixels` pixels. Returns the hex sha256 of its bytes, read in
    chunks (never the whole file in memory). Raises `ImageLoadError`
    (``cannot load image <path>: <reason>``).
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    source = os.fsdecode(os.fspath(path))
    handle, size = _open_file(source)
    with handle:
        if size == 0:
            raise _error(source, "file is empty (0 bytes)")
        with _open_header(handle, source, limit):
            pass
        try:
            handle.seek(0)
            return sha256_of(handle)
        except OSError as e:
            raise _error(source, str(e.strerror or e)) from e


def _open_file(source: str) -> tuple[io.BufferedReader, int]:
    """Open an image path when it is a regular file within the size cap; return (handle, size)."""
    if not source:
        raise _error("''", "empty path")
    try:
        return open_regular_file(os.path.expanduser(source), what="image file")  # type: ignore[return-value]
    except FileCheckError as e:
        raise _error(source, str(e)) from e


def _load_path(path: str | bytes, limit: int) -> LoadedImage:
    source = os.fsdecode(path)
    handle, size = _open_file(source)
    try:
        with handle:
            # Pillow decodes through this handle, closed on return; the returned image
            # is fully decoded and never refers to it.
            return _load_encoded(handle, source, limit, empty=size == 0)
    except OSError as e:
        raise _error(source, str(e.strerror or e)) from e


def _load_url(url: str, limit: int, timeout: float) -> LoadedImage:
    import httpx

    from vistool.io.http import ResponseTooLarge, exchange, fresh_client

    try:
        with fresh_client(timeout=timeout, max_connections=1, headers={"User-Agent": "vistool"}, follow_redirects=True) as client:
            response = exchange(client, "GET", url, seconds=timeout, max_bytes=MAX_URL_BYTES)
    except ResponseTooLarge as e:
        raise _error(url, f"download larger than {MAX_URL_BYTES} bytes") from e
    except httpx.TimeoutException as e:
        raise _error(url, f"no complete answer within {timeout:g} s") from e
    except httpx.TooManyRedirects as e:
        raise _error(url, "too many redirects") from e
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        raise _error(url, f"cannot reach server ({e})") from e
    except (httpx.HTTPError, OSError, ValueError) as e:
        raise _error(url, f"{type(e).__name__}: {e}") from e
    if response.status_code >= 400:
        raise _error(url, f"HTTP {response.status_code} {response.reason_phrase}")
    data = response.content
    return _load_encoded(io.BytesIO(data), url, limit, empty=len(data) == 0)


def _load_encoded(fp: io.IOBase, source: str, limit: int, *, empty: bool) -> LoadedImage:
    """Decode an image file object: header check, full decode, orientation, RGB."""
    if empty:
        raise _error(source, "file is empty (0 bytes)")
    opened = _open_header(fp, source, limit)
    with opened:
        try:
            opened.load()  # full decode: truncated or corrupt data fails here
        except Exception as e:
            reason = f"truncated or corrupt image data ({_describe(e)})"
            raise _error(source, reason) from e
        rgb = _oriented_rgb(opened, source)
    return LoadedImage(rgb, rgb.width, rgb.height, source)


def _open_header(fp: io.IOBase, source: str, limit: int) -> Image.Image:
    """Open an image file object without decoding its pixels; check the format and the pixel limit."""
    try:
        # Our own check below replaces Pillow's warning band; its hard error still fires.
        # (catch_warnings is process-wide; at worst a concurrent thread's warning filter
        # change races with it, which only affects which warnings are shown.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(fp)
    except UnidentifiedImageError as e:
        reason = "not an image, or a format Pillow cannot read"
        raise _error(source, reason) from e
    except Image.DecompressionBombError as e:
        raise _error(source, _pil_bomb_reason(e, limit)) from e
    except Exception as e:  # Pillow raises many types on malformed headers
        raise _error(source, f"unreadable image header ({_describe(e)})") from e
    try:
        _check_pixels(opened.width, opened.height, limit, source)  # header only, nothing decoded yet
    except ImageLoadError:
        opened.close()
        raise
    return opened


def _load_pil(image: Image.Image, limit: int) -> LoadedImage:
    source = "<PIL image>"
    _check_pixels(image.width, image.height, limit, source)
    try:
        image.load()
    except Exception as e:
        reason = f"truncated or corrupt image data ({_describe(e)})"
        raise _error(source, reason) from e
    rgb = _oriented_rgb(image, source)  # a new image: the caller's is left alone
    return LoadedImage(rgb, rgb.width, rgb.height, source)


def _load_array(array: np.ndarray, limit: int) -> LoadedImage:
    source = "<numpy array " + "x".join(str(n) for n in array.shape) + ">"
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 2, 3, 4))
    if not shape_ok:
        raise _error(
            source,
            f"unsupported array shape {array.shape} (expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4)",
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise _error(source, "array has no pixels")
    _check_pixels(width, height, limit, source)
    try:
        pixels = _to_uint8(array)
    except TypeError as e:
        raise _error(source, str(e)) from e
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    # Pillow infers the mode from the shape: HxW -> L, x2 -> LA, x3 -> RGB, x4 -> RGBA.
    rgb = _to_rgb(Image.fromarray(np.ascontiguousarray(pixels)))
    return LoadedImage(rgb, rgb.width, rgb.height, source)


# --- shared helpers --------------------------------------------------------------------


def _error(source: str, reason: str) -> ImageLoadError:
    """The one error format: ``cannot load image <source>: <reason>``."""
    return ImageLoadError(f"cannot load image {source}: {reason}")


def _check_pixels(width: int, height: int, limit: int, source: str) -> None:
    pixels = width * height
    if pixels > limit:
        raise _error(
            source,
            f"{width}x{height} = {pixels} pixels exceeds the limit of {limit} pixels "
            "(possible decompression bomb; raise max_pixels to allow it)",
        )


def _pil_bomb_reason(error: Exception, limit: int) -> str:
    """Say why Pillow refused an image as a bomb, in our terms where we can."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    pixels = int(found.group(1)) if found else None
    if pixels is not None and pixels > limit:
        return (
            f"{pixels} pixels exceeds the limit of {limit} pixels "
            "(possible decompression bomb; raise max_pixels to allow it)"
        )
    return (
        f"Pillow's own decompression-bomb guard refused it ({error}); to allow it, raise "
        "PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels"
    )


def _oriented_rgb(image: Image.Image, source: str) -> Image.Image:
    """Apply the EXIF orientation, then convert to RGB. Returns a new image."""
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception as e:
        raise _error(source, f"bad EXIF orientation data ({_describe(e)})") from e
    try:
        return _to_rgb(oriented)
    except (ValueError, OSError) as e:
        raise _error(source, f"cannot convert mode {image.mode} to RGB ({e})") from e


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: high bit depths scaled, transparency on white."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        values = np.asarray(image)
        if mode == "I":  # 32-bit integers; Pillow uses this mode for 16-bit files too
            values = np.clip(values, 0, 65535).astype(np.uint16)
        return Image.fromarray(_to_uint8(values)).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # always a new image, even when already RGB


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale uint8 / uint16 / bool / float pixel values to uint8."""
    values = values.astype(values.dtype.newbyteorder("="), copy=False)  # e.g. big-endian I;16B
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if values.dtype == np.uint16:
        return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(values.dtype, np.floating):
        floats = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        finite_max = float(floats.max()) if floats.size else 0.0
        if finite_max <= 1.0:
            floats = floats * 255.0
        return np.clip(np.rint(floats), 0, 255).astype(np.uint8)
    raise TypeError(f"unsupported dtype {values.dtype} (expected uint8, uint16, bool or float)")


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return text or type(error).__name__


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_URL_TIMEOUT_S",
    "MAX_URL_BYTES",
    "ImageInput",
    "LoadedImage",
    "image_file_sha256",
    "load_image",
]
