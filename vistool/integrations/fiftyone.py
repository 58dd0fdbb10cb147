"""FiftyOne: vistool results as label fields of a FiftyOne dataset (`pip install vistool[fiftyone]`).

    import fiftyone as fo
    from vistool.integrations.fiftyone import add_results
    dataset = add_results("my-photos", [("photos/a.jpg", result), ...], field="gemma_detect")
    fo.launch_app(dataset)

What each result becomes (coordinates relative to the image, as FiftyOne wants them):
  - boxes (detect, ground, gui): `fo.Detections`, each with its label and log-prob
    confidence; GUI elements also carry `text`, `interactive` and their mark `id`;
  - OCR regions: `fo.Detections` with a `text` attribute, and in `<field>_quads` the
    regions' quadrilaterals as closed `fo.Polylines` (same text);
  - points: `fo.Keypoints`, one keypoint per point, with its confidence;
  - classification: `fo.Classification` (the most probable label and its probability)
    and in `<field>_all` every label with its probability (`fo.Classifications`);
  - text (captions, replies, plain OCR): a string field.
Samples are keyed by their absolute file path: a sample already in the dataset gets the
field set (its other fields are kept), a new one is added. A failed result writes nothing,
so it never erases an earlier label. The dataset is made persistent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vistool.errors import VistoolError
from vistool.tasks import TASKS, TaskResult


def _fo():
    """Import fiftyone, or say how to install it."""
    try:
        import fiftyone
    except ImportError as error:  # the optional extra
        raise VistoolError("the FiftyOne integration needs fiftyone: pip install 'vistool[fiftyone]'") from error
    return fiftyone


def _relative_box(box: Sequence[float], size: tuple[int, int]) -> list[float]:
    """An [x1, y1, x2, y2] pixel box as FiftyOne's [x, y, width, height] in 0..1."""
    width, height = size
    x1, y1, x2, y2 = (float(value) for value in box)
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def _score(values: Any, index: int) -> float | None:
    """The index-th confidence, or None."""
    return None if values is None else float(values[index])


def to_labels(result: TaskResult, field: str) -> dict[str, Any]:
    """Return the fields (name -> FiftyOne label or string) that one result sets.

    Takes the result and the field name to write it under. Returns {} for a failed result.
    """
    fo = _fo()
    if not result.ok:
        return {}
    size = result.image_size
    spec = TASKS[result.task]
    if spec.choices is not None:
        labels, probabilities = result.extras.get("labels", []), result.extras.get("probabilities", [])
        everything = [fo.Classification(label=str(label), confidence=float(p)) for label, p in zip(labels, probabilities)]
        best = fo.Classification(label=str(result.extras.get("label")), confidence=result.extras.get("confidence"),
                                 logits=[float(value) for value in result.extras.get("logprobs", [])])
        return {field: best, f"{field}_all": fo.Classifications(classifications=everything)}
    if spec.kind == "boxes":
        detections = result.detections
        names = detections.data.get("class_name")
        elements = result.extras.get("elements") or []
        items = []
        for index, box in enumerate(detections.xyxy.tolist()):
            attributes: dict[str, Any] = {}
            if index < len(elements):
                attributes = {key: elements[index][key] for key in ("id", "text", "interactive") if key in elements[index]}
            items.append(fo.Detection(
                label=str(names[index]) if names is not None else "object",
                bounding_box=_relative_box(box, size),
                confidence=_score(detections.confidence, index),
                **attributes,
            ))
        return {field: fo.Detections(detections=items)}
    if spec.kind == "ocr_regions":
        regions = result.regions.regions if result.regions is not None else []
        boxes, quads = [], []
        for region in regions:
            boxes.append(fo.Detection(label="text", bounding_box=_relative_box(region.box, size),
                                      confidence=region.confidence, text=region.text))
            points = [(float(x) / size[0], float(y) / size[1]) for x, y in region.quad]
            quads.append(fo.Polyline(label="text", points=[points], closed=True, filled=False,
                                     confidence=region.confidence, text=region.text))
        return {field: fo.Detections(detections=boxes), f"{field}_quads": fo.Polylines(polylines=quads)}
    if spec.kind == "points":
        points = result.points
        keypoints = []
        if points is not None:
            for index, ((x, y), label) in enumerate(zip(points.xy.tolist(), points.class_name)):
                score = _score(points.confidence, index)
                keypoints.append(fo.Keypoint(label=str(label), points=[(x / size[0], y / size[1])],
                                             confidence=None if score is None else [score]))
        return {field: fo.Keypoints(keypoints=keypoints)}
    return {field: result.text}


def add_results(dataset: Any, items: Iterable[tuple[str | os.PathLike, TaskResult]], field: str,
                *, persistent: bool = True) -> Any:
    """Write results into `field` of a FiftyOne dataset; return the dataset.

    Takes the dataset (a `fo.Dataset`, or a name: loaded when it exists, else created),
    (image path, result) pairs, the field name, and whether the dataset persists in
    FiftyOne's database. Each sample's width and height are recorded in its metadata.
    Raises VistoolError when fiftyone is not installed or the field name is not valid.
    """
    fo = _fo()
    if not field or not field.replace("_", "a").isalnum() or field[0].isdigit() or field.startswith("_"):
        raise VistoolError(f"field name {field!r} is not valid for FiftyOne: use letters, digits and underscores")
    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset) if fo.dataset_exists(dataset) else fo.Dataset(dataset)
    dataset.persistent = persistent
    labels: dict[str, tuple[TaskResult, dict[str, Any]]] = {}
    for path, result in items:
        values = to_labels(result, field)
        if values:
            labels[str(Path(path).resolve())] = (result, values)
    existing = set(dataset.values("filepath")) & set(labels)
    if existing:
        for sample in dataset.select_by("filepath", sorted(existing)).iter_samples(autosave=True):
            for name, value in labels[sample.filepath][1].items():
                sample[name] = value
    new = []
    for path in sorted(set(labels) - existing):
        result, values = labels[path]
        width, height = result.image_size
        new.append(fo.Sample(filepath=path, metadata=fo.ImageMetadata(width=width, height=height), **values))
    if new:
        dataset.add_samples(new)
    dataset.info.setdefault("vistool", {})[field] = _provenance(next(iter(labels.values()))[0]) if labels else {}
    dataset.save()
    return dataset


def _provenance(result: TaskResult) -> dict[str, Any]:
    """The settings worth keeping beside a field: task, model, profile, prompt, budget."""
    keep = ("model", "profile", "backend", "prompt", "budget", "decoding", "thinking")
    return {"task": result.task, **{key: result.provenance.get(key) for key in keep if key in result.provenance}}


__all__ = ["add_results", "to_labels"]
