"""Run a model on a benchmark: reader -> prompts -> batch engine (cache, resume) -> scorer -> report.

Each benchmark is a reader (vistool.evaluation.coco / screenspot / ocr / refexp), the work items it asks
for (one task call per image, with that image's options), how a task result becomes a
prediction, and the scorer; the model is a separate object (`vistool.api.Vistool`), as in
lmms-eval and VLMEvalKit. Answers go through `vistool.batch.BatchRunner` (or, with
`--engine ray`, the Ray engine) with an answer cache in OUT, so an interrupted
evaluation resumes, and `--rescore` re-scores from the cache.

    vistool eval coco --instances ann.json --images DIR --out OUT [--chunk-size 20] [--limit 100]
    vistool eval screenspot --annotations FILE_OR_DIR --images DIR --out OUT [--zoom refine]
    vistool eval ocr --data FILE.jsonl --images DIR --out OUT
    vistool eval refexp --data FILE.jsonl --images DIR --out OUT
    vistool eval score coco GT.json RESULTS.json     # score an existing predictions file
    vistool eval score screenspot PREDICTIONS.jsonl  # (any of coco, screenspot, ocr, refexp)
    (also `python -m vistool.evaluation.run ...` with the same arguments)

The input files are read and checked before any model loads. Exit codes: 0 scored; 1 the
run finished but nothing was evaluated (no prompt got an answer: unreadable images, model
errors, nothing cached for --rescore); 2 usage or input error; 130 interrupted, 143
terminated (run again to resume).

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

from vistool.api import Vistool
from vistool.batch.cache import AnswerCache
from vistool.batch.runner import Outcome, RunReport, WorkItem
from vistool.engines import RayOptions, check_engine, make_runner
from vistool.evaluation.coco import CocoDataset, detections_to_results
from vistool.evaluation.counts import NothingEvaluated, coco_summary_table, nothing_evaluated, run_counts
from vistool.evaluation.inputs import check_images, read_input
from vistool.evaluation.ocr import read_ocr, score_ocr
from vistool.evaluation.refexp import read_refexp, score_refexp
from vistool.evaluation.report import write_report
from vistool.evaluation.screenspot import read_screenspot, score_clicks
from vistool.profiles.base import ModelProfile
from vistool.zoom import ZoomLike, ZoomSettings, check_zoom

DEFAULT_MODEL = "google/gemma-4-E2B-it"
BENCHMARKS: dict[str, str] = {
    "coco": "COCO detection: ask for the dataset's classes on each image, score AP and AR (pycocotools' numbers)",
    "screenspot": "GUI grounding on ScreenSpot v1/v2/Pro: the click must land in the target box",
    "ocr": "OCR: plain text against the reference (CER, WER, exact match)",
    "refexp": "Referring expressions (RefCOCO style): Acc@0.5, mean IoU, centre accuracy",
    "score": "score an existing predictions file with a benchmark's scorer, no model ('score BENCHMARK --help')",
}

# The task each benchmark runs (refused before the model loads when the family cannot run it).
BENCHMARK_TASKS = {"coco": "detect", "screenspot": "gui_ground", "ocr": "ocr", "refexp": "ground"}


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
    """Run work items through the batch engine with the answer cache in `options.out`; return
    the report. Raises NothingEvaluated (before anything is written) when no item got an answer."""
    options.out.mkdir(parents=True, exist_ok=True)
    with AnswerCache(options.out / "answers.jsonl") as cache:
        runner = make_runner(
            options.engine, vt, cache, batch_size=options.batch_size, workers=options.workers,
            cache_only=options.rescore, progress=options.progress, description=name, ray=options.ray,
        )
        report = runner.run(items)
        reason = nothing_evaluated(report)
        if reason is not None:
            if options.rescore:
                from vistool.batch.rescore import cache_contents

                reason += f"; {cache_contents(cache)}"
            raise NothingEvaluated(f"{reason}; nothing was written to {options.out}")
    return report


def finish(metrics: dict[str, Any], report: RunReport, vt: Vistool, options: RunOptions, title: str, extra: dict | None = None) -> dict[str, Any]:
    """Add run facts to the metrics, write OUT/report.json and OUT/report.md, return the metrics."""
    meta = {
        "model": vt.backend.model_id,
        "profile": vt.profile.name,
        "zoom": ZoomSettings.parse(options.zoom).text(),
        "cost": run_cost(report),
        **(extra or {}),
        "run": run_counts(report),
        "failures": [{"id": o.item.name, "stage": o.stage, "reason": o.reason} for o in report.failures][:50],
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
    return run_coco(vt, dataset, options, chunk_size=chunk_size, constant_score=constant_score)


def run_coco(vt: Vistool, dataset: CocoDataset, options: RunOptions, *, chunk_size: int | None = None,
             constant_score: float = 1.0) -> dict[str, Any]:
    """`evaluate_coco` on a dataset already read (see there)."""
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
    metrics = {**score.stats, "summary": coco_summary_table(score.stats), "per_class_ap": score.per_class_ap}
    extra = {
        "images": len(dataset),
        "classes_per_prompt": size,
        "prompts_per_image": len(chunks),
        "prompts": len(items),
        "detections": len(results),
        "score_source": f"log-prob confidence for {scored} boxes, constant {constant_score} for {constant}",
        "labels_not_in_dataset": dict(sorted(unmatched.items(), key=lambda kv: -kv[1])[:20]),
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


def run_screenspot(vt: Vistool, samples: Sequence[Any], options: RunOptions) -> dict[str, Any]:
    """GUI grounding on samples already read: the click (model point, else box centre) must fall inside the target box."""
    return _evaluate_samples(
        vt, samples, options, name="screenspot", title="GUI grounding (ScreenSpot)", task="gui_ground",
        task_options=lambda sample: {"instruction": sample.instruction},
        prediction=lambda result: result.extras.get("click"),
        score=score_clicks,
    )


def run_ocr(vt: Vistool, samples: Sequence[Any], options: RunOptions) -> dict[str, Any]:
    """OCR on samples already read: plain text in reading order against the reference text (CER, WER, exact match)."""
    return _evaluate_samples(
        vt, samples, options, name="ocr", title="OCR", task="ocr",
        task_options=lambda sample: {},
        prediction=lambda result: result.text,
        score=score_ocr,
    )


def run_refexp(vt: Vistool, samples: Sequence[Any], options: RunOptions) -> dict[str, Any]:
    """Referring expressions on samples already read: the first returned box against the target."""
    return _evaluate_samples(
        vt, samples, options, name="refexp", title="Referring expressions", task="ground",
        task_options=lambda sample: {"expression": sample.expression},
        prediction=lambda result: result.detections.xyxy[0].tolist() if len(result.detections) else None,
        score=score_refexp,
    )


def evaluate_screenspot(vt: Vistool, annotations: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """GUI grounding: the click (model point, else box centre) must fall inside the target box."""
    return run_screenspot(vt, read_screenspot(annotations, images_dir, limit=limit), options)


def evaluate_ocr(vt: Vistool, data: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """OCR: plain text in reading order against the reference text (CER, WER, exact match)."""
    return run_ocr(vt, read_ocr(data, images_dir, limit=limit), options)


def evaluate_refexp(vt: Vistool, data: str | Path, images_dir: str | Path | None, options: RunOptions, *, limit: int | None = None) -> dict[str, Any]:
    """Referring expressions: the first returned box against the target (Acc@0.5, mean IoU, centre accuracy)."""
    return run_refexp(vt, read_refexp(data, images_dir, limit=limit), options)


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    """The argument parser of `vistool eval` / `python -m vistool.evaluation.run`."""
    parser = argparse.ArgumentParser(
        prog="vistool eval", description="Evaluate a model on a benchmark, or score an existing predictions file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default=None, help=f"Hugging Face id, local folder, or served model name (default: {DEFAULT_MODEL}; with --rescore: the one model whose answers the cache holds)")
    model.add_argument("--profile", help="model family (default: read from the checkpoint's config.json, else guessed from the name)")
    model.add_argument("--backend", default="transformers", help="transformers (local model) or openai (a serving engine)")
    model.add_argument("--base-url", help="server URL for --backend openai")
    model.add_argument("--timeout", type=float, help="--backend openai: seconds one attempt may take in all (default 120)")
    model.add_argument("--retries", type=int, help="--backend openai: tries after a failed one (default 3)")
    model.add_argument("--api-key-env", help="--backend openai: environment variable holding the API key")
    model.add_argument("--budget", type=int, help="image-token budget (default: the task's)")
    model.add_argument("--max-new-tokens", type=int, help="token limit per answer (default: the task's)")
    model.add_argument("--structured", action=argparse.BooleanOptionalAction, default=True,
                       help="constrain answers to the task's JSON schema (default); --no-structured or --free: free answers")
    model.add_argument("--free", dest="structured", action="store_false", help=argparse.SUPPRESS)
    model.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: best available)")
    model.add_argument("--dtype", help="weights precision of a local model: bfloat16, float16 or float32 (default: bfloat16 on CUDA, float16 on MPS, float32 on CPU)")
    model.add_argument("--batch-size", type=int, default=None, help="images per model call (default: the backend's batch for the budget, at most 64; 8 for a server)")
    model.add_argument("--limit", type=int, help="only the first N samples")
    model.add_argument("--out", type=Path, required=True, help="output folder (answer cache, predictions, report)")
    model.add_argument("--rescore", action="store_true", help="score from the answer cache without running the model")
    model.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    model.add_argument("--zoom", help="off, tiles or refine, with options after a colon (tiles:tile=1024,overlap=0.25; "
                       "refine:depth=2): several model calls per sample for small targets and 4K screens")
    model.add_argument("--engine", default="local", help="local (one process) or ray (Ray Data; see docs/ray.md)")
    model.add_argument("--ray-address", help="--engine ray: an existing cluster (auto, ray://head:10001); default: a local Ray instance")
    model.add_argument("--ray-actors", type=int, help="--engine ray: model actors (default: one per GPU, or per --base-url server)")
    model.add_argument("--ray-gpus-per-actor", type=float, help="--engine ray: GPUs per model actor (0.5: two per GPU)")
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    coco = commands.add_parser("coco", parents=[model], help=BENCHMARKS["coco"], description=BENCHMARKS["coco"])
    coco.add_argument("--instances", required=True, help="COCO instances json")
    coco.add_argument("--images", help="images folder (default: the json's folder)")
    coco.add_argument("--chunk-size", type=int, help="class names per prompt (default: all in one prompt)")
    coco.add_argument("--categories", help="comma-separated category names to ask for and score")
    coco.add_argument("--constant-score", type=float, default=1.0, help="score of boxes without log-prob confidence")
    for name, flag, helptext in (
        ("screenspot", "--annotations", "ScreenSpot v1/v2 annotation json, or ScreenSpot-Pro's annotations/ folder"),
        ("ocr", "--data", "JSONL of {image, text}"),
        ("refexp", "--data", "JSONL of {image, expression or sentences, bbox [x, y, w, h]}"),
    ):
        command = commands.add_parser(name, parents=[model], help=BENCHMARKS[name], description=BENCHMARKS[name])
        command.add_argument(flag, required=True, dest="data", help=helptext)
        command.add_argument("--images", help="images folder (default: the data file's folder)")
    commands.add_parser("score", help=BENCHMARKS["score"], add_help=False)
    return parser


EPILOG = """examples:
  vistool eval coco --instances instances_val2017.json --images val2017/ --out runs/coco --chunk-size 20 --limit 500
  vistool eval screenspot --annotations ScreenSpot-Pro/annotations --images ScreenSpot-Pro/images --out runs/sspro
  vistool eval score coco GT.json RESULTS.json
  vistool eval BENCHMARK --help      (each benchmark's options)

The input files are checked before any model loads. Answers are cached in OUT/answers.jsonl:
an interrupted run resumes, and --rescore scores again from the cache without a model.
Exit codes: 0 scored; 1 nothing was evaluated (no prompt got an answer); 2 usage or input
error; 130 interrupted, 143 terminated.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmark (or score a file) from the command line; print the markdown report;
    return the exit code (see the module docstring)."""
    from vistool.batch.outpaths import check_writable_folder
    from vistool.errors import VistoolError
    from vistool.interrupts import interrupt_exit_code, interrupt_word, sigterm_as_interrupt

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["score"]:
        return _score_existing(argv[1:])
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (2) or the help (0)
        return int(exc.code or 0)
    ray_options = RayOptions(address=args.ray_address, actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor)
    options = RunOptions(args.out, batch_size=args.batch_size, rescore=args.rescore, progress=not args.no_progress,
                         zoom=args.zoom, engine=args.engine, ray=ray_options)
    with sigterm_as_interrupt():
        try:
            options.engine = check_engine(args.engine, args.backend)
            options.item_settings(BENCHMARK_TASKS[args.benchmark])  # an unsupported or malformed zoom fails before the model loads
            check_writable_folder(args.out, ["answers.jsonl", "report.json", "report.md", "results.json", "predictions.json"])
            # A benchmark the family cannot run is refused first, and a wrong file before any model loads;
            # --rescore without --model takes the model the cache holds, once the inputs are known good.
            chosen = _family(args) if args.model is not None or not args.rescore else None
            inputs = _read_inputs(args)
            model, family = chosen or _family(args)
            vt = _model(args, model, family, options.engine)
            if args.benchmark == "coco":
                run_coco(vt, inputs, options, chunk_size=args.chunk_size, constant_score=args.constant_score)
            else:
                {"screenspot": run_screenspot, "ocr": run_ocr, "refexp": run_refexp}[args.benchmark](vt, inputs, options)
        except NothingEvaluated as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (VistoolError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print(f"{interrupt_word(exc)}: answers so far are saved in {args.out / 'answers.jsonl'}; "
                  "run the same command again to resume", file=sys.stderr)
            return interrupt_exit_code(exc)
    print((args.out / "report.md").read_text(encoding="utf-8"))
    return 0


def _read_inputs(args: argparse.Namespace) -> Any:
    """Read and check the benchmark's data file and images (see `vistool.evaluation.inputs`);
    return the CocoDataset or the list of samples."""
    if args.benchmark == "coco":
        categories = [name.strip() for name in args.categories.split(",")] if args.categories else None
        dataset = read_input("coco", "--instances", args.instances,
                             lambda: CocoDataset(args.instances, args.images, categories, args.limit))
        check_images([sample.image for sample in dataset], "--images", args.images)
        return dataset
    reader = {"screenspot": read_screenspot, "ocr": read_ocr, "refexp": read_refexp}[args.benchmark]
    flag = "--annotations" if args.benchmark == "screenspot" else "--data"
    samples = read_input(args.benchmark, flag, args.data, lambda: reader(args.data, args.images, limit=args.limit))
    check_images([sample.image for sample in samples], "--images", args.images)
    return samples


def _score_existing(argv: list[str]) -> int:
    """Score an existing predictions file (`vistool eval score BENCHMARK ...`; see `vistool.evaluation.score`)."""
    from vistool.evaluation.score import main as score_main

    return score_main(argv)


def _family(args: argparse.Namespace) -> tuple[str, ModelProfile]:
    """Return the model the arguments name (without --model: with --rescore the one model
    whose answers OUT's cache holds, else the default) and its family; raise
    UnsupportedTaskError when the family cannot run the benchmark's task."""
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task

    model = args.model
    if args.rescore and model is None:
        from vistool.batch.rescore import cached_model

        with AnswerCache(args.out / "answers.jsonl") as cache:
            model = cached_model(cache)
        print(f"note: re-scoring the cached answers of model {model} (the only model in the cache)", file=sys.stderr)
    model = model or DEFAULT_MODEL
    family = resolve_profile(model, args.profile, backend=args.backend)
    check_task(BENCHMARK_TASKS[args.benchmark], family)
    return model, family


def _model(args: argparse.Namespace, model: str, family: ModelProfile, engine: str) -> Vistool:
    """Return the `Vistool` of the run: a stand-in that never generates with --rescore, else
    the model named by the arguments (with the ray engine lazily: each actor loads its own)."""
    from vistool.api import load
    from vistool.batch.backends import CacheOnlyBackend

    if args.budget is not None:
        family.check_budget(args.budget)
    if args.rescore:
        return Vistool(CacheOnlyBackend(model, family.name), budget=args.budget, max_new_tokens=args.max_new_tokens,
                       structured=args.structured)
    http = {name: getattr(args, name) for name in ("timeout", "retries", "api_key_env") if getattr(args, name) is not None}
    return load(model, backend=args.backend, base_url=args.base_url, budget=args.budget, device=args.device,
                dtype=args.dtype, max_new_tokens=args.max_new_tokens, profile=family, lazy=engine == "ray",
                structured=args.structured, **http)


if __name__ == "__main__":
    sys.exit(main())
