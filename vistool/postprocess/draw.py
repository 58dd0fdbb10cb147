"""Draw any result on an image with supervision's annotators.

One call, `draw(image, result)`, for boxes, points and OCR regions. Colours are stable
per class NAME (a hash into supervision's default palette), so "person" has the same
colour in every image and every task, whatever its class id.
"""

from __future__ import annotations

import zlib
from typing import Union

import numpy as np
import supervision as sv
from PIL import Image
from supervision.config import CLASS_NAME_DATA_FIELD

from vistool.errors import VistoolError
from vistool.postprocess.parse import ParseResult
from vistool.postprocess.results import OCRResult, PointsResult

Drawable = Union[ParseResult, sv.Detections, PointsResult, OCRResult]
PALETTE = sv.ColorPalette.DEFAULT
OCR_COLOR_INDEX = 12  # one colour for all text regions


def class_color_index(name: str) -> int:
    """Return the palette index of a class name (the same in every run)."""
    return zlib.crc32(name.encode("utf-8")) % len(PALETTE.colors)


def _lookup(detections: sv.Detections) -> np.ndarray:
    """Return the palette index of every detection, from its class name."""
    names = detections.data.get(CLASS_NAME_DATA_FIELD)
    if names is None:
        names = detections.class_id if detections.class_id is not None else np.zeros(len(detections), dtype=np.int64)
    return np.array([class_color_index(str(name)) for name in names], dtype=np.int64)


def _labels(detections: sv.Detections) -> list[str]:
    """Return the text to write beside each detection: its class name and score when known."""
    names = detections.data.get(CLASS_NAME_DATA_FIELD)
    if names is not None:
        names = [str(name) for name in names]
    elif detections.class_id is not None:
        names = [str(class_id) for class_id in detections.class_id.tolist()]
    else:
        names = [""] * len(detections)
    if detections.confidence is None:
        return names
    return [f"{name} {score:.2f}" for name, score in zip(names, detections.confidence.tolist())]


def draw(
    image: Image.Image | np.ndarray,
    result: Drawable,
    *,
    labels: bool = True,
    thickness: int = 2,
    text_scale: float = 0.5,
    point_radius: int = 5,
) -> Image.Image | np.ndarray:
    """Draw a result on a copy of `image` and return it (a PIL image for a PIL input, else an array).

    Takes the displayed image (as loaded, EXIF-transposed; arrays are RGB) and a `ParseResult`,
    `sv.Detections`, `PointsResult` or `OCRResult`. Boxes get rectangles, points dots,
    OCR regions their quadrilaterals; `labels` adds class names (or text) beside them.
    """
    if isinstance(result, ParseResult):
        result = result.result
    if isinstance(image, np.ndarray):  # RGB, as vistool loads images (supervision takes arrays as BGR)
        drawn = draw(Image.fromarray(image).convert("RGB"), result, labels=labels, thickness=thickness,
                     text_scale=text_scale, point_radius=point_radius)
        return np.asarray(drawn).copy()
    if not isinstance(image, Image.Image):
        raise VistoolError(f"draw needs a PIL image or an RGB numpy array, got {type(image).__name__}")
    scene = image.convert("RGB").copy()
    if isinstance(result, PointsResult):
        detections = result.to_detections()
        annotators: list[sv.annotators.base.BaseAnnotator] = [sv.DotAnnotator(color=PALETTE, radius=point_radius)]
        position = sv.Position.TOP_CENTER
    elif isinstance(result, OCRResult):
        detections = result.to_detections()
        annotators = [sv.OrientedBoxAnnotator(color=PALETTE, thickness=thickness)]
        position = sv.Position.TOP_LEFT
    elif isinstance(result, sv.Detections):
        detections = result
        annotators = [sv.BoxAnnotator(color=PALETTE, thickness=thickness)]
        position = sv.Position.TOP_LEFT
    else:
        raise VistoolError(f"cannot draw a {type(result).__name__}")
    if len(detections) == 0:
        return scene
    if isinstance(result, OCRResult):
        lookup = np.full(len(detections), OCR_COLOR_INDEX, dtype=np.int64)
    else:
        lookup = _lookup(detections)
    for annotator in annotators:
        scene = annotator.annotate(scene, detections, custom_color_lookup=lookup)
    if labels:
        label_annotator = sv.LabelAnnotator(color=PALETTE, text_scale=text_scale, text_position=position, smart_position=True)
        scene = label_annotator.annotate(scene, detections, labels=_labels(detections), custom_color_lookup=lookup)
    return scene
