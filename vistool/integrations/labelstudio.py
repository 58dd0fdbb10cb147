"""Label Studio pre-annotations: vistool results as tasks JSON with predictions.

    write_labelstudio(folder, [(name, result), ...])   # folder/tasks.json + folder/label_config.xml

Import `tasks.json` into a project whose labeling interface is `label_config.xml` (both
unchanged): every image becomes a task whose prediction holds the model's regions, for
an annotator to correct rather than draw. Boxes are `rectanglelabels` in percent of the
image (Label Studio's convention: x, y of the top-left corner, width, height, 0..100),
with the box's log-prob confidence as its `score`; OCR regions are a rectangle plus a
per-region `textarea` holding the text; points are `keypointlabels`; a classification
is `choices` scored with its probability; text answers (captions, replies, plain OCR)
are a `textarea`.

Image URLs: by default `/data/local-files/?d=<name>`, which Label Studio serves when it
runs with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and
`LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT` set to the annotated folder (add a local-files
storage for it in the project); pass `image_url=` for cloud or web URLs.

Needs no Label Studio package; `label-studio-sdk` validates the output in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from vistool.tasks import TASKS, TaskResult

IMAGE = "image"  # the Image tag's name and the task data key
TEXT_LABEL = "text"  # the one label of OCR regions
TASKS_FILE, CONFIG_FILE = "tasks.json", "label_config.xml"


def local_files_url(name: str) -> str:
    """Return Label Studio's local-files URL of an image named `name` under the document root."""
    from urllib.parse import quote

    return "/data/local-files/?d=" + quote(name, safe="/")


def answer_kind(task: str) -> str:
    """Return how a task's results are shown: "boxes", "ocr_regions", "points", "choices" or "text"."""
    spec = TASKS[task]
    if spec.choices is not None:
        return "choices"
    return spec.kind or "text"


def _percent(box: Sequence[float], size: tuple[int, int]) -> dict[str, float]:
    """An [x1, y1, x2, y2] pixel box as Label Studio's percent geometry."""
    width, height = size
    x1, y1, x2, y2 = (float(value) for value in box)
    return {
        "x": 100.0 * x1 / width,
        "y": 100.0 * y1 / height,
        "width": 100.0 * (x2 - x1) / width,
        "height": 100.0 * (y2 - y1) / height,
        "rotation": 0,
    }


def _region(region_id: str, from_name: str, kind: str, value: dict[str, Any], size: tuple[int, int],
            score: float | None) -> dict[str, Any]:
    """One result item of a prediction."""
    item: dict[str, Any] = {
        "id": region_id,
        "from_name": from_name,
        "to_name": IMAGE,
        "type": kind,
        "original_width": int(size[0]),
        "original_height": int(size[1]),
        "image_rotation": 0,
        "value": value,
    }
    if score is not None:
        item["score"] = float(score)
    return item


def prediction_items(result: TaskResult) -> list[dict[str, Any]]:
    """Return the Label Studio result items of one vistool result (empty for a failed one)."""
    if not result.ok:
        return []
    size = result.image_size
    kind = answer_kind(result.task)
    items: list[dict[str, Any]] = []
    if kind == "boxes":
        detections = result.detections
        names = detections.data.get("class_name")
        scores = detections.confidence
        for index, box in enumerate(detections.xyxy.tolist()):
            value = {**_percent(box, size), "rectanglelabels": [str(names[index]) if names is not None else "object"]}
            score = None if scores is None else scores[index]
            items.append(_region(f"r{index}", "label", "rectanglelabels", value, size, score))
    elif kind == "ocr_regions":
        for index, region in enumerate(result.regions.regions if result.regions is not None else []):
            geometry = _percent(region.box, size)
            score = getattr(region, "confidence", None)
            items.append(_region(f"r{index}", "label", "rectanglelabels", {**geometry, "rectanglelabels": [TEXT_LABEL]}, size, score))
            items.append(_region(f"r{index}", "transcription", "textarea", {**geometry, "text": [region.text]}, size, score))
    elif kind == "points":
        points = result.points
        if points is not None:
            for index, ((x, y), label) in enumerate(zip(points.xy.tolist(), points.class_name)):
                value = {"x": 100.0 * x / size[0], "y": 100.0 * y / size[1], "width": 0.5, "keypointlabels": [str(label)]}
                score = None if points.confidence is None else points.confidence[index]
                items.append(_region(f"p{index}", "label", "keypointlabels", value, size, score))
    elif kind == "choices":
        label = result.extras.get("label")
        if label is not None:
            items.append(_region("c0", "choice", "choices", {"choices": [str(label)]}, size, result.extras.get("confidence")))
    elif result.text:
        items.append(_region("t0", "answer", "textarea", {"text": [result.text]}, size, None))
    return items


def to_task(name: str, result: TaskResult, image_url: Callable[[str], str] = local_files_url) -> dict[str, Any]:
    """Return the Label Studio task of one image: its data (image URL, vistool's name for
    it) and one prediction with the result's items, model and mean score."""
    items = prediction_items(result)
    scores = [item["score"] for item in items if item.get("score") is not None]
    prediction: dict[str, Any] = {"model_version": str(result.provenance.get("model") or "vistool"), "result": items}
    if result.extras.get("confidence") is not None and answer_kind(result.task) == "choices":
        prediction["score"] = float(result.extras["confidence"])
    elif scores:
        prediction["score"] = float(sum(scores) / len(scores))
    return {"data": {IMAGE: image_url(name), "vistool_image": name}, "predictions": [prediction]}


def labeling_config(task: str, classes: Sequence[str]) -> str:
    """Return the labeling interface (XML) that the predictions of `task` fit.

    Takes the task name and the label names (boxes, points, classification choices).
    """
    kind = answer_kind(task)
    tags = [f'<Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>']

    def labels(tag: str, names: Sequence[str], name: str = "label") -> str:
        options = "".join(f"<Label value={quoteattr(str(label))}/>" for label in names)
        return f'<{tag} name="{name}" toName="{IMAGE}">{options}</{tag}>'

    if kind == "boxes":
        tags.append(labels("RectangleLabels", classes))
    elif kind == "ocr_regions":
        tags.append(labels("RectangleLabels", [TEXT_LABEL]))
        tags.append(f'<TextArea name="transcription" toName="{IMAGE}" editable="true" perRegion="true" '
                    'required="false" displayMode="region-list"/>')
    elif kind == "points":
        tags.append(labels("KeyPointLabels", classes))
    elif kind == "choices":
        options = "".join(f"<Choice value={quoteattr(str(label))}/>" for label in classes)
        tags.append(f'<Choices name="choice" toName="{IMAGE}" choice="single">{options}</Choices>')
    else:
        tags.append(f'<TextArea name="answer" toName="{IMAGE}" editable="true"/>')
    return "<View>\n  " + "\n  ".join(tags) + "\n</View>\n"


def result_labels(task: str, results: Iterable[TaskResult], asked: Sequence[str] | None = None) -> list[str]:
    """Return the label names a labeling config needs: the asked ones first, then every
    other label the results use, sorted."""
    kind = answer_kind(task)
    names: dict[str, None] = dict.fromkeys(asked or [])
    extra: set[str] = set()
    for result in results:
        if not result.ok:
            continue
        if kind == "boxes" and result.detections.data.get("class_name") is not None:
            extra.update(str(name) for name in result.detections.data["class_name"])
        elif kind == "points" and result.points is not None:
            extra.update(str(label) for label in result.points.class_name)
        elif kind == "choices":
            extra.update(str(label) for label in result.extras.get("labels", []))
    return list(names) + sorted(extra - set(names))


def write_labelstudio(folder: Path, items: Sequence[tuple[str, TaskResult]], *, asked: Sequence[str] | None = None,
                      image_url: Callable[[str], str] = local_files_url) -> int:
    """Write `folder/tasks.json` (one task per successful result, by name) and
    `folder/label_config.xml`; return the number of tasks.

    Takes the output folder, (image name, result) pairs of one task, the labels that
    were asked for (listed first in the config) and the image URL rule. Files are
    written whole, through a temporary file.
    """
    from vistool.batch.export import atomic_write_text

    usable = sorted(((name, result) for name, result in items if result.ok), key=lambda pair: pair[0])
    task = usable[0][1].task if usable else (items[0][1].task if items else "detect")
    tasks = [to_task(name, result, image_url) for name, result in usable]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / TASKS_FILE, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    config = labeling_config(task, result_labels(task, [result for _, result in usable], asked))
    atomic_write_text(folder / CONFIG_FILE, config)
    return len(tasks)


__all__ = ["labeling_config", "local_files_url", "prediction_items", "to_task", "write_labelstudio"]
