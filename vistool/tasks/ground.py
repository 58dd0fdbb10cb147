"""ground: a referring expression ("the red car on the left") -> the box(es) it names."""

from __future__ import annotations

from vistool.structured import AnswerShape
from vistool.tasks.base import Options, TaskSpec, required_text


def _expression(options: Options) -> str:
    """The referring expression; raise VistoolError when empty."""
    return required_text(options, "expression", "referring expression: say what to find")


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
    answer=AnswerShape(coords="box", label="free"),
)
