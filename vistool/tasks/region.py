"""region: where in the image something is, roughly: a box around it with some context.

The first pass of coarse-to-fine zoom ("refine") asks this on the whole image, then
crops there and asks the real question again; a low-resolution view can often tell the
area of a small target when it cannot place the target itself.
"""

from __future__ import annotations

from vistool.tasks.base import Options, TaskSpec, required_text


def _target(options: Options) -> str:
    """What to find; raise VistoolError when empty."""
    return required_text(options, "target", "target: say what the region should contain")


REGION = TaskSpec(
    name="region",
    prompts={
        "default": 'Which part of the image contains "{target}"? Output a JSON list with one entry that has '
        '"box_2d": [y_min, x_min, y_max, x_max] of a region around it, with some of its surroundings, '
        'normalised to 0-1000, and "label". Output only the JSON.',
    },
    kind="boxes",
    default_budget=280,
    max_new_tokens=128,
    fields=lambda options: {"target": _target(options)},
    classes=lambda options: [_target(options)],
)
