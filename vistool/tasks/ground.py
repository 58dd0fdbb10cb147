"""ground: a referring expression ("the red car on the left") -> the box(es) it names."""

from __future__ import annotations

from vistool.errors import VistoolError
from vistool.tasks.base import Options, TaskSpec


def _expression(options: Options) -> str:
    """The referring expression, stripped; raise VistoolError when empty."""
    expression = str(options.get("expression") or "").strip()
    if not expression:
        raise VistoolError("empty referring expression: say what to find")
    return expression


GROUND = TaskSpec(
    name="ground",
    prompts={
        # Modelled on the published Gemma 4 example prompt (DESIGN.md section 2).
        "default": 'What\'s the bounding box for "{expression}" in the image? Output a JSON list where each entry '
        'has "box_2d": [y_min, x_min, y_max, x_max] normalised to 0-1000 and "label". Output only the JSON.',
    },
    kind="boxes",
    default_budget=280,
    max_new_tokens=256,
    fields=lambda options: {"expression": _expression(options)},
    classes=lambda options: [_expression(options)],
)
