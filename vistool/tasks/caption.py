"""caption: a short, normal or detailed description of the image.

Default budget 140: Google advises low budgets for captioning with Gemma 4.
"""

from __future__ import annotations

from vistool.errors import VistoolError
from vistool.tasks.base import Options, TaskSpec

LENGTHS = ("short", "normal", "detailed")


def _length(options: Options) -> str:
    """The caption length; raise VistoolError for an unknown one."""
    length = str(options.get("length") or "normal")
    if length not in LENGTHS:
        raise VistoolError(f"caption length must be one of {', '.join(LENGTHS)} (got {length!r})")
    return length


CAPTION = TaskSpec(
    name="caption",
    prompts={
        "short": "Describe the image in a few words.",
        "normal": "Describe the image in one or two sentences.",
        "default": "Describe the image in one or two sentences.",
        "detailed": "Describe the image in detail: the scene, the objects, their positions and colours, "
        "any text, and what is happening.",
    },
    kind=None,
    default_budget=140,
    max_new_tokens=256,
    variant=_length,
    fields=lambda options: {},
)
