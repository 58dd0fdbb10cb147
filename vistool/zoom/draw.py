"""Draw the passes of a zoomed result: its tiles or refine crops, on the image.

Tiles are drawn as thin grey frames, refine's crops as frames getting warmer with each
pass, each labelled with its purpose and pass number; the result itself is drawn by
`TaskResult.annotate` as usual (draw the passes first, then the result on top).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from vistool.tasks import TaskResult

_TILE = sv.Color(160, 160, 160)
_STEPS = [sv.Color(66, 133, 244), sv.Color(251, 188, 5), sv.Color(234, 67, 53), sv.Color(52, 168, 83), sv.Color(171, 71, 188)]


def zoom_passes(result: TaskResult) -> list[dict[str, Any]]:
    """Return the pass records of a zoomed result (empty when it was not zoomed)."""
    zoom = result.provenance.get("zoom") or {}
    return list(zoom.get("passes") or [])


def draw_passes(image: Image.Image, result: TaskResult, *, thickness: int = 2) -> Image.Image:
    """Return a copy of `image` (the displayed image) with the tiles or crops of a zoomed
    result framed and labelled; a copy of the image itself when it was not zoomed."""
    passes = [record for record in zoom_passes(result) if not record.get("whole_image")]
    scene = image.convert("RGB").copy()
    if not passes:
        return scene
    boxes = np.array([record["crop"] for record in passes], dtype=np.float64)
    tiles = [record["purpose"] == "tile" for record in passes]
    colors = [_TILE if tile else _STEPS[index % len(_STEPS)] for index, tile in enumerate(tiles)]
    detections = sv.Detections(xyxy=boxes, class_id=np.arange(len(passes)))
    palette = sv.ColorPalette(colors)
    scene = sv.BoxAnnotator(color=palette, thickness=thickness, color_lookup=sv.ColorLookup.CLASS).annotate(scene, detections)
    labels = [f"{record['purpose']} {record['index'] + 1}" for record in passes]
    scene = sv.LabelAnnotator(color=palette, text_scale=0.4, text_position=sv.Position.TOP_LEFT,
                              color_lookup=sv.ColorLookup.CLASS).annotate(scene, detections, labels=labels)
    return scene
