"""gui: list the elements of a screenshot, or ground an instruction to the element to click.

Default budget 1120: screenshots are dense with small text and icons.
"""

from __future__ import annotations

import numpy as np

from vistool.errors import VistoolError
from vistool.profiles import get_profile
from vistool.structured import AnswerShape
from vistool.tasks.base import Options, TaskResult, TaskSpec, item_fields, required_text

ELEMENT_TYPES = ["button", "link", "input", "checkbox", "radio", "dropdown", "icon", "text", "image", "tab", "menu"]
_TRUE = {"true", "yes", "1"}


def _elements(result: TaskResult, options: Options) -> None:
    """Record each element's mark id (1, 2, ...), type, visible text and interactivity in `extras["elements"]`."""
    if result.parsed is None:
        return
    detections = result.parsed.detections
    fields = item_fields(result.text, result.parsed.spans, ("box_2d", "bbox_2d", "box"))
    elements = []
    for index, item in enumerate(fields):
        kind = str(detections.data["class_name"][index])
        interactive = item.get("interactive")
        if isinstance(interactive, str):
            interactive = interactive.strip().lower() in _TRUE
        elements.append(
            {
                "id": index + 1,  # its set-of-marks number (vistool.postprocess.marks)
                "type": kind,
                "text": str(item.get("text") or ""),
                "interactive": bool(interactive) if interactive is not None else kind != "text" and kind != "image",
                "box": [float(v) for v in detections.xyxy[index]],
            }
        )
    detections.data["text"] = np.array([element["text"] for element in elements], dtype=object)
    result.extras["elements"] = elements


def _instruction(options: Options) -> str:
    """The instruction; raise VistoolError when empty."""
    return required_text(options, "instruction", "instruction: say which element to act on")


def _point_only(result: TaskResult) -> None:
    """Take the click from an answer that gave a point and no box (then `box` is None)."""
    from vistool.postprocess import parse

    result.extras["click"] = None
    profile = get_profile(result.provenance.get("profile") or "gemma4")
    sizes = result.provenance.get("image_sizes") or []
    resized = tuple(sizes[0]) if sizes and profile.needs_resized_size else None
    try:
        points = parse(result.text, result.image_size, profile, "points", resized_size=resized)
    except VistoolError:  # a family without a point format (or without the resized size): no click to take
        return
    if len(points):
        label = str(points.result.class_name[0])
        result.extras.update(click=[float(v) for v in points.result.xy[0]], box=None, label=label)


def _click(result: TaskResult, options: Options) -> None:
    """Choose the element (the first box) and its click point: the model's point when it
    gave one inside the answer item, else the box centre; a point with no box is the click."""
    if result.parsed is None:
        result.extras["click"] = None
        return
    if len(result.parsed) == 0:
        _point_only(result)
        return
    box = result.parsed.detections.xyxy[0]
    span = result.parsed.spans[0]
    item = item_fields(result.text, [span], ("box_2d", "bbox_2d", "point_2d"))[0]
    click = None
    profile = get_profile(result.provenance.get("profile") or "gemma4")
    sizes = result.provenance.get("image_sizes") or []
    resized = tuple(sizes[0]) if sizes and profile.needs_resized_size else None
    point_keys = profile.point_keys + profile.variants.point_keys
    if any(key in item for key in point_keys) and (resized is not None or not profile.needs_resized_size):
        from vistool.postprocess import parse

        # Points in the family's convention; Qwen2.5-VL's are pixels of the resized image, as its boxes.
        points = parse(result.text[span[0] : span[1]] if span else "", result.image_size, profile, "points", resized_size=resized)
        if len(points):
            click = [float(v) for v in points.result.xy[0]]
    if click is None:
        click = [float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2)]
    result.extras.update(click=click, box=[float(v) for v in box], label=str(result.parsed.detections.data["class_name"][0]))


GUI_ELEMENTS = TaskSpec(
    name="gui_elements",
    prompts={
        "default": "List every visible user-interface element in this screenshot. Output a JSON list where each "
        'entry has "box_2d": [y_min, x_min, y_max, x_max] normalised to 0-1000, "label": the element type (one of: '
        '{element_types}), "text": its visible text or "" and "interactive": true or false. Output only the JSON.',
    },
    kind="boxes",
    default_budget=1120,
    max_new_tokens=2048,
    fields=lambda options: {"element_types": ", ".join(ELEMENT_TYPES)},
    classes=lambda options: list(ELEMENT_TYPES),
    finish=_elements,
    answer=AnswerShape(
        coords="box",
        label=tuple(ELEMENT_TYPES),
        extra=(("text", {"type": "string", "maxLength": 300}), ("interactive", {"type": "boolean"})),
    ),
)

GUI_GROUND = TaskSpec(
    name="gui_ground",
    prompts={
        "default": 'In this screenshot, which element should be clicked to "{instruction}"? Output a JSON list with '
        'one entry that has "box_2d": [y_min, x_min, y_max, x_max] of the element, "point_2d": [y, x] where to '
        'click, both normalised to 0-1000, and "label": the element. Output only the JSON.',
    },
    kind="boxes",
    default_budget=1120,
    max_new_tokens=256,
    fields=lambda options: {"instruction": _instruction(options)},
    finish=_click,
    answer=AnswerShape(coords="box", point=True, label="free", min_items=1, max_items=1),
)
