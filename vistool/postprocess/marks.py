"""Set-of-marks: a screenshot's elements drawn as numbered marks (OmniParser style).

An agent shown the marked screenshot can answer with a number ("click 7"); `element_for`
turns that number back into the element: its box and where to click (the box centre).
Marks are drawn with supervision's annotators, in the screenshot's own pixels, so an
element's box is the same on the marked and on the original image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from vistool.errors import VistoolError

PALETTE = sv.ColorPalette.DEFAULT


def numbered(elements: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the elements with their mark id (`id`: 1, 2, ... in the given order) and
    `center` (the click point, [x, y] pixels); ids already present are kept."""
    marked = []
    for index, element in enumerate(elements, start=1):
        x1, y1, x2, y2 = (float(value) for value in element["box"])
        marked.append({**element, "id": int(element.get("id", index)), "center": [(x1 + x2) / 2, (y1 + y2) / 2]})
    return marked


def draw_marks(image: Image.Image, elements: Sequence[Mapping[str, Any]], *, thickness: int = 2,
               text_scale: float = 0.5) -> Image.Image:
    """Draw every element's box and its mark id on a copy of `image`; return the copy.

    Takes the screenshot (PIL) and the elements (each with "box" [x1, y1, x2, y2] pixels
    and, optionally, "id"; see `numbered`). Each mark has its own colour, with the id in a
    tag on the box's top-left corner (above it where there is room).
    """
    if not isinstance(image, Image.Image):
        raise VistoolError(f"draw_marks needs a PIL image, got {type(image).__name__}")
    scene = image.convert("RGB").copy()
    marks = numbered(elements)
    if not marks:
        return scene
    detections = sv.Detections(
        xyxy=np.array([mark["box"] for mark in marks], dtype=np.float64).reshape(-1, 4),
        class_id=np.arange(len(marks), dtype=np.int64),
    )
    lookup = np.arange(len(marks), dtype=np.int64) % len(PALETTE.colors)
    scene = sv.BoxAnnotator(color=PALETTE, thickness=thickness).annotate(scene, detections, custom_color_lookup=lookup)
    labeler = sv.LabelAnnotator(color=PALETTE, text_scale=text_scale, text_position=sv.Position.TOP_LEFT, smart_position=True)
    return labeler.annotate(scene, detections, labels=[str(mark["id"]) for mark in marks], custom_color_lookup=lookup)


def mark_list(elements: Sequence[Mapping[str, Any]]) -> str:
    """Return one line per mark for a prompt: `7: button "Submit"`."""
    lines = []
    for mark in numbered(elements):
        text = str(mark.get("text") or "").replace("\n", " ").strip()
        lines.append(f'{mark["id"]}: {mark.get("type", "element")}' + (f' "{text}"' if text else ""))
    return "\n".join(lines)


def element_for(elements: Sequence[Mapping[str, Any]], mark: int) -> dict[str, Any] | None:
    """Return the element with mark id `mark` (with its `center`), or None when there is none."""
    return next((element for element in numbered(elements) if element["id"] == mark), None)


__all__ = ["draw_marks", "element_for", "mark_list", "numbered"]
