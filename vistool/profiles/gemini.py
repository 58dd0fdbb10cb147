"""Gemini 2.x and later: the convention Gemma 4 follows (`box_2d` [y1, x1, y2, x2], 0..1000).

An alias of the Gemma 4 profile without Gemma's image-token budget (a hosted model).
"""

from dataclasses import replace

from vistool.profiles.gemma4 import PROFILE as GEMMA4

PROFILE = replace(
    GEMMA4,
    name="gemini",
    budgets=(),
    default_budget=None,
    video_budget=None,
    budget_kwarg=None,
    resize=None,  # the hosted model's resizing is not published
    model_patterns=("gemini",),
    title="Gemini",
    model_types=(),
    architectures=(),
)
