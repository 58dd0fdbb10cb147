"""COCO-style image labels: one classification per image, with its probability.

    {"categories": [{"id": 1, "name": "cat"}, ...],
     "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}, ...],
     "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "score": 0.93,
                      "probabilities": {"cat": 0.05, "dog": 0.93, ...}}, ...]}

The COCO detection layout without boxes (as image-level label sets are published), so
pycocotools' `COCO(...)` reads it: `getAnnIds(imgIds=...)`, `loadAnns`, `loadCats`.
Categories are the labels that were asked for, in order (ids from 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vistool.tasks import TaskResult


def coco_image_labels(items: Sequence[tuple[str, TaskResult]]) -> dict:
    """Return the COCO-style label json of (image name, classification result) pairs.

    Images are listed in name order with ids 1..N; failed results are left out.
    """
    usable = sorted(((name, result) for name, result in items if result.ok and "label" in result.extras),
                    key=lambda pair: pair[0])
    names: dict[str, None] = {}
    for _, result in usable:
        names.update(dict.fromkeys(str(label) for label in result.extras.get("labels", [])))
    ids = {name: number for number, name in enumerate(names, start=1)}
    images, annotations = [], []
    for image_id, (name, result) in enumerate(usable, start=1):
        width, height = result.image_size
        images.append({"id": image_id, "file_name": name, "width": int(width), "height": int(height)})
        probabilities = dict(zip((str(label) for label in result.extras["labels"]), result.extras["probabilities"]))
        annotations.append({
            "id": len(annotations) + 1,
            "image_id": image_id,
            "category_id": ids[str(result.extras["label"])],
            "score": float(result.extras["confidence"]),
            "probabilities": probabilities,
        })
    return {
        "info": {"description": "image labels written by vistool (classification by label log-probability)"},
        "licenses": [],
        "categories": [{"id": number, "name": name, "supercategory": ""} for name, number in ids.items()],
        "images": images,
        "annotations": annotations,
    }


def write_coco_image_labels(path: Path, items: Sequence[tuple[str, TaskResult]]) -> int:
    """Write `coco_image_labels(items)` to `path` (atomically); return the number of labels."""
    from vistool.batch.export import atomic_write_text

    data = coco_image_labels(items)
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return len(data["annotations"])


__all__ = ["coco_image_labels", "write_coco_image_labels"]
