"""detect: open-vocabulary object detection, every asked class in ONE prompt (or all objects).

Options: `classes` (names, or None for all objects) and `allow_other` (structured
generation offers the label "other" for objects outside the classes; otherwise the
label must be one of them).
"""

from __future__ import annotations

from vistool.structured import OTHER_LABEL, AnswerShape
from vistool.tasks.base import Options, TaskSpec, split_list

_FORMAT = (
    'Output a JSON list where each entry has "box_2d": [y_min, x_min, y_max, x_max] with coordinates '
    'normalised to 0-1000, and "label": the name of the object. Output only the JSON.'
)


def _classes(options: Options) -> list[str] | None:
    """The asked class names, or None for "all objects"."""
    return split_list(options["classes"], "class list") if options.get("classes") else None


DETECT = TaskSpec(
    name="detect",
    prompts={
        "default": "Detect every instance of the following objects in the image: {classes}. "
        + _FORMAT.replace("the name of the object", "one of: {labels}"),
        "all": "Detect all objects in the image. " + _FORMAT,
    },
    kind="boxes",
    default_budget=280,
    max_new_tokens=1024,
    variant=lambda options: "default" if _classes(options) else "all",
    fields=lambda options: {
        "classes": ", ".join(_classes(options) or []),
        "labels": ", ".join(_classes(options) or []) + (f", or {OTHER_LABEL}" if options.get("allow_other") else ""),
        "classes_semicolon": " ; ".join(_classes(options) or []),
    },
    classes=_classes,
    answer=AnswerShape(coords="box", label="classes"),
)
