"""The client-side resize rules agree with the families' real image processors.

A client talking to a server (vLLM, SGLang, transformers serve) computes the size the
server's processor resizes each image to with `vistool.profiles.resize`; these tests
run the installed transformers image processors (the tiny checkpoints' own) on 20
aspect ratios and compare.
"""

from __future__ import annotations

import pytest
from PIL import Image

from vistool.profiles import get_profile
from vistool.profiles.resize import SmartResize

# 20 (W, H): square, landscape, portrait, panoramas, strips, tiny and large.
ASPECTS = [
    (640, 480), (480, 640), (1920, 1080), (1080, 1920), (512, 512), (800, 600), (3000, 40), (40, 3000),
    (1000, 333), (333, 1000), (2560, 1440), (1440, 2560), (59, 37), (37, 59), (1280, 720), (4000, 3000),
    (300, 900), (1700, 900), (123, 456), (2000, 100),
]


def _image_processor(folder):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(folder)).image_processor


@pytest.mark.parametrize("family", ["qwen25vl", "qwen3vl"])
def test_smart_resize_matches_the_qwen_processor_for_20_aspect_ratios(family, tiny_family_dir):
    processor = _image_processor(tiny_family_dir(family))
    profile = get_profile(family)
    rule = profile.resize
    assert isinstance(rule, SmartResize) and rule.patch == processor.patch_size and rule.merge == processor.merge_size
    for budget in (70, 1280):
        kwargs = profile.processor_kwargs(budget)
        for width, height in ASPECTS:
            grid = processor(images=[Image.new("RGB", (width, height))], return_tensors="pt", **kwargs)["image_grid_thw"][0]
            _, grid_h, grid_w = grid.tolist()
            assert rule.resized_size(width, height, budget) == (grid_w * rule.patch, grid_h * rule.patch), (width, height, budget)
            assert rule.image_tokens(width, height, budget) == grid_h * grid_w // rule.merge**2
            # What a server is told (min/max pixels) is the same range the local processor gets.
            server = profile.server_kwargs(budget)
            assert (server["min_pixels"], server["max_pixels"]) == (kwargs["size"]["shortest_edge"], kwargs["size"]["longest_edge"])


def test_smart_resize_matches_transformers_own_function_and_refuses_extreme_strips():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    rule = get_profile("qwen25vl").resize
    for budget in (70, 280, 1120, 16384):
        min_pixels, max_pixels = rule.pixels(budget)
        for width, height in ASPECTS:
            new_h, new_w = smart_resize(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
            assert rule.resized_size(width, height, budget) == (new_w, new_h)
    with pytest.raises(ValueError, match="aspect ratio must be smaller than 200"):
        rule.resized_size(10000, 40, 280)


def test_gemma4_rule_matches_the_gemma4_processor_for_20_aspect_ratios(tiny_family_dir):
    processor = _image_processor(tiny_family_dir("gemma4"))
    rule = get_profile("gemma4").resize
    for budget in (70, 560):
        for width, height in ASPECTS:
            out = processor(images=[Image.new("RGB", (width, height))], return_tensors="pt", max_soft_tokens=budget)
            positions = out["image_position_ids"]
            valid = positions[0][positions[0][:, 0] >= 0]
            size = (int(valid[:, 0].max()) * 16 + 16, int(valid[:, 1].max()) * 16 + 16)
            assert rule.resized_size(width, height, budget) == size, (width, height, budget)
            assert rule.image_tokens(width, height, budget) == int(out["num_soft_tokens_per_image"][0])


@pytest.mark.parametrize(("family", "side"), [("paligemma2", 224), ("florence2", 768)])
def test_fixed_size_families_resize_to_their_square(family, side, tiny_family_dir):
    processor = _image_processor(tiny_family_dir(family))
    rule = get_profile(family).resize
    for width, height in ASPECTS[:5]:
        pixels = processor(images=[Image.new("RGB", (width, height))], return_tensors="pt")["pixel_values"]
        assert tuple(pixels.shape[-2:]) == (side, side) and rule.resized_size(width, height, None) == (side, side)
