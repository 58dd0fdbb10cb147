"""GUI grounding on the ScreenSpot family (v1, v2, Pro): annotation reader and click scoring.

Annotation formats (one json file holds a list of entries):

- v1 / v2 (SeeClick's ``screenspot_{mobile,desktop,web}[_v2].json``): ``img_filename``,
  ``instruction``, ``bbox`` as ``[x, y, w, h]`` pixels, ``data_type`` (text/icon),
  ``data_source`` (ios, android, windows, macos, or a web site). The reader sets
  ``ui_type`` from ``data_type``, ``platform`` from ``data_source`` and ``group`` from
  the file's split (mobile / desktop / web), so the group x ui_type table is the one
  the SeeClick paper reports.
- Pro (``annotations/<app>_<os>.json``): ``img_filename``, ``instruction``
  (``instruction_cn`` too), ``bbox`` as ``[x1, y1, x2, y2]`` pixels, ``img_size``
  ``[width, height]``, ``ui_type``, ``group``, ``platform``, ``application``, ``id``.

Every box becomes ``(x1, y1, x2, y2)`` pixels. A prediction is a click point ``[x, y]``
in pixels of the original screenshot. It is correct when it lies inside the
ground-truth box with INCLUSIVE edges (``x1 <= x <= x2 and y1 <= y <= y2``), the rule of
the official ScreenSpot / ScreenSpot-Pro scripts. A prediction that is missing or is not
exactly 2 finite numbers is wrong and counted as a format error.

CLI::

    python -m vistool.evaluation.screenspot score PRED.jsonl [--edges inclusive|half_open] [--report out/sspro]
    python -m vistool.evaluation.screenspot score PRED.jsonl --annotations ANNOTATIONS [--images-dir DIR]
    python -m vistool.evaluation.screenspot list ANNOTATIONS [--limit N]

The first form scores a self-contained log (each line carries ``bbox`` [x1, y1, x2, y2],
``pred``, and optionally ``correctness`` and the ui_type/group/platform/application
fields), such as the published OmniParser ScreenSpot-Pro log; the second scores a file
of ``{"id", "pred"}`` lines against annotation files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vistool.evaluation.common import (
    Box,
    EdgeRule,
    accuracy_entry,
    align_predictions,
    breakdown,
    load_predictions,
    parse_box,
    parse_point,
    point_in_box,
    ratio,
    read_json,
    read_records,
    resolve_image,
    take,
)
from vistool.evaluation.report import emit

Variant = Literal["v1", "v2", "pro"]
PREDICTION_KEYS = ("pred", "point", "prediction")


@dataclass
class ScreenSpotSample:
    """One grounding task: click on the element that ``instruction`` describes.

    ``bbox`` is the target in ``(x1, y1, x2, y2)`` pixels; ``img_size`` is
    ``(width, height)`` where the annotation gives it (Pro only).
    """

    id: str
    image: Path
    instruction: str
    bbox: Box
    ui_type: str | None = None
    platform: str | None = None
    group: str | None = None
    application: str | None = None
    img_size: tuple[int, int] | None = None
    variant: str = "pro"

    @property
    def prompt(self) -> str:
        """Return what to ask the model: the instruction."""
        return self.instruction


def _split_of(path: Path) -> str | None:
    tokens = path.stem.lower().replace("-", "_").split("_")
    return next((t for t in ("mobile", "desktop", "web") if t in tokens), None)


def detect_variant(path: str | Path, records: Sequence[Mapping[str, Any]]) -> Variant:
    """Guess a file's annotation variant and return it.

    ``"pro"`` when entries carry ``img_size`` or ``ui_type``, else ``"v2"`` when the file
    name says v2, else ``"v1"``.
    """
    if records and any(k in records[0] for k in ("img_size", "ui_type")):
        return "pro"
    return "v2" if "v2" in Path(path).stem.lower() else "v1"


def _sample(record: Mapping[str, Any], variant: Variant, file: Path, index: int, images_dir: Path, language: str) -> ScreenSpotSample:
    where = f"{file}: entry {index}"
    bbox = parse_box(record.get("bbox"), "xyxy" if variant == "pro" else "xywh")
    if bbox is None:
        raise ValueError(f"{where}: bad bbox {record.get('bbox')!r}")
    instruction = record.get("instruction_cn" if language == "cn" else "instruction")
    if not isinstance(instruction, str):
        raise ValueError(f"{where}: no {language} instruction")
    if not isinstance(record.get("img_filename"), str):
        raise ValueError(f"{where}: no img_filename")
    extra: dict[str, Any]
    if variant == "pro":
        size = record.get("img_size")
        extra = {
            "ui_type": record.get("ui_type"),
            "platform": record.get("platform"),
            "group": record.get("group"),
            "application": record.get("application"),
            "img_size": (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) and len(size) == 2 else None,
        }
    else:
        extra = {"ui_type": record.get("data_type"), "platform": record.get("data_source"), "group": _split_of(file)}
    return ScreenSpotSample(
        id=str(record.get("id", f"{file.stem}:{index}")),
        image=resolve_image(record["img_filename"], images_dir),
        instruction=instruction,
        bbox=bbox,
        variant=variant,
        **extra,
    )


def read_screenspot(
    path: str | Path,
    images_dir: str | Path | None = None,
    variant: Variant | Literal["auto"] = "auto",
    language: Literal["en", "cn"] = "en",
    limit: int | None = None,
) -> list[ScreenSpotSample]:
    """Read ScreenSpot annotations and return samples with xyxy pixel boxes.

    ``path`` is one annotation json or a folder of them (read in name order, as the
    ScreenSpot-Pro ``annotations/`` folder). ``images_dir`` is where ``img_filename``
    lives (default: the annotation file's folder). ``variant`` is detected per file when
    ``"auto"``; ``language="cn"`` uses Pro's ``instruction_cn``; ``limit`` keeps the first
    N samples. Raises ``ValueError`` on an entry without a valid bbox or instruction.
    """
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    samples: list[ScreenSpotSample] = []
    for file in files:
        records = read_json(file)
        if not isinstance(records, list):
            raise ValueError(f"{file}: expected a list of annotation entries")
        kind = detect_variant(file, records) if variant == "auto" else variant
        folder = Path(images_dir) if images_dir is not None else file.parent
        samples += [_sample(r, kind, file, i, folder, language) for i, r in enumerate(records)]
        if limit is not None and len(samples) >= limit:
            break
    return take(samples, limit)


@dataclass
class GroundingScore:
    """Click-accuracy result.

    ``accuracy`` is correct / n over all samples (micro average); ``text_accuracy`` and
    ``icon_accuracy`` the same within each ui_type (None when there is none). ``by_*``
    map each value to ``{"n", "correct", "accuracy"}``; ``by_group_ui_type`` is the
    leaderboard's group x text/icon table. ``per_sample`` holds ``{"id", "correct",
    "format_error"}`` per sample. ``label_agreement`` is set by ``score_predictions_file``
    when the file carries its own ``correctness`` labels.
    """

    n: int
    correct: int
    accuracy: float | None
    format_errors: int
    format_error_rate: float | None
    text_accuracy: float | None
    icon_accuracy: float | None
    edges: str
    by_ui_type: dict[str, dict[str, Any]]
    by_platform: dict[str, dict[str, Any]]
    by_group: dict[str, dict[str, Any]]
    by_application: dict[str, dict[str, Any]]
    by_group_ui_type: dict[str, dict[str, Any]]
    per_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)
    label_agreement: dict[str, Any] | None = None
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics dict used by reports (without ``per_sample``; empty breakdowns left out)."""
        out = asdict(self)
        del out["per_sample"]
        empty = [k for k, v in out.items() if k.startswith(("by_", "label_")) and not v]
        return {k: v for k, v in out.items() if k not in empty}


def score_clicks(
    samples: Sequence[ScreenSpotSample],
    predictions: Mapping[str, Any] | Sequence[Any],
    edges: EdgeRule = "inclusive",
) -> GroundingScore:
    """Score click predictions against ScreenSpot samples; return a ``GroundingScore``.

    ``predictions`` maps sample id -> ``[x, y]`` pixel point (or is a sequence aligned
    with ``samples``). A missing or malformed point is wrong and a format error.
    ``edges`` is the point-in-box rule (see ``vistool.evaluation.common.point_in_box``).
    """
    flags: list[bool] = []
    per_sample: list[dict[str, Any]] = []
    for sample, pred in zip(samples, align_predictions(samples, predictions)):
        point = parse_point(pred)
        ok = point is not None and point_in_box(point, sample.bbox, edges)
        flags.append(ok)
        per_sample.append({"id": sample.id, "correct": ok, "format_error": point is None})
    format_errors = sum(1 for p in per_sample if p["format_error"])
    by_ui_type = breakdown([s.ui_type for s in samples], flags)
    return GroundingScore(
        n=len(samples),
        correct=sum(flags),
        accuracy=accuracy_entry(flags)["accuracy"],
        format_errors=format_errors,
        format_error_rate=ratio(format_errors, len(samples)),
        text_accuracy=by_ui_type.get("text", {}).get("accuracy"),
        icon_accuracy=by_ui_type.get("icon", {}).get("accuracy"),
        edges=edges,
        by_ui_type=by_ui_type,
        by_platform=breakdown([s.platform for s in samples], flags),
        by_group=breakdown([s.group for s in samples], flags),
        by_application=breakdown([s.application for s in samples], flags),
        by_group_ui_type=breakdown([(s.group, s.ui_type) for s in samples], flags),
        per_sample=per_sample,
    )


def score_predictions_file(path: str | Path, edges: EdgeRule = "inclusive") -> GroundingScore:
    """Re-score a self-contained predictions log and return a ``GroundingScore``.

    ``path`` is JSONL (or a json list, or the official script's json with a ``details``
    list) whose records carry ``bbox`` ``[x1, y1, x2, y2]`` pixels and ``pred`` ``[x, y]``,
    plus optional ``ui_type``, ``group``, ``platform``, ``application``, ``img_path``,
    ``prompt_to_evaluate``, ``idx``/``id`` and ``correctness``. Records without a bbox
    (negative samples) are skipped and counted in ``skipped``. When records carry
    ``correctness`` ("correct" / "wrong" / "wrong_format"), ``label_agreement`` says how
    many of those labels this scorer reproduces and which ids it does not.
    """
    samples: list[ScreenSpotSample] = []
    preds: list[Any] = []
    labels: list[str | None] = []
    skipped = 0
    for i, r in enumerate(read_records(path, list_key="details")):
        box = parse_box(r.get("bbox"), "xyxy")
        if box is None:
            skipped += 1
            continue
        samples.append(
            ScreenSpotSample(
                id=str(r.get("idx", r.get("id", i))),
                image=Path(str(r.get("img_path", r.get("img_filename", "")))),
                instruction=str(r.get("prompt_to_evaluate", r.get("instruction", ""))),
                bbox=box,
                ui_type=r.get("ui_type"),
                platform=r.get("platform"),
                group=r.get("group"),
                application=r.get("application"),
            )
        )
        preds.append(next((r[k] for k in PREDICTION_KEYS if k in r), None))
        labels.append(r.get("correctness"))
    score = score_clicks(samples, preds, edges)
    score.skipped = skipped
    labelled = [(s, label) for s, label in zip(score.per_sample, labels) if label is not None]
    if labelled:
        disagree = [s["id"] for s, label in labelled if s["correct"] != (label == "correct")]
        published_correct = sum(1 for _, label in labelled if label == "correct")
        score.label_agreement = {
            "labelled": len(labelled),
            "agree": len(labelled) - len(disagree),
            "disagree": len(disagree),
            "disagree_ids": disagree[:50],
            "published_accuracy": ratio(published_correct, len(labelled)),
        }
    return score


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``score PRED`` prints a markdown report; ``list ANNOTATIONS`` prints samples. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vistool.evaluation.screenspot", description="ScreenSpot GUI grounding evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    score_p = sub.add_parser("score", help="score click predictions")
    score_p.add_argument("predictions")
    score_p.add_argument("--annotations", help="annotation json or folder; then PRED holds {'id', 'pred'} lines")
    score_p.add_argument("--edges", choices=["inclusive", "half_open"], default="inclusive")
    score_p.add_argument("--report", help="write <REPORT>.json and <REPORT>.md")
    list_p = sub.add_parser("list", help="list the samples the reader yields")
    list_p.add_argument("annotations")
    for p in (score_p, list_p):
        p.add_argument("--images-dir")
        p.add_argument("--limit", type=int)
    args = parser.parse_args(argv)

    if args.command == "list":
        for s in read_screenspot(args.annotations, args.images_dir, limit=args.limit):
            print(json.dumps({**asdict(s), "image": str(s.image)}))
        return 0
    if args.annotations:
        samples = read_screenspot(args.annotations, args.images_dir, limit=args.limit)
        score = score_clicks(samples, load_predictions(args.predictions, PREDICTION_KEYS), args.edges)
    else:
        score = score_predictions_file(args.predictions, args.edges)
    print(emit(score.to_dict(), "ScreenSpot click accuracy", args.report, {"predictions": args.predictions, "edges": args.edges}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
