"""Video input: sample frames with decord and keep their timestamps."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class VideoFrames:
    """Frames sampled from a video, each with its timestamp in seconds.

    `frames[i]` was shown at `timestamps[i]` seconds; `fps` and `duration` describe the
    source video; `source` names it (for error messages and provenance).
    """

    frames: list[Image.Image]
    timestamps: list[float]
    fps: float
    duration: float
    source: str = ""
    size: tuple[int, int] = field(default=(0, 0))
