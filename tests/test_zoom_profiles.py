"""The resize rule zoom plans with is the one the model family's processor applies."""

from __future__ import annotations

import numpy as np
import pytest
from transformers.models.gemma4.image_processing_gemma4 import get_aspect_ratio_preserving_size

from vistool.profiles import get_profile


def test_gemma4_resize_rule_matches_the_processor():
    profile = get_profile("gemma4")
    rng = np.random.default_rng(0)
    sizes = [(1920, 1080), (3840, 2160), (40, 3000), (3000, 40), (7, 7), (1, 500), (512, 512)]
    sizes += [(int(w), int(h)) for w, h in rng.integers(1, 5000, (60, 2))]
    for width, height in sizes:
        for budget in profile.budgets:
            new_height, new_width = get_aspect_ratio_preserving_size(height, width, 16, budget * 9, 3)
            assert profile.resized_size((width, height), budget) == (new_width, new_height), (width, height, budget)
            assert profile.image_tokens((width, height), budget) == (new_width // 48) * (new_height // 48) <= budget


def test_families_without_a_rule_say_so():
    # Every open family declares its processor's rule (vistool.profiles.resize); a hosted model does not.
    assert get_profile("gemini").resized_size((100, 100)) is None
    assert get_profile("gemini").image_tokens((100, 100)) is None
    with pytest.raises(Exception, match="budget"):
        get_profile("gemma4").resized_size((100, 100), 300)
