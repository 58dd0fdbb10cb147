"""Video frames decoded at the size the frame budget implies give the processor's full-frame soft-token grid."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vistool.io import sample_video
from vistool.runtime import speed
from vistool.runtime.types import GenerationRequest

SIZES = [(1280, 720), (1920, 1080), (720, 1280), (640, 480), (854, 480), (3840, 2160), (1000, 999), (2000, 300), (333, 777)]


def _gemma4_rule(width: int, height: int, budget: int) -> tuple[int, int]:
    """Gemma 4's resize (DESIGN.md section 2), written out: keep the ratio, sides multiples of 48, (H/48)(W/48) <= budget."""
    factor = math.sqrt(budget * 9 * 256 / (width * height))
    return math.floor(width * factor / 48) * 48, math.floor(height * factor / 48) * 48


@pytest.mark.parametrize("size", SIZES)
def test_decode_size_keeps_the_processors_target(tiny_backend, size):
    video_processor = tiny_backend.processor.video_processor
    decode = speed.video_decode_size(size, video_processor, 70)
    assert decode is not None and decode[0] < size[0] and decode[1] < size[1]
    assert _gemma4_rule(*decode, 70) == _gemma4_rule(*size, 70)


def test_no_smaller_size_for_small_or_unknown_processors(tiny_backend):
    assert speed.video_decode_size((96, 48), tiny_backend.processor.video_processor, 70) is None  # upscaled anyway
    assert speed.video_decode_size((1280, 720), object(), 70) is None


def _clip(path: Path, width: int, height: int, frames: int, fps: int = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(frames):
        frame = np.stack([(xx + index * 8) % 256, (yy * 2) % 256, np.full_like(xx, index * 9 % 256)], axis=-1)
        writer.write(frame.astype(np.uint8))
    writer.release()
    return path


def test_small_decoding_gives_the_same_grid_and_timestamps(tiny_backend, tmp_path):
    clip = _clip(tmp_path / "clip.mp4", 1280, 720, 30)
    full = sample_video(clip, num_frames=8)
    small = sample_video(clip, num_frames=8, decode_size=tiny_backend.video_frame_size)
    assert small.timestamps == full.timestamps and small.fps == full.fps and small.duration == full.duration
    assert full.size == small.size == (1280, 720)
    assert full.frames[0].size == (1280, 720) and small.frames[0].size == tiny_backend.video_frame_size(1280, 720)
    prepared = [
        tiny_backend._prepare([GenerationRequest("What happens?", video=frames, budget=70)]).inputs for frames in (full, small)
    ]
    assert torch.equal(prepared[0]["input_ids"], prepared[1]["input_ids"])  # same soft tokens, same timestamps
    assert prepared[0]["pixel_values_videos"].shape == prepared[1]["pixel_values_videos"].shape
    for key in prepared[0]:
        if "position" in key or "grid" in key:
            assert torch.equal(prepared[0][key], prepared[1][key]), key
    # The pixels differ only by resampling: decoded small vs shrunk by the processor.
    difference = (prepared[0]["pixel_values_videos"] - prepared[1]["pixel_values_videos"]).abs().mean()
    assert float(difference) < 0.1
