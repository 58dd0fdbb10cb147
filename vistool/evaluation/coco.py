"""COCO detection: dataset reader and COCO-API scoring (faster-coco-eval, pycocotools' numbers).

Reader: ``CocoDataset`` reads a COCO instances json (images + annotations + categories)
and yields one ``CocoSample`` per image: its file path, the category names to ask the
model for, and the ground-truth boxes in xyxy pixels.

Scorer: ``score_coco`` runs COCOeval (bbox) on a COCO results list (``[{"image_id",
"category_id", "bbox": [x, y, w, h], "score"}, ...]``) and returns the 12 standard stats
by name, the per-class AP, and the text the evaluator printed. The engine is
faster-coco-eval (a C++ port of the COCO API's evaluate/accumulate): the same numbers as
``pycocotools`` to the last digit (tests/test_eval_coco_engine.py checks both on the
shared 100-image set and on a generated 5,000-image one), 5-7x faster (issue 19; figures
in eval/bench_coco.py). Both are imported only when a score is computed, so commands
that do not score start without them. ``detections_to_results`` turns pixel boxes with label names into such a list.

CLI::

    python -m vistool.evaluation.coco score GT.json RESULTS.json [--categories person,dog] [--limit N] [--report out/coco]
    python -m vistool.evaluation.coco list GT.json [--images-dir DIR] [--limit N] [--categories ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vistool.evaluation.common import Box, as_number, parse_box, read_json, resolve_image, take
from vistool.evaluation.report import emit

# The order of COCOeval.stats, named as the issue and most papers name them.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class CocoSample:
    """One image to run detection on.

    ``categories`` are the class names to ask for; ``boxes`` (xyxy pixels) and ``labels``
    (class names) are its ground truth, limited to those categories.
    """

    id: str
    image_id: int
    image: Path
    width: int
    height: int
    categories: list[str]
    boxes: list[Box] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def resolve_category_ids(categories: Sequence[Mapping[str, Any]], wanted: Sequence[str | int] | None) -> list[int]:
    """Map wanted category names or ids to sorted COCO category ids; all ids when ``wanted`` is None.

    Names match exactly first, then case-insensitively. Raises ``ValueError`` for an
    unknown name or id.
    """
    ids = {int(c["id"]) for c in categories}
    if wanted is None:
        return sorted(ids)
    exact = {str(c["name"]): int(c["id"]) for c in categories}
    folded = {str(c["name"]).casefold(): int(c["id"]) for c in categories}
    out: set[int] = set()
    for item in wanted:
        if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit() and item.strip() not in exact):
            cid = int(item)
            if cid not in ids:
                raise ValueError(f"unknown category id {cid}")
        else:
            name = str(item).strip()
            cid = exact.get(name, folded.get(name.casefold(), -1))
            if cid < 0:
                raise ValueError(f"unknown category name {item!r}")
        out.add(cid)
    return sorted(out)


class CocoDataset:
    """A COCO instances file read for evaluation.

    ``instances`` is the json path or its parsed dict; ``images_dir`` is where the image
    files are (default: the json's folder); ``categories`` (names or ids) limits the
    classes asked for and scored (all images are kept: images without those classes
    still count for false positives); ``limit`` keeps the first N images by id.
    """

    def __init__(
        self,
        instances: str | Path | Mapping[str, Any],
        images_dir: str | Path | None = None,
        categories: Sequence[str | int] | None = None,
        limit: int | None = None,
    ) -> None:
        if isinstance(instances, Mapping):
            self.instances: dict[str, Any] = dict(instances)
            default_dir = Path(".")
        else:
            self.instances = read_json(instances)
            default_dir = Path(instances).parent
        self.images_dir = Path(images_dir) if images_dir is not None else default_dir
        self.category_ids: list[int] = resolve_category_ids(self.instances["categories"], categories)
        self.category_names: dict[int, str] = {
            int(c["id"]): str(c["name"]) for c in self.instances["categories"] if int(c["id"]) in self.category_ids
        }
        images = sorted(self.instances["images"], key=lambda im: int(im["id"]))
        self.images: list[dict[str, Any]] = take(images, limit)
        self.image_ids: list[int] = [int(im["id"]) for im in self.images]
        self._annotations: dict[int, list[dict[str, Any]]] = {i: [] for i in self.image_ids}
        for ann in self.instances.get("annotations", []):
            if int(ann["image_id"]) in self._annotations and int(ann["category_id"]) in self.category_names:
                self._annotations[int(ann["image_id"])].append(ann)

    @property
    def name_to_id(self) -> dict[str, int]:
        """Return the selected categories as ``{name: id}``."""
        return {name: cid for cid, name in self.category_names.items()}

    def __len__(self) -> int:
        """Return the number of selected images."""
        return len(self.images)

    def __iter__(self) -> Iterator[CocoSample]:
        """Yield one ``CocoSample`` per selected image, in image-id order."""
        names = list(self.category_names.values())
        for im in self.images:
            anns = self._annotations[int(im["id"])]
            boxes = [parse_box(a["bbox"], "xywh") for a in anns]
            yield CocoSample(
                id=str(im["id"]),
                image_id=int(im["id"]),
                image=resolve_image(im["file_name"], self.images_dir),
                width=int(im["width"]),
                height=int(im["height"]),
                categories=names,
                boxes=[b for b in boxes if b is not None],
                labels=[self.category_names[int(a["category_id"])] for a, b in zip(anns, boxes) if b is not None],
            )

    def score(self, results: list[dict[str, Any]] | str | Path) -> CocoScore:
        """Score ``results`` against this dataset's selected images and categories; return a ``CocoScore``."""
        return score_coco(self.instances, results, categories=self.category_ids, image_ids=self.image_ids)


def detections_to_results(
    image_id: int,
    boxes_xyxy: Sequence[Sequence[float]],
    labels: Sequence[str],
    name_to_id: Mapping[str, int],
    scores: Sequence[float] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Turn one image's pixel boxes into COCO results.

    ``boxes_xyxy`` are ``[x1, y1, x2, y2]`` pixels, ``labels`` class names (matched to
    ``name_to_id`` exactly, then case-insensitively), ``scores`` optional confidences
    (without them ``score_coco`` uses 1.0 and says so). Returns ``(results, dropped)``:
    the COCO result dicts and the labels that matched no category.
    """
    folded = {k.casefold(): v for k, v in name_to_id.items()}
    results: list[dict[str, Any]] = []
    dropped: list[str] = []
    for i, (raw, label) in enumerate(zip(boxes_xyxy, labels, strict=True)):
        cid = name_to_id.get(label, folded.get(str(label).strip().casefold()))
        box = parse_box(list(raw), "xyxy")
        if cid is None or box is None:
            dropped.append(str(label))
            continue
        result: dict[str, Any] = {
            "image_id": image_id,
            "category_id": cid,
            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
        }
        if scores is not None:
            result["score"] = float(scores[i])
        results.append(result)
    return results, dropped


@dataclass
class CocoScore:
    """COCO bbox evaluation result.

    ``stats`` holds the 12 standard numbers by name (``STAT_NAMES``: AP, AP50, AP75, APs,
    APm, APl, AR1, AR10, AR100, ARs, ARm, ARl; -1 where pycocotools had nothing to
    average). ``per_class_ap`` / ``per_class_ap50`` map class name -> AP (None for a class
    without ground truth). ``summary`` is the 12 lines ``summarize()`` printed; ``text``
    everything the evaluator printed (with its timings). ``warnings`` lists what was
    changed or dropped from the input.
    """

    stats: dict[str, float]
    per_class_ap: dict[str, float | None]
    per_class_ap50: dict[str, float | None]
    summary: str
    text: str
    num_images: int
    num_detections: int
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> float:
        """Return one of the 12 stats by name, e.g. ``score["AP50"]``."""
        return self.stats[name]

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics dict used by reports: stats flat, then counts, per-class tables, summary text."""
        per_class = {
            name: {"AP": self.per_class_ap[name], "AP50": self.per_class_ap50[name]} for name in self.per_class_ap
        }
        return {
            **self.stats,
            "num_images": self.num_images,
            "num_detections": self.num_detections,
            "per_class": per_class,
            "summary": self.summary,
            "warnings": self.warnings,
        }


def _coco_from_dict(dataset: Mapping[str, Any]) -> Any:
    """Index a COCO dict without reading a file; annotations lacking ``iscrowd`` / ``area`` get 0 / box area.

    The evaluator writes flags (``ignore``) into the ground-truth annotations it indexes,
    so they are indexed as shallow copies: the caller's dict is never changed, and
    nothing deeper (boxes, polygons) is copied.
    """
    from faster_coco_eval import COCO

    annotations = []
    for ann in dataset.get("annotations", []):
        ann = dict(ann)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann and parse_box(ann.get("bbox"), "xywh") is not None:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        annotations.append(ann)
    return COCO({**dataset, "annotations": annotations})


def _clean_results(
    results: list[dict[str, Any]], image_ids: set[int], category_ids: set[int], warnings: list[str]
) -> list[dict[str, Any]]:
    """Copy results (loadRes mutates them), fill missing scores, drop malformed or unknown-category entries."""
    clean: list[dict[str, Any]] = []
    malformed = unknown_category = no_score = 0
    bad_images: set[Any] = set()
    for r in results:
        if not isinstance(r, Mapping) or parse_box(r.get("bbox"), "xywh") is None or "image_id" not in r:
            malformed += 1
            continue
        if r["image_id"] not in image_ids:
            bad_images.add(r["image_id"])
            continue
        if r.get("category_id") not in category_ids:
            unknown_category += 1
            continue
        r = dict(r)
        if as_number(r.get("score")) is None:
            r["score"] = 1.0
            no_score += 1
        clean.append(r)
    if bad_images:
        examples = sorted(map(str, bad_images))[:5]
        raise ValueError(f"results refer to {len(bad_images)} image ids absent from the ground truth, e.g. {examples}")
    if malformed:
        warnings.append(f"dropped {malformed} malformed results (need image_id and a bbox [x, y, w, h] with w, h >= 0)")
    if unknown_category:
        warnings.append(f"dropped {unknown_category} results whose category_id is not in the ground truth")
    if no_score:
        warnings.append(f"{no_score} results had no score; used 1.0 (AP is then ill-defined: ranking is arbitrary)")
    return clean


def _class_ap(precision: np.ndarray, k: int, iou_index: int | None) -> float | None:
    # precision: [T iou thresholds, R recall points, K classes, A areas, M maxDets]; area 'all', maxDets 100.
    p = precision[:, :, k, 0, -1] if iou_index is None else precision[iou_index, :, k, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else None


def score_coco(
    gt: str | Path | Mapping[str, Any],
    results: list[dict[str, Any]] | str | Path,
    categories: Sequence[str | int] | None = None,
    image_ids: Sequence[int] | None = None,
) -> CocoScore:
    """Score COCO detection results (bbox; pycocotools' numbers, computed by faster-coco-eval) and return a ``CocoScore``.

    ``gt`` is a COCO instances json path or dict; ``results`` a COCO results list or a json
    path to one. ``categories`` (names or ids) and ``image_ids`` restrict the evaluation
    (``COCOeval.params.catIds`` / ``imgIds``); None means all. Results without a score get
    1.0, results for unknown categories or malformed ones are dropped (both reported in
    ``warnings``); results for images absent from ``gt`` raise ``ValueError``. Ground-truth
    annotations without ``iscrowd`` / ``area`` are taken as 0 / the box's w * h.
    """
    dataset = read_json(gt) if not isinstance(gt, Mapping) else gt
    raw = read_json(results) if isinstance(results, (str, Path)) else results
    if not isinstance(raw, list):
        raise ValueError("results must be a list of COCO result dicts")
    warnings: list[str] = []
    from faster_coco_eval import COCOeval_faster

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        coco_gt = _coco_from_dict(dataset)
        cat_ids = resolve_category_ids(dataset["categories"], categories)
        clean = _clean_results(raw, set(coco_gt.getImgIds()), set(coco_gt.getCatIds()), warnings)
        if clean:
            coco_dt = coco_gt.loadRes(clean)
        else:
            warnings.append("no results to evaluate")
            coco_dt = _coco_from_dict({**dataset, "annotations": []})
        evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=print)
        evaluator.params.catIds = cat_ids
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        summary_start = buffer.tell()
        evaluator.summarize()
    text = buffer.getvalue()
    # The 12 standard lines (faster-coco-eval prints two more recall lines after them).
    summary = "".join(text[summary_start:].splitlines(keepends=True)[: len(STAT_NAMES)])
    precision = evaluator.eval["precision"]
    names = {int(c["id"]): str(c["name"]) for c in dataset["categories"]}
    iou50 = int(np.argmin(np.abs(evaluator.params.iouThrs - 0.5)))
    per_class_ap = {names[c]: _class_ap(precision, k, None) for k, c in enumerate(evaluator.params.catIds)}
    per_class_ap50 = {names[c]: _class_ap(precision, k, iou50) for k, c in enumerate(evaluator.params.catIds)}
    evaluated, scored_cats = set(evaluator.params.imgIds), set(cat_ids)
    return CocoScore(
        stats={name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats[: len(STAT_NAMES)])},
        per_class_ap=per_class_ap,
        per_class_ap50=per_class_ap50,
        summary=summary,
        text=text,
        num_images=len(evaluated),
        num_detections=sum(1 for r in clean if r["image_id"] in evaluated and r["category_id"] in scored_cats),
        warnings=warnings,
    )


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``score GT RESULTS`` prints a markdown report (with the COCO API's summary); ``list GT`` prints samples. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vistool.evaluation.coco", description="COCO detection evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    score_p = sub.add_parser("score", help="score a COCO results json against an instances json")
    score_p.add_argument("gt")
    score_p.add_argument("results")
    list_p = sub.add_parser("list", help="list the samples the reader yields")
    list_p.add_argument("gt")
    list_p.add_argument("--images-dir")
    for p in (score_p, list_p):
        p.add_argument("--categories", help="comma-separated class names or ids (default: all)")
        p.add_argument("--limit", type=int, help="first N images by id")
    score_p.add_argument("--report", help="write <REPORT>.json and <REPORT>.md")
    args = parser.parse_args(argv)

    dataset = CocoDataset(args.gt, getattr(args, "images_dir", None), _split_list(args.categories), args.limit)
    if args.command == "list":
        for s in dataset:
            record = {"id": s.id, "image": str(s.image), "width": s.width, "height": s.height}
            print(json.dumps({**record, "boxes": s.boxes, "labels": s.labels}))
        return 0
    score = dataset.score(args.results)
    print(emit(score.to_dict(), "COCO detection (bbox)", args.report, {"gt": args.gt, "results": args.results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
