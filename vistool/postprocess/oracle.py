"""Oracle answers: pixel ground truth -> a family's native answer -> parse -> COCO mAP.

`format_answer` is the inverse of parsing: pixels -> the integers the model would emit,
quantised as the family quantises them, in its syntax (also useful for few-shot examples
or fine-tuning targets). `round_trip_map` writes ground truth that way, parses it back
and scores it with pycocotools; tests and eval/bench_parse.py share it.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv
from PIL import Image, ImageOps
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vistool.errors import VistoolError
from vistool.postprocess.coco import coco_categories, detections_to_coco, detections_to_coco_gt
from vistool.postprocess.geometry import boxes_to_quads, check_size, from_pixels, quads_to_boxes
from vistool.postprocess.parse import parse
from vistool.postprocess.readers import coords_per_item
from vistool.postprocess.results import make_detections
from vistool import profiles  # attribute access at call time: profiles import this package
from vistool.profiles.base import ModelProfile


def format_answer(
    profile: str | ModelProfile,
    kind: str,
    pixels: np.ndarray,
    labels: Sequence[str],
    image_size: tuple[int, int],
    resized_size: tuple[int, int] | None = None,
    *,
    fence: bool = True,
) -> str:
    """Return the answer a perfect model of this family would write.

    Takes the family, the kind ("boxes": pixels (n, 4) xyxy; "points": (n, 2) xy;
    "ocr_regions": quads (n, 4, 2) or boxes (n, 4)), one label (or OCR text) per item,
    the displayed (width, height), and the resized size for families that need it.
    JSON answers are wrapped in a ```json fence unless `fence` is False.
    """
    prof = profiles.get_profile(profile)
    prof.reader(kind)  # raises for a kind the family cannot answer
    size = check_size(image_size)
    pixels = np.asarray(pixels, dtype=np.float64)
    count = len(pixels)
    if len(labels) != count:
        raise VistoolError(f"expected {count} labels, got {len(labels)}")
    if kind == "ocr_regions" and count:
        if pixels.ndim == 3 and not prof.ocr_quads:
            pixels = quads_to_boxes(pixels)
        elif pixels.ndim == 2 and prof.ocr_quads:
            pixels = boxes_to_quads(pixels)
    numbers = coords_per_item(prof, kind)
    values = from_pixels(pixels.reshape(count, numbers), prof.coords, size, resized_size).tolist()
    if prof.loc_format is not None:
        fmt = prof.loc_format
        items = []
        for numbers, label in zip(values, labels):
            tokens = "".join(fmt.template.format(number) for number in numbers)
            items.append(f"{tokens} {label}" if fmt.label_side == "after" else f"{label}{tokens}")
        joiner = f" {fmt.separator} " if fmt.separator else ""
        return joiner.join(items)
    key = (prof.point_keys if kind == "points" else prof.box_keys)[0]
    label_key = (prof.text_keys if kind == "ocr_regions" else prof.label_keys)[0]
    answer = json.dumps([{key: numbers, label_key: label} for numbers, label in zip(values, labels)])
    return f"```json\n{answer}\n```" if fence else answer


# --- oracle round trips: ground truth -> native answer -> parse -> COCO mAP -------------


@dataclass
class OracleImage:
    """Ground truth of one image: displayed (width, height), pixel boxes (n, 4) and labels."""

    image_id: int
    size: tuple[int, int]
    xyxy: np.ndarray
    labels: list[str]
    name: str = ""


def yolo_to_xyxy(rows: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Convert YOLO rows (n, 4) [cx, cy, w, h] normalised 0..1 to pixel boxes [x1, y1, x2, y2]."""
    width, height = size
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = rows[:, 0] * width, rows[:, 1] * height, rows[:, 2] * width, rows[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def load_yolo_dataset(root: str | Path) -> list[OracleImage]:
    """Read a YOLO dataset folder (images/<split>/*.jpg, labels/<split>/*.txt, *.yaml names).

    Returns one `OracleImage` per image, sizes as displayed (EXIF orientation applied to
    the size), boxes in pixels, labels as class names from the yaml's `names:` block.
    """
    root = Path(root)
    names: dict[int, str] = {}
    for yaml_file in sorted(root.glob("*.yaml")):
        for line in yaml_file.read_text().splitlines():
            match = re.match(r"\s+(\d+):\s*(.+?)\s*$", line)
            if match:
                names[int(match.group(1))] = match.group(2)
    images: list[OracleImage] = []
    for index, label_file in enumerate(sorted(root.glob("labels/*/*.txt"))):
        split = label_file.parent.name
        candidates = sorted((root / "images" / split).glob(label_file.stem + ".*"))
        if not candidates:
            continue
        with Image.open(candidates[0]) as image:
            size = ImageOps.exif_transpose(image).size if image.getexif().get(0x0112, 1) != 1 else image.size
        rows = [line.split() for line in label_file.read_text().splitlines() if line.strip()]
        classes = [names.get(int(row[0]), row[0]) for row in rows]
        xyxy = yolo_to_xyxy(np.array([[float(v) for v in row[1:5]] for row in rows]), size)
        images.append(OracleImage(index + 1, size, xyxy, classes, str(candidates[0])))
    return images


def extreme_images(first_id: int = 1000) -> list[OracleImage]:
    """Return synthetic ground truth on extreme shapes: 3000x40, 40x3000 and 7x7 pixels."""
    wide = np.array([[0, 0, 3000, 40], [0, 0, 1000, 40], [200, 4, 2800, 36], [1500, 10, 2990, 30]], dtype=np.float64)
    tall = wide[:, [1, 0, 3, 2]]
    tiny = np.array([[0, 0, 7, 7], [1, 1, 6, 6], [2, 0, 5, 7], [0, 3, 7, 6]], dtype=np.float64)
    labels = ["strip", "block", "band", "bar"]
    return [
        OracleImage(first_id, (3000, 40), wide, labels, "3000x40"),
        OracleImage(first_id + 1, (40, 3000), tall, labels, "40x3000"),
        OracleImage(first_id + 2, (7, 7), tiny, labels, "7x7"),
    ]


def coco_map(truth: Sequence[OracleImage], predictions: Sequence[sv.Detections], classes: Sequence[str]) -> float:
    """Score detections against ground truth with pycocotools; return mAP@[.5:.95].

    `predictions[i]` belongs to `truth[i]`; categories are matched by name.
    """
    return coco_stats(truth, predictions, classes)[0]


def coco_stats(truth: Sequence[OracleImage], predictions: Sequence[sv.Detections], classes: Sequence[str]) -> list[float]:
    """Score detections against ground truth with pycocotools; return its 12 summary stats.

    `stats[0]` is mAP@[.5:.95], `stats[1]` AP@.5 (pycocotools' order); all 0.0 when there
    is no detection at all. `predictions[i]` belongs to `truth[i]`; categories by name.
    """
    categories = coco_categories(list(classes))
    images, annotations, results = [], [], []
    for image, detections in zip(truth, predictions):
        width, height = image.size
        images.append({"id": image.image_id, "width": width, "height": height})
        gt, _ = make_detections(image.xyxy, image.labels, classes)
        annotations.extend(detections_to_coco_gt(gt, image.image_id, categories, len(annotations) + 1))
        results.extend(detections_to_coco(detections, image.image_id, categories))
    if not results:
        return [0.0] * 12
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations, "categories": categories}
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats]


def round_trip_map(
    profile: str | ModelProfile,
    truth: Sequence[OracleImage],
    resized: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
) -> float:
    """Write each image's ground truth as the family's answer, parse it back, return mAP@[.5:.95].

    `resized(size)` gives the processor-resized (width, height) for families that answer
    in resized pixels (e.g. Qwen2.5-VL's smart_resize); required for those families.
    """
    prof = profiles.get_profile(profile)
    classes = sorted({label for image in truth for label in image.labels})
    predictions = []
    for image in truth:
        resized_size = resized(image.size) if (resized is not None and prof.needs_resized_size) else None
        answer = format_answer(prof, "boxes", image.xyxy, image.labels, image.size, resized_size)
        predictions.append(parse(answer, image.size, prof, classes=classes, resized_size=resized_size).detections)
    return coco_map(truth, predictions, classes)
