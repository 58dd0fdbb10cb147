"""Tests of vistool.io.video.sample_video on clips written on the spot with OpenCV.

Each frame encodes its index in binary: six 16-px-wide vertical bars, white for a 1 bit
and black for a 0 bit (most significant bit on the left), so a decoded frame can be
matched to its index exactly even after lossy compression.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vistool.errors import VideoLoadError, VistoolError
from vistool.io import VideoFrames, sample_video
from vistool.io.video import _frame_indices

WIDTH, HEIGHT, BITS = 96, 48, 6


def encoded_frame(index: int) -> np.ndarray:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if index >> (BITS - 1 - bit) & 1:
            frame[:, bit * 16 : (bit + 1) * 16] = 255
    frame[:8] = (0, 0, 200)  # a red stripe on top (BGR order for OpenCV) to check colours
    return frame


def decoded_index(frame: Image.Image) -> int:
    pixels = np.asarray(frame)
    index = 0
    for bit in range(BITS):
        centre = pixels[HEIGHT // 2, bit * 16 + 8]
        index = index * 2 + int(centre.mean() > 128)
    return index


def write_clip(path: Path, frames: int = 64, fps: float = 16.0, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for index in range(frames):
        writer.write(encoded_frame(index))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 frames at 16 fps (4 s), MPEG-4 Part 2 ('mp4v') in an .mp4 container."""
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


def check_frames(video: VideoFrames, expected_indices: list[int], fps: float = 16.0) -> None:
    assert [decoded_index(frame) for frame in video.frames] == expected_indices
    assert video.timestamps == pytest.approx([index / fps for index in expected_indices])
    assert len(video.frames) == len(video.timestamps)
    for frame in video.frames:
        assert isinstance(frame, Image.Image) and frame.mode == "RGB"
        assert frame.size == (WIDTH, HEIGHT)
        red, green, blue = frame.getpixel((WIDTH // 2, 3))
        assert red > 150 and blue < 100  # RGB order, not OpenCV's BGR


def test_uniform_eight_frames(clip: Path) -> None:
    video = sample_video(clip, num_frames=8)
    expected = [0, 9, 18, 27, 36, 45, 54, 63]  # linspace(0, 63, 8).round()
    check_frames(video, expected)
    assert video.timestamps[0] == 0.0
    assert video.timestamps[-1] == pytest.approx(3.9375)
    assert video.fps == pytest.approx(16.0)
    assert video.duration == pytest.approx(4.0)
    assert video.size == (WIDTH, HEIGHT)
    assert video.source == str(clip)


def test_default_is_32_uniform_frames(clip: Path) -> None:
    video = sample_video(str(clip))
    check_frames(video, np.linspace(0, 63, 32).round().astype(int).tolist())


def test_single_frame_is_the_first(clip: Path) -> None:
    check_frames(sample_video(clip, num_frames=1), [0])


def test_num_frames_capped_by_max_frames_and_by_clip_length(clip: Path) -> None:
    ten = np.linspace(0, 63, 10).round().astype(int).tolist()
    check_frames(sample_video(clip, num_frames=100, max_frames=10), ten)
    check_frames(sample_video(clip, num_frames=None, max_frames=5), [0, 16, 32, 47, 63])
    check_frames(sample_video(clip, num_frames=500, max_frames=500), list(range(64)))


def test_fps_sampling(clip: Path) -> None:
    video = sample_video(clip, fps=2)
    check_frames(video, [0, 8, 16, 24, 32, 40, 48, 56])
    assert video.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    check_frames(sample_video(clip, fps=4, num_frames=3), list(range(0, 64, 4)))  # fps wins
    check_frames(sample_video(clip, fps=0.5), [0, 32])


def test_fps_above_the_video_rate_gives_every_frame(clip: Path) -> None:
    check_frames(sample_video(clip, fps=100, max_frames=64), list(range(64)))


def test_fps_over_the_cap_falls_back_to_uniform(clip: Path) -> None:
    # fps=8 would give 32 frames; with max_frames=10, ten frames cover the whole clip.
    video = sample_video(clip, fps=8, max_frames=10)
    check_frames(video, np.linspace(0, 63, 10).round().astype(int).tolist())
    assert video.timestamps[-1] == pytest.approx(63 / 16)


def test_short_clip_and_avi_mjpg(tmp_path: Path) -> None:
    avi = write_clip(tmp_path / "short.avi", frames=5, fps=10, fourcc="MJPG")
    video = sample_video(avi, num_frames=8)
    check_frames(video, [0, 1, 2, 3, 4], fps=10)
    assert video.duration == pytest.approx(0.5)


def assert_video_error(path: object, reason: str, **kwargs: object) -> None:
    with pytest.raises(VideoLoadError) as raised:
        sample_video(path, **kwargs)  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith(f"cannot load video {path}: "), message
    assert reason in message, message
    assert "\n" not in message
    assert isinstance(raised.value, VistoolError)


def test_missing_file(tmp_path: Path) -> None:
    assert_video_error(tmp_path / "nope.mp4", "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_video_error(tmp_path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_video_error(path, "empty (0 bytes)")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 50)
    assert_video_error(path, "not a video")


def test_truncated_mp4(tmp_path: Path, clip: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # the index ('moov') is lost
    assert_video_error(path, "not a video")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"num_frames": 0}, "num_frames must be a positive int"),
        ({"num_frames": -3}, "num_frames must be a positive int"),
        ({"num_frames": 2.5}, "num_frames must be a positive int"),
        ({"fps": 0}, "fps must be a positive number"),
        ({"fps": -1.0}, "fps must be a positive number"),
        ({"fps": float("nan")}, "fps must be a positive number"),
        ({"max_frames": 0}, "max_frames must be a positive int"),
        ({"max_frames": -1}, "max_frames must be a positive int"),
    ],
)
def test_bad_arguments(clip: Path, kwargs: dict, reason: str) -> None:
    assert_video_error(clip, reason, **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 5000),
    average_fps=st.floats(1.0, 120.0),
    num_frames=st.one_of(st.none(), st.integers(1, 200)),
    fps=st.one_of(st.none(), st.floats(0.01, 500.0)),
    max_frames=st.integers(1, 200),
)
def test_frame_indices_are_valid(
    total: int, average_fps: float, num_frames: int | None, fps: float | None, max_frames: int
) -> None:
    indices = _frame_indices(total, average_fps, num_frames, fps, max_frames)
    assert indices[0] == 0
    assert 1 <= len(indices) <= min(max_frames, total)
    assert indices == sorted(set(indices))  # increasing, no repeats
    assert indices[-1] <= total - 1
    if fps is None:
        wanted = max_frames if num_frames is None else min(num_frames, max_frames)
        assert len(indices) == min(wanted, total)
        if len(indices) > 1:
            assert indices[-1] == total - 1  # uniform sampling ends on the last frame
    else:
        gaps = np.diff(indices)
        if len(indices) > 1 and indices[-1] != total - 1:  # by rate: steady steps
            expected_step = average_fps / min(fps, average_fps)
            assert np.all(np.abs(gaps - expected_step) <= 1)
