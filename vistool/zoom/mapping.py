"""From a crop back to the whole image: crop the pixels, shift the answer.

`crop` cuts a tile or a refine crop out of the displayed image (and notes its box on
the crop, in `image.info["vistool_crop"]`, so a backend or a log can tell where it came
from). `shift_result` takes a task's result interpreted in the crop's pixels and returns
it in the whole image's pixels: boxes, points, OCR quads and the geometric extras tasks
write (`click`, `box`, and the `box` of each GUI element).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from vistool.postprocess import OCRRegion, OCRResult, ParseResult, PointsResult
from vistool.tasks import TaskResult
from vistool.zoom.tiling import Box

CROP_INFO = "vistool_crop"  # key of a crop's box (x1, y1, x2, y2) in its image.info


def crop(image: Image.Image, box: Box) -> Image.Image:
    """Return the part of `image` inside `box` (the image itself when the box is all of
    it), with the box noted in `info[CROP_INFO]`."""
    if tuple(box) == (0, 0, image.width, image.height):
        return image
    piece = image.crop(tuple(box))
    piece.info[CROP_INFO] = tuple(int(value) for value in box)
    return piece


def is_whole(box: Box, size: tuple[int, int]) -> bool:
    """True when `box` is the whole (width, height) image."""
    return tuple(box) == (0, 0, int(size[0]), int(size[1]))


def shift_parse(parsed: ParseResult, dx: float, dy: float, image_size: tuple[int, int]) -> ParseResult:
    """Return a copy of `parsed` moved by (dx, dy) pixels and referring to `image_size`."""
    result = parsed.result
    moved: Any
    if isinstance(result, sv.Detections):
        moved = copy.copy(result)
        moved.xyxy = result.xyxy + np.array([dx, dy, dx, dy])
        moved.data = dict(result.data)
        if "xyxyxyxy" in moved.data:
            moved.data["xyxyxyxy"] = np.asarray(moved.data["xyxyxyxy"]) + np.array([dx, dy])
    elif isinstance(result, PointsResult):
        moved = PointsResult(result.xy + np.array([dx, dy]), result.class_id.copy(), list(result.class_name),
                             None if result.confidence is None else result.confidence.copy(), result.spans.copy())
    else:
        moved = OCRResult([_shift_region(region, dx, dy) for region in result.regions])
    return ParseResult(parsed.kind, parsed.profile, (int(image_size[0]), int(image_size[1])), moved, copy.deepcopy(parsed.diagnostics))


def _shift_region(region: OCRRegion, dx: float, dy: float) -> OCRRegion:
    """An OCR region moved by (dx, dy)."""
    quad = tuple((x + dx, y + dy) for x, y in region.quad)
    x1, y1, x2, y2 = region.box
    return OCRRegion(region.text, quad, (x1 + dx, y1 + dy, x2 + dx, y2 + dy), region.confidence, region.span)


def shift_extras(extras: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    """Return a copy of a result's extras with its click point, box and element boxes moved."""
    moved = copy.deepcopy(extras)
    if moved.get("click") is not None:
        moved["click"] = [float(moved["click"][0] + dx), float(moved["click"][1] + dy)]
    if moved.get("box") is not None:
        moved["box"] = _shift_box(moved["box"], dx, dy)
    for element in moved.get("elements") or []:
        if element.get("box") is not None:
            element["box"] = _shift_box(element["box"], dx, dy)
    return moved


def _shift_box(box: Any, dx: float, dy: float) -> list[float]:
    """A box [x1, y1, x2, y2] moved by (dx, dy)."""
    x1, y1, x2, y2 = box
    return [float(x1 + dx), float(y1 + dy), float(x2 + dx), float(y2 + dy)]


def shift_result(result: TaskResult, box: Box, image_size: tuple[int, int]) -> TaskResult:
    """Return a task result interpreted on the crop `box` as a result on the whole image
    of `image_size` (W, H): parsed items and geometric extras moved by the box's corner."""
    dx, dy = float(box[0]), float(box[1])
    return TaskResult(
        task=result.task,
        source=result.source,
        image_size=(int(image_size[0]), int(image_size[1])),
        text=result.text,
        parsed=None if result.parsed is None else shift_parse(result.parsed, dx, dy, image_size),
        extras=shift_extras(result.extras, dx, dy),
        provenance=dict(result.provenance),
        error=result.error,
    )
