"""COCO conversion: detections -> COCO results, COCO ground truth -> detections.

COCO boxes are [x, y, width, height] in pixels; categories are matched BY NAME, so a
detector's class ids (the order of the prompt's classes) never need to agree with the
dataset's category ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import supervision as sv
from supervision.config import CLASS_NAME_DATA_FIELD

from vistool.errors import VistoolError
from vistool.postprocess.results import assign_class_ids

Categories = Mapping[str, int] | Sequence[Mapping[str, Any]]


def coco_categories(classes: Sequence[str], first_id: int = 1) -> list[dict[str, Any]]:
    """Return a COCO "categories" list for class names: ids first_id, first_id + 1, ..."""
    return [{"id": first_id + index, "name": name} for index, name in enumerate(classes)]


def _name_to_id(categories: Categories) -> dict[str, int]:
    """Return {category name: id} from a mapping or a COCO "categories" list."""
    if isinstance(categories, Mapping):
        return {str(name): int(cid) for name, cid in categories.items()}
    return {str(cat["name"]): int(cat["id"]) for cat in categories}


def detections_to_coco(
    detections: sv.Detections,
    image_id: int,
    categories: Categories,
    *,
    default_score: float = 1.0,
    skip_unknown: bool = True,
) -> list[dict[str, Any]]:
    """Convert detections of one image to COCO result entries.

    Takes `sv.Detections` in pixels with `data["class_name"]`, the COCO image id, and
    the categories (a {name: id} mapping or a COCO "categories" list). Returns a list of
    {"image_id", "category_id", "bbox": [x, y, w, h], "score"}; the score is the
    detection's confidence, or `default_score` when unknown. Detections whose name is not
    a category are skipped (or raise VistoolError when `skip_unknown` is False).
    """
    ids = _name_to_id(categories)
    names = detections.data.get(CLASS_NAME_DATA_FIELD)
    if names is None:
        if len(detections) == 0:  # sv.Detections.empty() carries no data fields
            return []
        raise VistoolError("detections need data['class_name'] to be matched to COCO categories")
    scores = detections.confidence if detections.confidence is not None else np.full(len(detections), default_score)
    results: list[dict[str, Any]] = []
    for (x1, y1, x2, y2), name, score in zip(np.asarray(detections.xyxy, dtype=np.float64).tolist(), names, scores.tolist()):
        category_id = ids.get(str(name))
        if category_id is None:
            if skip_unknown:
                continue
            raise VistoolError(f"class {name!r} is not a COCO category here")
        results.append(
            {"image_id": image_id, "category_id": category_id, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
        )
    return results


def coco_to_detections(coco: Any, image_id: int, classes: Sequence[str] | None = None) -> sv.Detections:
    """Convert the ground truth of one image to `sv.Detections`.

    Takes a COCO dataset (a dict with "annotations" and "categories", or a
    pycocotools `COCO`), the image id, and optionally the class names that fix class ids
    (as for parsed answers: requested classes first, others after); without `classes`,
    `class_id` is the COCO category id. Returns detections with `data["class_name"]`,
    `data["iscrowd"]`, `data["area"]` and `data["annotation_id"]`; `metadata` holds the
    image's width and height when the dataset lists them.
    """
    dataset = getattr(coco, "dataset", coco)
    names = {int(cat["id"]): str(cat["name"]) for cat in dataset.get("categories", [])}
    annotations = [ann for ann in dataset.get("annotations", []) if ann.get("image_id") == image_id]
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (ann["bbox"] for ann in annotations)], dtype=np.float64)
    class_names = [names.get(int(ann["category_id"]), str(ann["category_id"])) for ann in annotations]
    if classes is not None:
        class_id, class_names, _ = assign_class_ids(class_names, classes)
    else:
        class_id = np.array([int(ann["category_id"]) for ann in annotations], dtype=np.int64)
    metadata: dict[str, Any] = {"image_id": image_id}
    for image in dataset.get("images", []):
        if image.get("id") == image_id:
            metadata.update({key: image[key] for key in ("width", "height", "file_name") if key in image})
    count = len(annotations)
    return sv.Detections(
        xyxy=xyxy.reshape(count, 4),
        class_id=class_id,
        data={
            CLASS_NAME_DATA_FIELD: np.array(class_names, dtype=str),
            "iscrowd": np.array([int(ann.get("iscrowd", 0)) for ann in annotations], dtype=np.int64),
            "area": np.array([float(ann.get("area", (ann["bbox"][2] * ann["bbox"][3]))) for ann in annotations]),
            "annotation_id": np.array([int(ann.get("id", index + 1)) for index, ann in enumerate(annotations)], dtype=np.int64),
        },
        metadata=metadata,
    )


def detections_to_coco_gt(detections: sv.Detections, image_id: int, categories: Categories, first_annotation_id: int = 1) -> list[dict[str, Any]]:
    """Convert detections to COCO ground-truth annotations (with "id", "area", "iscrowd" = 0).

    Useful to build a ground-truth file from labels (e.g. YOLO) for pycocotools.
    """
    entries = detections_to_coco(detections, image_id, categories, skip_unknown=False)
    for index, entry in enumerate(entries):
        entry.pop("score")
        entry.update({"id": first_annotation_id + index, "area": entry["bbox"][2] * entry["bbox"][3], "iscrowd": 0})
    return entries
