"""Run a model on a benchmark: reader -> prompts -> batch engine (cache, resume) -> scorer -> report.

Each benchmark is a reader (vistool.evaluation.coco / screenspot / ocr / refexp), the work items it asks
for (one task call per image, with that image's options), how a task result becomes a
prediction, and the scorer; the model is a separate object (`vistool.api.Vistool`), as in
lmms-eval and VLMEvalKit. Answers go through `vistool.batch.BatchRunner` (or, with
`--engine ray`, the Ray engine) with an answer cache in OUT, so an interrupted
evaluation resumes, and `--rescore` re-scores from the cache.

    python -m vistool.evaluation.run coco --instances ann.json --images DIR --out OUT [--chunk-size 20] [--limit 100]
    python -m vistool.evaluation.run screenspot --annotations FILE_OR_DIR --images DIR --out OUT [--zoom refine]
    python -m vistool.evaluation.run ocr --data FILE.jsonl --images DIR --out OUT
    python -m vistool.evaluation.run refexp --data FILE.jsonl --images DIR --out OUT
    (also `vistool eval ...` with the same arguments)
    python -m vistool.evaluation.run score coco GT.json RESULTS.json     # score an existing predictions file
    python -m vistool.evaluation.run score screenspot PREDICTIONS.jsonl  # (any of coco, screenspot, ocr, refexp)

Scores for COCO detections: the log-prob confidence of each box when the backend gives
log-probs, else the constant `--constant-score` (default 1.0, which makes AP the precision
of an unranked set); the report says which.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vistool.evaluation.coco import CocoDataset, detections_to_results
from vistool.evaluation.ocr import read_ocr, score_ocr
from vistool.evaluation.refexp import read_refexp, score_refexp
from vistool.evaluation.report import write_report
from vistool.evaluation.screenspot import read_screenspot, score_clicks
from vistool.api import Vistool
from vistool.batch.cache import AnswerCache
from vistool.batch.runner import Outcome, RunReport, WorkItem
from vistool.engines import RayOptions, check_engine, make_runner
from vistool.zoom import ZoomLike, ZoomSettings, check_zoom


@dataclass
class RunOptions:
    """How to run a benchmark: output folder, batch size, cache-only re-scoring, progress
    bar, reading threads, the zoom of every task call ("off", "tiles", "refine"; text
    or `vistool.zoom.ZoomSettings`), and the engine ("local", or "ray" with its
    `RayOptions`; see vistool.engines)."""

    out: Path
    batch_size: int | None = None
    rescore: bool = False
    progress: bool = True
    workers: int = 4
    zoom: ZoomLike = None
    engine: str = "local"
    ray: RayOptions | None = None

    def item_settings(self, task: str) -> dict[str, Any]:
        """The per-item settings that carry the zoom to the batch engine (checked for `task`)."""
        zoom = check_zoom(task, self.zoom)
        return {"zoom": zoom} if zoom.on else {}


def run_cost(report: RunReport) -> dict[str, Any]:
    """Model calls and image tokens per answered item (zoomed calls cost several passes)."""
    results = [outcome.result for outcome in report.outcomes if outcome.result is not None and outcome.result.ok]
    if not results:
        return {"items": 0}
    calls = [((r.provenance.get("zoom") or {}).get("cost") or {}).get("model_calls", 1) for r in results]
    tokens = [r.provenance.get("image_tokens") or 0 for r in results]
    return {"items": len(results), "model_calls_per_item": round(sum(calls) / len(results), 3),
            "image_tokens_per_item": round(sum(tokens) / len(results), 1)}


def run_items(vt: Vistool, items: list[WorkItem], options: RunOptions, name: str) -> RunReport:
    """Run work items through the batch engine with the answer cache in `options.out`; return the report."""
    options.out.mkdir(parents=True, exist_ok=True)
    with AnswerCache(options.out / "answers.jsonl") as cache:
        runner = make_runner(
            options.engine, vt, cache, batch_size=options.batch_size, workers=options.workers,
            cache_only=options.rescore, progress=options.progress, description=name, ray=options.ray,
        )
        return runner.run(items)


def finish(metrics: dict[str, Any], report: RunReport, vt: Vistool, options: RunOptions, title: str, extra: dict | None = None) -> dict[str, Any]:
    """Add run facts to the metrics, write OUT/report.json and OUT/report.md, return the metrics."""
    meta = {
        "model": vt.backend.model_id,
        "profile": vt.profile.name,
        "zoom": ZoomSettings.parse(options.zoom).text(),
        "cost": run_cost(report),
        "run": report.to_dict(),
        "failures": [{"id": o.item.name, "stage": o.stage, "reason": o.reason} for o in report.failures][:50],
        **(extra or {}),
    }
    write_report(metrics, options.out / "report", title, meta)
    return {"metrics": metrics, "meta": meta}


def _result(outcome: Outcome):
    """The task result of an outcome, or None when it failed."""
    return outcome.result if outcome.ok and outcome.result is not None and outcome.result.ok else None


# ------------------------------------------------------------------------- COCO
def evaluate_coco(
    vt: Vistool,
    instances: str | Path | dict,
    images_dir: str | Path | None,
    options: RunOptions,
    *,
    chunk_size: int | None = None,
    limit: int | None = None,
    categories: Sequence[str] | None = None,
    constant_score: float = 1.0,
) -> dict[str, Any]:
    """Detect the dataset's categories on each image and score with pycocotools.

    Takes the model, the instances json (path or dict), the images folder, run options,
    the number of class names per prompt (None: all in one prompt), `limit` images,
    a category subset, and the score used for boxes without a log-prob confidence.
    Returns {"metrics", "meta"}; writes OUT/results.json (COCO results) and the report.
    """
    dataset = CocoDataset(instances, images_dir, categories, limit)
    names = list(dataset.category_names.values())
    size = chunk_size or len(names)
    chunks = [names[start : start + size] for start in range(0, len(names), size)]
    settings = options.item_settings("detect")
    items = [
        WorkItem(sample.image, "detect", {"classes": chunk}, settings, id=f"{sample.image_id}/{index}")
        for sample in dataset
        for index, chunk in enumerate(chunks)
    ]
    report = run_items(vt, items, options, "coco")
    results: list[dict[str, Any]] = []
    scored = constant = 0
    unmatched: dict[str, int] = {}
    for outcome in report.outcomes:
        result = _result(outcome)
        if result is None:
            continue
        detections = result.detections
        confidence = detections.confidence
        scores = [constant_score] * len(detections) if confidence is None else [float(c) for c in confidence]
        scored += 0 if confidence is None else len(detections)
        constant += len(detections) if confidence is None else 0
        image_id = int(str(outcome.item.id).split("/")[0])
        made, dropped = detections_to_results(image_id, detections.xyxy.tolist(), list(detections.data["class_name"]), dataset.name_to_id, scores)
        results.extend(made)
        for label in dropped:
            unmatched[label] = unmatched.get(label, 0) + 1
    (options.out / "results.json").write_text(json.dumps(results), encoding="utf-8")
    score = dataset.score(results)
    metrics = {**score.stats, "per_class_ap": score.per_class_ap}
    extra = {
        "images": len(dataset),
        "classes_per_prompt": size,
        "prompts_per_image": len(chunks),
        "detections": len(results),
        "score_source": f"log-prob confidence for {scored} boxes, constant {constant_score} for {constant}",
        "labels_not_in_dataset": dict(sorted(unmatched.items(), key=lambda kv: -kv[1])[:20]),
        "pycocotools": score.summary,
    }
    return finish(metrics, report, vt, options, "COCO detection", extra)


# -------------------------------------------------------------------- the others
def _evaluate_samples(
    vt: Vistool,
    samples: Sequence[Any],
    options: RunOptions,
    *,
    name: str,
    title: str,
    task: str,
    task_options: Callable[[Any], dict[str, Any]],
    prediction: Callable[[Any], Any],
    score: Callable[[Sequence[Any], dict[str, Any]], Any],
) -> dict[str, Any]:
    """Shared path of per-sample benchmarks: one task call per sample, a prediction from each
    result (None when it failed: a format error for the scorer), then the scorer."""
    settings = options.item_settings(task)
    items = [WorkItem(sample.image, task, task_options(sample), settings, id=sample.id) for sample in samples]
    report = run_items(vt, items, options, name)
    predictions: dict[str, Any] = {}
    for outcome in report.outcomes:
        result = _result(outcome)
        predictions[str(outcome.item.id)] = None if result is None else prediction(result)
    (options.out / "predictions.json").write_text(json.dumps(predictions), encoding="utf-8")
    metrics = score(samples, predictions).to_dict()
    metrics.pop("per_sample", None)
    return finish(metrics, report, vt, options, title, {"samples": len(samples)})


def evaluate_screenspot(vt: Vistool, annotations: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """GUI grounding: the click (model point, else box centre) must fall inside the target box."""
    samples = read_screenspot(annotations, images_dir, limit=limit)
    return _evaluate_samples(
        vt, samples, options, name="screenspot", title="GUI grounding (ScreenSpot)", task="gui_ground",
        task_options=lambda sample: {"instruction": sample.instruction},
        prediction=lambda result: result.extras.get("click"),
        score=score_clicks,
    )


def evaluate_ocr(vt: Vistool, data: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """OCR: plain text in reading order against the reference text (CER, WER, exact match)."""
    samples = read_ocr(data, images_dir, limit=limit)
    return _evaluate_samples(
        vt, samples, options, name="ocr", title="OCR", task="ocr",
        task_options=lambda sample: {},
        prediction=lambda result: result.text,
        score=score_ocr,
    )


def evaluate_refexp(vt: Vistool, data: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """Referring expressions: the first returned box against the target (Acc@0.5, mean IoU, centre accuracy)."""
    samples = read_refexp(data, images_dir, limit=limit)
    return _evaluate_samples(
        vt, samples, options, name="refexp", title="Referring expressions", task="ground",
        task_options=lambda sample: {"expression": sample.expression},
        prediction=lambda result: result.detections.xyxy[0].tolist() if len(result.detections) else None,
        score=score_refexp,
    )


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m vistool.evaluation.run` / `vistool eval`."""
    parser = argparse.ArgumentParser(prog="vistool eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default="google/gemma-4-E2B-it", help="Hugging Face id, local folder, or served model name")
    model.add_argument("--profile", help="model family (default: read from the checkpoint's config.json, else guessed from the name)")
    model.add_argument("--backend", default="transformers", help="transformers or openai")
    model.add_argument("--base-url", help="server URL for --backend openai")
    model.add_argument("--timeout", type=float, help="--backend openai: seconds one attempt may take in all (default 120)")
    model.add_argument("--retries", type=int, help="--backend openai: tries after a failed one (default 3)")
    model.add_argument("--api-key-env", help="--backend openai: environment variable holding the API key")
    model.add_argument("--budget", type=int, help="image-token budget (default: the task's)")
    model.add_argument("--max-new-tokens", type=int)
    model.add_argument("--structured", action=argparse.BooleanOptionalAction, default=True,
                       help="constrain answers to the task's JSON schema (default); --no-structured or --free: free answers")
    model.add_argument("--free", dest="structured", action="store_false", help=argparse.SUPPRESS)
    model.add_argument("--device")
    model.add_argument("--batch-size", type=int, default=None, help="images per model call (default: the backend's batch for the budget, at most 64; 8 for a server)")
    model.add_argument("--limit", type=int, help="only the first N samples")
    model.add_argument("--out", type=Path, required=True, help="output folder (answer cache, predictions, report)")
    model.add_argument("--rescore", action="store_true", help="score from the answer cache without running the model")
    model.add_argument("--no-progress", action="store_true")
    model.add_argument("--zoom", help="off, tiles or refine, with options after a colon (tiles:tile=1024,overlap=0.25; "
                       "refine:depth=2): several model calls per sample for small targets and 4K screens")
    model.add_argument("--engine", default="local", help="local (one process) or ray (Ray Data; see docs/ray.md)")
    model.add_argument("--ray-address", help="--engine ray: an existing cluster (auto, ray://head:10001); default: a local Ray instance")
    model.add_argument("--ray-actors", type=int, help="--engine ray: model actors (default: one per GPU, or per --base-url server)")
    model.add_argument("--ray-gpus-per-actor", type=float, help="--engine ray: GPUs per model actor (0.5: two per GPU)")
    commands = parser.add_subparsers(dest="benchmark", required=True)
    coco = commands.add_parser("coco", parents=[model], help="COCO detection (pycocotools AP)")
    coco.add_argument("--instances", required=True, help="COCO instances json")
    coco.add_argument("--images", help="images folder (default: the json's folder)")
    coco.add_argument("--chunk-size", type=int, help="class names per prompt (default: all in one prompt)")
    coco.add_argument("--categories", help="comma-separated category names to ask for and score")
    coco.add_argument("--constant-score", type=float, default=1.0, help="score of boxes without log-prob confidence")
    for name, flag, helptext in (
        ("screenspot", "--annotations", "ScreenSpot v1/v2/Pro annotation file or folder"),
        ("ocr", "--data", "JSONL of {image, text}"),
        ("refexp", "--data", "JSONL of referring expressions"),
    ):
        command = commands.add_parser(name, parents=[model])
        command.add_argument(flag, required=True, dest="data", help=helptext)
        command.add_argument("--images", help="images folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmark from the command line; print the markdown report; return the exit code."""
    from vistool.api import load
    from vistool.batch.outpaths import check_writable_folder
    from vistool.errors import VistoolError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["score"] and len(argv) > 1:
        return _score_existing(argv[1], argv[2:])
    args = _parser().parse_args(argv)
    ray_options = RayOptions(address=args.ray_address, actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor)
    options = RunOptions(args.out, batch_size=args.batch_size, rescore=args.rescore, progress=not args.no_progress,
                         zoom=args.zoom, engine=args.engine, ray=ray_options)
    try:
        options.engine = check_engine(args.engine, args.backend)
        task = {"coco": "detect", "screenspot": "gui_ground", "ocr": "ocr", "refexp": "ground"}[args.benchmark]
        options.item_settings(task)  # an unsupported or malformed zoom fails before the model loads
        check_writable_folder(args.out, ["answers.jsonl", "report.json", "report.md", "results.json", "predictions.json"])
        vt = _model(args, load)
        if args.benchmark == "coco":
            categories = [name.strip() for name in args.categories.split(",")] if args.categories else None
            evaluate_coco(vt, args.instances, args.images, options, chunk_size=args.chunk_size, limit=args.limit,
                          categories=categories, constant_score=args.constant_score)
        else:
            evaluate = {"screenspot": evaluate_screenspot, "ocr": evaluate_ocr, "refexp": evaluate_refexp}[args.benchmark]
            evaluate(vt, args.data, args.images, options, limit=args.limit)
    except (VistoolError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text(encoding="utf-8"))
    return 0


def _score_existing(benchmark: str, argv: list[str]) -> int:
    """Score an existing predictions file with the benchmark's own scorer CLI (see `vistool.evaluation.score`)."""
    from vistool.evaluation.score import score_existing

    return score_existing(benchmark, argv)


# The task each benchmark runs (refused before the model loads when the family cannot run it).
BENCHMARK_TASKS = {"coco": "detect", "screenspot": "gui_ground", "ocr": "ocr", "refexp": "ground"}


def _model(args: argparse.Namespace, load: Callable[..., Vistool]) -> Vistool:
    """Find the model family, refuse a benchmark whose task it cannot run, then load the
    model named by the arguments (a stand-in that never generates with --rescore)."""
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task

    family = resolve_profile(args.model, args.profile, backend=args.backend)
    check_task(BENCHMARK_TASKS[args.benchmark], family)
    if args.rescore:
        from vistool.batch.annotate import CacheOnlyBackend

        backend = CacheOnlyBackend(args.model, family.name)
        return Vistool(backend, budget=args.budget, max_new_tokens=args.max_new_tokens, structured=args.structured)
    http = {name: getattr(args, name) for name in ("timeout", "retries", "api_key_env") if getattr(args, name) is not None}
    return load(args.model, backend=args.backend, base_url=args.base_url, budget=args.budget, device=args.device,
                max_new_tokens=args.max_new_tokens, profile=family, lazy=args.engine.strip().lower() == "ray",
                structured=args.structured, **http)


if __name__ == "__main__":
    sys.exit(main())
