"""Video frames decoded at the size the frame budget implies give the processor's full-frame token grid,
for every family that takes video (Gemma 4, Qwen2.5-VL, Qwen3-VL): each family's resize rule
(`ResizeRule.frame_size`) is checked against its real video processor, and frames decoded at
`video_frame_size` against full frames, through the processor and the backend."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vistool.io import sample_video
from vistool.profiles import get_profile
from vistool.runtime import speed
from vistool.runtime.types import GenerationRequest

VIDEO_FAMILIES = ("gemma4", "qwen25vl", "qwen3vl")
SIZES = [(1280, 720), (1920, 1080), (720, 1280), (640, 480), (854, 480), (1000, 999), (2000, 300), (333, 777)]
FRAME_COUNTS = (4, 9)  # 9: an odd count, which Qwen rounds to its temporal patch


def _processed_size(video_processor, size: tuple[int, int], frames: int) -> tuple[int, int]:
    """The (W, H) the real video processor resizes `frames` frames of `size` to (read from its outputs)."""
    from transformers.video_utils import VideoMetadata

    width, height = size
    video = [np.full((height, width, 3), 90, dtype=np.uint8)] * frames
    metadata = VideoMetadata(total_num_frames=frames * 10, fps=10.0, duration=float(frames), frames_indices=list(range(0, frames * 10, 10)))
    out = video_processor(videos=[video], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt")
    patch = int(video_processor.patch_size)
    if "video_grid_thw" in out:  # Qwen: (t, h, w) in patches
        _, grid_h, grid_w = out["video_grid_thw"][0].tolist()
        return grid_w * patch, grid_h * patch
    positions = out["video_position_ids"][0]  # Gemma 4: (x, y) of each patch; padding is -1
    largest = positions.amax(dim=0).tolist()
    return (int(largest[0]) + 1) * patch, (int(largest[1]) + 1) * patch


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_frame_rule_matches_the_real_video_processor(family, tiny_family_backend):
    backend = tiny_family_backend(family)
    rule, video_processor = get_profile(family).resize, backend.processor.video_processor
    budget = get_profile(family).video_budget
    for size in SIZES:
        for frames in FRAME_COUNTS:
            assert rule.frame_size(*size, frames, video_processor, budget) == _processed_size(video_processor, size, frames), (size, frames)


@pytest.mark.parametrize("family", ("qwen25vl", "qwen3vl"))
def test_frame_rule_follows_qwens_per_frame_pixel_cap(family, tiny_family_backend):
    """With `cap_pixels_per_frame` (the reference implementation's bound, transformers' default from v5.22)."""
    plain = tiny_family_backend(family).processor.video_processor
    capped = copy.copy(plain)
    capped.cap_pixels_per_frame = True
    capped.max_video_tokens = 2048  # small, so that the cap binds at these frame counts
    rule = get_profile(family).resize
    changed = 0
    for size in SIZES[:4]:
        for frames in (4, 32):
            assert rule.frame_size(*size, frames, capped, None) == _processed_size(capped, size, frames), (size, frames)
            changed += rule.frame_size(*size, frames, capped, None) != rule.frame_size(*size, frames, plain, None)
    assert changed > 0  # the cap was in force


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_decode_size_keeps_the_processors_target(family, tiny_family_backend):
    backend = tiny_family_backend(family)
    video_processor = backend.processor.video_processor
    shrunk = 0
    for size in SIZES:
        target = _processed_size(video_processor, size, 4)
        decode = backend.video_frame_size(*size, 4)
        if target[0] >= size[0] or target[1] >= size[1]:  # the processor does not shrink it: decode at full size
            assert decode is None, (size, target, decode)
            continue
        assert decode is not None and decode[0] < size[0] and decode[1] < size[1], size
        assert _processed_size(video_processor, decode, 4) == target, (size, decode)
        shrunk += 1
    assert shrunk >= 5


def test_the_frame_count_matters_for_qwen3vl_only(tiny_family_backend):
    """Qwen3-VL's pixel range bounds the whole clip, so more frames get smaller ones; Gemma 4 and
    Qwen2.5-VL bound each frame."""
    for family in VIDEO_FAMILIES:
        backend = tiny_family_backend(family)
        few, many = backend.video_frame_size(1280, 720, 4), backend.video_frame_size(1280, 720, 32)
        assert (many[0] < few[0]) == (family == "qwen3vl"), (family, few, many)


def test_no_smaller_size_for_small_frames_or_families_without_a_rule(tiny_backend, tiny_family_backend):
    assert tiny_backend.video_frame_size(96, 48, 8) is None  # upscaled anyway
    assert speed.video_decode_size((1280, 720), lambda w, h: (w, h)) is None  # nothing to gain
    assert tiny_family_backend("qwen3vl").video_frame_size(1280, 720, 1) is None  # the processor refuses one frame
    assert tiny_family_backend("paligemma2").video_frame_size(1280, 720, 8) is None  # takes no video


def _clip(path: Path, width: int, height: int, frames: int, fps: int = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(frames):
        frame = np.stack([(xx + index * 8) % 256, (yy * 2) % 256, np.full_like(xx, index * 9 % 256)], axis=-1)
        writer.write(frame.astype(np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_small_decoding_gives_the_same_grid_and_timestamps(family, tiny_family_backend, tmp_path):
    backend = tiny_family_backend(family)
    clip = _clip(tmp_path / "clip.mp4", 1280, 720, 30)
    full = sample_video(clip, num_frames=8)
    small = sample_video(clip, num_frames=8, decode_size=backend.video_frame_size)
    assert small.timestamps == full.timestamps and small.fps == full.fps and small.duration == full.duration
    assert full.size == small.size == (1280, 720)
    assert full.frames[0].size == (1280, 720) and small.frames[0].size == backend.video_frame_size(1280, 720, 8)
    budget = get_profile(family).video_budget
    prepared = [backend._prepare([GenerationRequest("What happens?", video=frames, budget=budget)]).inputs for frames in (full, small)]
    assert torch.equal(prepared[0]["input_ids"], prepared[1]["input_ids"])  # same video tokens, same timestamps
    assert prepared[0]["pixel_values_videos"].shape == prepared[1]["pixel_values_videos"].shape
    for key in prepared[0]:
        if "position" in key or "grid" in key:
            assert torch.equal(prepared[0][key], prepared[1][key]), key
    # The pixels differ only by resampling: decoded small vs shrunk by the processor.
    difference = (prepared[0]["pixel_values_videos"].float() - prepared[1]["pixel_values_videos"].float()).abs().mean()
    assert float(difference) < 0.1
