"""Video input: sample frames with decord and keep their timestamps."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from vistool.errors import VideoLoadError
from vistool.io.files import FileCheckError, check_regular_file


@dataclass
class VideoFrames:
    """Frames sampled from a video, each with its timestamp in seconds.

    `frames[i]` was shown at `timestamps[i]` seconds; `fps` and `duration` describe the
    source video; `source` names it (for error messages and provenance); `size` is the
    source's frame size (W, H), whatever size the frames were decoded at.
    """

    frames: list[Image.Image]
    timestamps: list[float]
    fps: float
    duration: float
    source: str = ""
    size: tuple[int, int] = field(default=(0, 0))


def sample_video(
    path: str | os.PathLike,
    num_frames: int | None = 32,
    fps: float | None = None,
    max_frames: int = 32,
    decode_size: Callable[[int, int, int], tuple[int, int] | None] | None = None,
) -> VideoFrames:
    """Sample frames from a video file with decord, with their timestamps.

    Takes a video path and one of two sampling rules:
      - uniform (the default, when ``fps`` is None): ``min(num_frames, max_frames)``
        frames spread evenly over the whole clip, the first frame and the last one
        included (indices ``np.linspace(0, n - 1, N).round()``); ``num_frames=None`` means
        ``max_frames``. A clip with fewer frames than that gives all its frames.
      - by rate (``fps`` given; it then wins over ``num_frames``): frames at
        0, 1/fps, 2/fps, ... seconds, each the nearest frame of the video, up to the last
        frame. A rate above the video's own gives every frame. When that would be more
        than ``max_frames`` frames, sampling falls back to uniform ``max_frames`` frames
        over the whole clip (so the whole clip stays covered, at a lower rate).

    Timestamps are ``frame_index / average_fps`` seconds (a constant frame rate is
    assumed; variable-frame-rate clips get approximate times). Rotation metadata of
    phone videos is not applied (decord ignores it).

    `decode_size` (optional) maps the source frame size and the number of frames sampled
    (W, H, count) to the size to decode frames at, or None for full size: decord scales
    them while decoding (issue 19: at Gemma 4's 70-token frame budget a 1280x720 frame
    becomes 528x288, 16% of the pixels).
    The backend's `video_frame_size` is such a function; it picks a size whose resize by
    the model's processor gives the same size, hence the same soft-token grid, as the
    full frame.

    Returns a `VideoFrames` with RGB PIL frames, their timestamps, the video's average
    fps, its duration (frame count / fps), the source path and the source frame size (W, H).
    Raises `VideoLoadError` (``cannot load video <path>: <reason>``) for a missing,
    empty or unreadable file and for num_frames, fps or max_frames <= 0.
    """
    source = os.fsdecode(os.fspath(path))

    def fail(reason: str) -> VideoLoadError:
        return VideoLoadError(f"cannot load video {source}: {reason}")

    if num_frames is not None and not (_is_int(num_frames) and num_frames > 0):
        raise fail(f"num_frames must be a positive int or None, got {num_frames!r}")
    if fps is not None and not (isinstance(fps, (int, float, np.number)) and fps > 0 and math.isfinite(fps)):
        raise fail(f"fps must be a positive number or None, got {fps!r}")
    if not (_is_int(max_frames) and max_frames > 0):
        raise fail(f"max_frames must be a positive int, got {max_frames!r}")
    try:  # only regular files: a pipe would block decord forever
        if check_regular_file(source, what="video file").st_size == 0:
            raise fail("file is empty (0 bytes)")
    except FileCheckError as exc:
        raise fail(str(exc)) from exc

    import decord  # imported here: it is slow to import and only video needs it

    try:
        reader = decord.VideoReader(source, ctx=decord.cpu(0))
    except Exception as e:  # decord raises DECORDError / RuntimeError with a C++ log
        raise fail("not a video, or a format decord cannot read") from e
    try:
        total = len(reader)
        average_fps = float(reader.get_avg_fps())
        if total <= 0:
            raise fail("the video has no frames")
        if not (average_fps > 0 and math.isfinite(average_fps)):
            raise fail(f"the video reports no usable frame rate ({average_fps})")
        indices = _frame_indices(total, average_fps, num_frames, fps, max_frames)
        try:
            first = reader.get_batch(indices[:1]).asnumpy()
            source_size = (int(first.shape[2]), int(first.shape[1]))
            target = decode_size(*source_size, len(indices)) if decode_size is not None else None
            if target is not None and tuple(target) != source_size:
                del reader  # decoded again, scaled by decord while decoding (same frame indices)
                reader = decord.VideoReader(source, ctx=decord.cpu(0), width=int(target[0]), height=int(target[1]))
                batch = reader.get_batch(indices).asnumpy()
            else:
                rest = reader.get_batch(indices[1:]).asnumpy() if len(indices) > 1 else first[:0]
                batch = np.concatenate([first, rest])
        except Exception as e:
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise fail(f"cannot decode frames ({first_line})") from e
    finally:
        del reader

    frames = [Image.fromarray(frame).convert("RGB") for frame in batch]
    return VideoFrames(
        frames=frames,
        timestamps=[index / average_fps for index in indices],
        fps=average_fps,
        duration=total / average_fps,
        source=source,
        size=source_size,
    )


def _frame_indices(
    total: int, average_fps: float, num_frames: int | None, fps: float | None, max_frames: int
) -> list[int]:
    """Which frames to read: by rate when `fps` is given and fits, else uniform."""
    if fps is not None:
        step = average_fps / min(fps, average_fps)  # frames between samples, >= 1
        count = math.floor((total - 1) / step + 0.5) + 1  # samples whose nearest frame exists
        indices = np.round(np.arange(count) * step).astype(int)
        indices = indices[indices <= total - 1]
        if len(indices) <= max_frames:
            return indices.tolist()
        wanted = max_frames
    else:
        wanted = max_frames if num_frames is None else min(num_frames, max_frames)
    wanted = min(wanted, total)
    return np.linspace(0, total - 1, wanted).round().astype(int).tolist()


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
