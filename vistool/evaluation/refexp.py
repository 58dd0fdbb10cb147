"""Referring expressions (RefCOCO-style): expression -> one box.

Annotation format (JSONL, one referred object per line; image paths relative to the
file's folder unless ``images_dir`` is given)::

    {"id": "r1", "image": "COCO_train2014_000000000123.jpg", "expression": "man in red", "bbox": [10, 20, 50, 80], "split": "testA"}

- ``bbox`` is COCO's ``[x, y, w, h]`` in pixels (as RefCOCO's annotations give it);
  pass ``box_format="xyxy"`` when a file stores ``[x1, y1, x2, y2]``.
- Instead of ``expression``, a line may carry ``expressions`` (or RefCOCO's
  ``sentences``: strings or ``{"sent": ...}`` objects): each becomes its own sample,
  with id ``"<id>/<k>"``.
- ``id`` defaults to ``ref_id``, ``ann_id`` or the line number; ``file_name`` is accepted
  for ``image``; ``split`` is optional and gives a per-split breakdown.

Predictions are one box per sample, ``[x1, y1, x2, y2]`` pixels of the original image
(what vistool's grounding returns; reversed corners are put in order). A missing or
malformed box is wrong on every metric (IoU 0) and counts as a format error.

Metrics: ``acc_at_iou`` (Acc@0.5: IoU >= threshold, default 0.5, the RefCOCO
convention), ``mean_iou``, ``center_accuracy`` (the predicted box's centre lies inside the
ground-truth box, edges inclusive).

CLI::

    python -m vistool.evaluation.refexp score GT.jsonl PRED.jsonl [--box-format xywh|xyxy] [--iou 0.5] [--report out/refcoco]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vistool.evaluation.common import (
    Box,
    BoxFormat,
    align_predictions,
    box_center,
    box_iou,
    breakdown,
    load_predictions,
    parse_box,
    point_in_box,
    ratio,
    read_jsonl,
    resolve_image,
    take,
)
from vistool.evaluation.report import emit

PREDICTION_KEYS = ("bbox", "box", "prediction")


@dataclass
class RefExpSample:
    """One referring expression: find the object ``expression`` describes; ``bbox`` is its (x1, y1, x2, y2) pixel box."""

    id: str
    image: Path
    expression: str
    bbox: Box
    split: str | None = None

    @property
    def prompt(self) -> str:
        """Return what to ask the model: the expression."""
        return self.expression


def _expressions(record: Mapping[str, Any]) -> list[str] | None:
    if isinstance(record.get("expression"), str):
        return [record["expression"]]
    items = record.get("expressions", record.get("sentences"))
    if not isinstance(items, list):
        return None
    texts = [i["sent"] if isinstance(i, Mapping) else i for i in items]
    return texts if texts and all(isinstance(t, str) for t in texts) else None


def read_refexp(
    path: str | Path,
    images_dir: str | Path | None = None,
    box_format: BoxFormat = "xywh",
    limit: int | None = None,
) -> list[RefExpSample]:
    """Read a referring-expression JSONL (see the module docstring) and return one sample per expression.

    ``images_dir`` defaults to the file's folder; ``box_format`` says how ``bbox`` is
    written; ``limit`` keeps the first N samples. Raises ``ValueError`` for a line without
    an image, an expression or a valid bbox.
    """
    path = Path(path)
    folder = Path(images_dir) if images_dir is not None else path.parent
    samples: list[RefExpSample] = []
    for i, r in enumerate(read_jsonl(path)):
        image = r.get("image", r.get("file_name"))
        box = parse_box(r.get("bbox"), box_format)
        texts = _expressions(r)
        if not image or box is None or texts is None:
            raise ValueError(f"{path}: record {i} needs 'image', an expression and a valid {box_format} 'bbox'")
        base = str(r.get("id", r.get("ref_id", r.get("ann_id", i))))
        single = isinstance(r.get("expression"), str)
        for k, text in enumerate(texts):
            sid = base if single else f"{base}/{k}"
            samples.append(RefExpSample(sid, resolve_image(image, folder), text, box, r.get("split")))
        if limit is not None and len(samples) >= limit:
            break
    return take(samples, limit)


@dataclass
class RefExpScore:
    """Referring-expression result: ``acc_at_iou`` (at ``iou_threshold``), ``mean_iou``, ``center_accuracy``, format errors, ``by_split``.

    ``per_sample`` holds ``{"id", "iou", "hit", "center_hit", "format_error"}`` per sample.
    """

    n: int
    acc_at_iou: float | None
    iou_threshold: float
    mean_iou: float | None
    center_accuracy: float | None
    format_errors: int
    format_error_rate: float | None
    by_split: dict[str, dict[str, Any]]
    per_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics dict used by reports (without ``per_sample``; ``by_split`` only when there are splits)."""
        out = asdict(self)
        del out["per_sample"]
        if not out["by_split"]:
            del out["by_split"]
        return out


def score_refexp(
    samples: Sequence[RefExpSample],
    predictions: Mapping[str, Any] | Sequence[Any],
    iou_threshold: float = 0.5,
) -> RefExpScore:
    """Score predicted boxes (mapping id -> [x1, y1, x2, y2] pixels, or a sequence aligned with ``samples``); return a ``RefExpScore``."""
    per_sample: list[dict[str, Any]] = []
    for sample, pred in zip(samples, align_predictions(samples, predictions)):
        box = parse_box(pred, "xyxy")
        iou = box_iou(box, sample.bbox) if box is not None else 0.0
        center_hit = box is not None and point_in_box(box_center(box), sample.bbox)
        hit = iou >= iou_threshold
        per_sample.append({"id": sample.id, "iou": iou, "hit": hit, "center_hit": center_hit, "format_error": box is None})
    n = len(samples)
    format_errors = sum(p["format_error"] for p in per_sample)
    return RefExpScore(
        n=n,
        acc_at_iou=ratio(sum(p["hit"] for p in per_sample), n),
        iou_threshold=iou_threshold,
        mean_iou=ratio(sum(p["iou"] for p in per_sample), n),
        center_accuracy=ratio(sum(p["center_hit"] for p in per_sample), n),
        format_errors=format_errors,
        format_error_rate=ratio(format_errors, n),
        by_split=breakdown([s.split for s in samples], [p["hit"] for p in per_sample]),
        per_sample=per_sample,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``score GT.jsonl PRED.jsonl`` prints a markdown report. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vistool.evaluation.refexp", description="Referring-expression evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    score_p = sub.add_parser("score", help="score predicted boxes")
    score_p.add_argument("gt")
    score_p.add_argument("predictions", help="JSONL of {'id', 'bbox': [x1, y1, x2, y2]}")
    score_p.add_argument("--box-format", choices=["xywh", "xyxy"], default="xywh", help="how GT.jsonl writes bbox")
    score_p.add_argument("--iou", type=float, default=0.5)
    score_p.add_argument("--limit", type=int)
    score_p.add_argument("--report", help="write <REPORT>.json and <REPORT>.md")
    args = parser.parse_args(argv)

    samples = read_refexp(args.gt, box_format=args.box_format, limit=args.limit)
    score = score_refexp(samples, load_predictions(args.predictions, PREDICTION_KEYS), args.iou)
    meta = {"gt": args.gt, "predictions": args.predictions}
    print(emit(score.to_dict(), f"Referring expressions (Acc@{args.iou:g})", args.report, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
