"""Model profiles: the registry, model-id guessing, runtime budget fields, answer conventions."""

from __future__ import annotations

import dataclasses

import pytest

from vistool.errors import BudgetError, VistoolError
from vistool.profiles import PROFILES, ModelProfile, get_profile, profile_for_model

EXPECTED = {"gemma4", "gemini", "qwen3vl", "qwen25vl", "paligemma2", "florence2"}


def test_registry_lists_every_family_under_its_name() -> None:
    assert set(PROFILES) == EXPECTED
    for name, profile in PROFILES.items():
        assert isinstance(profile, ModelProfile)
        assert profile.name == name
        assert get_profile(name) is profile


def test_get_profile_forgives_spelling_and_passes_records_through() -> None:
    assert get_profile("Qwen2.5-VL") is PROFILES["qwen25vl"]
    assert get_profile("gemma_4") is PROFILES["gemma4"]
    assert get_profile(PROFILES["florence2"]) is PROFILES["florence2"]


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(VistoolError) as info:
        get_profile("llava")
    message = str(info.value)
    assert "llava" in message
    for name in EXPECTED:
        assert name in message


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("google/gemma-4-E2B-it", "gemma4"),
        ("google/gemma-4-31B-it", "gemma4"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen25vl"),
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3vl"),
        ("google/paligemma2-3b-mix-448", "paligemma2"),
        ("microsoft/Florence-2-large", "florence2"),
        ("gemini-2.5-flash", "gemini"),
        ("some/unknown-model", "gemma4"),
        ("/tmp/tiny_g4", "gemma4"),
    ],
)
def test_profile_for_model(model_id: str, expected: str) -> None:
    assert profile_for_model(model_id).name == expected


def test_gemma4_runtime_fields() -> None:
    gemma = get_profile("gemma4")
    assert gemma.budgets == (70, 140, 280, 560, 1120)
    assert gemma.default_budget == 280
    assert gemma.video_budget == 70
    assert gemma.budget_kwarg == "max_soft_tokens"
    assert gemma.check_budget(None) == 280
    assert gemma.processor_kwargs(560) == {"max_soft_tokens": 560}
    with pytest.raises(BudgetError):
        gemma.check_budget(300)


def test_families_without_a_budget_knob_refuse_a_budget() -> None:
    for name in ("gemini", "paligemma2", "florence2"):
        profile = get_profile(name)
        assert profile.check_budget(None) is None
        assert profile.processor_kwargs(None) == {}
        with pytest.raises(BudgetError):
            profile.check_budget(280)
    with pytest.raises(BudgetError, match="'paligemma2' resizes every image to a fixed square .224 / 448 / 896 px.*leave the budget out"):
        get_profile("paligemma2").check_budget(560)
    with pytest.raises(BudgetError, match="'florence2' resizes every image to a fixed square .768 px"):
        get_profile("florence2").check_budget(70)


@pytest.mark.parametrize(("name", "factor", "min_pixels"), [("qwen25vl", 28, 4 * 28 * 28), ("qwen3vl", 32, 64 * 32 * 32)])
def test_qwen_budget_is_in_tokens_and_becomes_a_pixel_range(name: str, factor: int, min_pixels: int) -> None:
    profile = get_profile(name)
    assert profile.check_budget(None) == 1280 and 280 in profile.budgets and 16384 in profile.budgets
    local = {"size": {"shortest_edge": min_pixels, "longest_edge": 280 * factor * factor}}
    assert profile.processor_kwargs(280) == local
    assert profile.server_kwargs(280) == {"min_pixels": min_pixels, "max_pixels": 280 * factor * factor}
    with pytest.raises(BudgetError, match="use one of 70, 140, 280"):
        profile.check_budget(300)


@pytest.mark.parametrize(
    ("name", "order", "scale", "offset", "box_key"),
    [
        ("gemma4", "yx", 1000.0, 0.0, "box_2d"),
        ("gemini", "yx", 1000.0, 0.0, "box_2d"),
        ("qwen3vl", "xy", 1000.0, 0.0, "bbox_2d"),
        ("qwen25vl", "xy", None, 0.0, "bbox_2d"),
        ("paligemma2", "yx", 1024.0, 0.0, None),
        ("florence2", "xy", 1000.0, 0.5, None),
    ],
)
def test_coordinate_conventions(name: str, order: str, scale: float | None, offset: float, box_key: str | None) -> None:
    profile = get_profile(name)
    assert profile.coords.order == order
    assert profile.coords.scale == scale
    assert profile.coords.offset == offset
    assert profile.needs_resized_size == (scale is None)
    if box_key is not None:
        assert profile.box_keys[0] == box_key
        assert profile.loc_format is None
    else:
        assert profile.loc_format is not None


def test_kinds_per_family_and_clear_error_for_missing_ones() -> None:
    assert get_profile("gemma4").kinds == ("boxes", "points", "ocr_regions")
    assert get_profile("florence2").kinds == ("boxes", "ocr_regions")
    with pytest.raises(VistoolError, match="points"):
        get_profile("paligemma2").reader("points")


def test_profiles_are_frozen_single_records() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("gemma4").name = "x"  # type: ignore[misc]
    # Gemini aliases Gemma 4's convention, without the budget knob.
    gemini, gemma = get_profile("gemini"), get_profile("gemma4")
    assert gemini.coords == gemma.coords and gemini.readers is gemma.readers
    assert gemini.budgets == ()
