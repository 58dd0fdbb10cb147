"""gui_mark: ground an instruction on a screenshot drawn with numbered marks (set-of-marks).

The request's image is the marked screenshot (`vistool.postprocess.marks.draw_marks` of
the elements `gui_elements` found); the prompt lists the marks, and the model answers
with one mark id. The answer is mapped back to that element: its box, type and click
point (the box centre), in pixels of the screenshot.
"""

from __future__ import annotations

import re

from vistool.errors import VistoolError
from vistool.postprocess.marks import element_for, mark_list, numbered
from vistool.tasks.base import Options, TaskResult, TaskSpec, required_text

_NUMBER = re.compile(r"-?\d+")


def _elements(options: Options) -> list[dict]:
    """The marked elements; raise VistoolError when there are none."""
    elements = options.get("elements")
    if not elements:
        raise VistoolError("no elements to mark: the screenshot gave no user-interface elements")
    return numbered(elements)


def read_mark(text: str) -> int | None:
    """Return the mark id an answer names (`{"mark": 7}`, "7", "mark 7"), or None."""
    from vistool.postprocess import extract_json_items

    found = extract_json_items(text, ("mark", "id"))
    for item in found.items:
        if isinstance(item, dict):
            value = item.get("mark", item.get("id"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(value)
            if isinstance(value, str) and _NUMBER.search(value):
                return int(_NUMBER.search(value).group())
    match = _NUMBER.search(text or "")
    return int(match.group()) if match else None


def _pick(result: TaskResult, options: Options) -> None:
    """Map the answer's mark id to its element: `extras` mark, box, label, click, element."""
    elements = _elements(options)
    mark = read_mark(result.text)
    element = element_for(elements, mark) if mark is not None else None
    result.extras.update(mark=mark, elements=elements, element=element)
    if element is None:
        result.extras.update(click=None, box=None, label=None)
        result.extras["problem"] = "no mark id in the answer" if mark is None else f"mark {mark} is not on the screenshot"
        return
    result.extras.update(click=element["center"], box=element["box"], label=element.get("type"))


GUI_MARK = TaskSpec(
    name="gui_mark",
    prompts={
        "default": "This screenshot has numbered marks on its user-interface elements:\n{marks}\n"
        'Which mark should be clicked to "{instruction}"? Output JSON {{"mark": <number>}}. Output only the JSON.',
    },
    kind=None,
    default_budget=1120,
    max_new_tokens=32,
    fields=lambda options: {
        "marks": mark_list(_elements(options)),
        "instruction": required_text(options, "instruction", "instruction: say which element to act on"),
    },
    finish=_pick,
    json_stop=True,  # one JSON object: generation ends when it closes
)

__all__ = ["GUI_MARK", "read_mark"]
