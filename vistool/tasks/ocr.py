"""ocr: plain text in reading order, or text regions (lines or words) with boxes.

Default budget 1120: small text needs the image's full detail (Google's advice for Gemma 4).
"""

from __future__ import annotations

from vistool.errors import VistoolError
from vistool.structured import AnswerShape
from vistool.tasks.base import Options, TaskResult, TaskSpec

_GRANULARITIES = ("line", "word")


def _granularity(options: Options) -> str:
    """"line" or "word"; raise VistoolError otherwise."""
    granularity = str(options.get("granularity") or "line")
    if granularity not in _GRANULARITIES:
        raise VistoolError(f"OCR granularity must be one of {', '.join(_GRANULARITIES)} (got {granularity!r})")
    return granularity


def _region_text(result: TaskResult, options: Options) -> None:
    """Put the regions' text, in reading order, into `extras["text"]`."""
    if result.regions is not None:
        result.extras["text"] = result.regions.text


OCR_TEXT = TaskSpec(
    name="ocr",
    prompts={
        "default": "Read all the text in the image in natural reading order. Output only the text, "
        "keeping line breaks, with no commentary.",
    },
    kind=None,
    default_budget=1120,
    max_new_tokens=1024,
)

OCR_REGIONS = TaskSpec(
    name="ocr_regions",
    prompts={
        "default": "Find every {granularity} of text in the image, in reading order. Output a JSON list where each "
        'entry has "box_2d": [y_min, x_min, y_max, x_max] normalised to 0-1000 and "text": the exact text '
        "of that {granularity}. Output only the JSON.",
    },
    kind="ocr_regions",
    default_budget=1120,
    max_new_tokens=2048,
    fields=lambda options: {"granularity": _granularity(options)},
    finish=_region_text,
    answer=AnswerShape(coords="box", label="none", text=True),
)
