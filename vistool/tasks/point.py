"""point: points for a description, with counting ("how many ... and where")."""

from __future__ import annotations

from vistool.structured import AnswerShape
from vistool.tasks.base import Options, TaskResult, TaskSpec, required_text


def _description(options: Options) -> str:
    """What to point at; raise VistoolError when empty."""
    return required_text(options, "description", "description: say what to point at")


def _count(result: TaskResult, options: Options) -> None:
    """Record how many points were found."""
    result.extras["count"] = 0 if result.parsed is None else len(result.parsed)


POINT = TaskSpec(
    name="point",
    prompts={
        "default": "Point to every {description} in the image. Output a JSON list where each entry has "
        '"point_2d": [y, x] normalised to 0-1000 and "label". Output only the JSON.',
    },
    kind="points",
    default_budget=280,
    max_new_tokens=512,
    fields=lambda options: {"description": _description(options)},
    classes=lambda options: [_description(options)],
    finish=_count,
    answer=AnswerShape(coords="point", label="free"),
)
