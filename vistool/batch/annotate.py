"""`vistool annotate`: run one task over a folder of images, resumably, and export the results.

    vistool annotate photos/ --task detect --classes person,car --out out/ --format coco,yolo

What lands in OUT:
  answers.jsonl   the answer cache: every raw answer with its key (never edit; delete
                  it to start over). Re-running skips what is there.
  results.jsonl   one line per image with an answer: the full result with provenance
  failures.jsonl  one line per image that failed: stage and reason
  coco.json       --format coco (box tasks): COCO detection json, file names relative to SRC
  yolo/           --format yolo: data.yaml + labels/<sub-folder>/<stem>.txt
  voc/            --format voc: <sub-folder>/<stem>.xml
  labelstudio/    --format labelstudio: tasks.json (predictions) + label_config.xml
  (FiftyOne)      --format fiftyone: the results as field <task> of the persistent
                  FiftyOne dataset --dataset (default vistool-<OUT folder name>)
  draw/           --draw: annotated copies of the images

The model loads only when an answer is missing from the cache, so a fully cached re-run
loads none. --rescore never loads one: without --model it re-scores the answers of the one
model the cache holds, and when no cached answer matches the settings it stops before
writing anything. No run replaces OUT's exports with emptier ones (see `guard`).

Exit codes: 0 every image annotated (from the model or the cache); 1 finished, but some
images failed (listed in failures.jsonl), an export could not be written, or the exports
were kept because this run would have emptied them; 2 usage or setup error (bad option,
no images, model cannot load, nothing cached to re-score, OUT in use by another run or
not writable); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): run the same command
again to resume.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vistool.batch.cache import AnswerCache
from vistool.batch.export import (
    EXPORT_FORMATS,
    Entry,
    class_counts,
    dataset_classes,
    draw_results,
    has_boxes,
    make_entries,
    remove_stale_temporaries,
    stem_collisions,
    write_coco,
    write_failures,
    write_results_jsonl,
    write_voc,
    write_yolo,
)
from vistool.batch.backends import CacheOnlyBackend, make_vistool, resolve_family
from vistool.batch.export_labels import write_coco_image_labels
from vistool.batch.guard import lost_results
from vistool.batch.outpaths import check_writable_folder, unique_safe_names
from vistool.batch.rescore import cache_contents, cached_model
from vistool.batch.runner import WorkItem
from vistool.batch.sources import collect_images
from vistool.batch.summary import AnnotateSummary
from vistool.engines import RayOptions, check_engine, make_runner
from vistool.errors import VistoolError
from vistool.integrations.fiftyone import add_results
from vistool.integrations.labelstudio import write_labelstudio
from vistool.interrupts import interrupt_exit_code, interrupt_word, sigterm_as_interrupt
from vistool.runtime.deferred import DeferredBackend
from vistool.tasks import TASKS
from vistool.zoom import check_zoom

DEFAULT_MODEL = "google/gemma-4-E2B-it"
EXIT_USAGE = 2  # 0 and 1: AnnotateSummary.exit_code; 130 and 143: vistool.interrupts
CLI_TASKS = ("detect", "ground", "point", "ocr", "caption", "ask", "gui", "classify")
CACHE_FILE = "answers.jsonl"
RESULTS_FILE = "results.jsonl"
FAILURES_FILE = "failures.jsonl"
LOCK_FILE = ".vistool.lock"


@dataclass
class AnnotateConfig:
    """Everything `vistool annotate` takes (see the command's help for each option).

    src: folder, glob or list file; out: output folder; task: one of CLI_TASKS (or a
    task registry name); classes (detect), query (point, ground, ask, gui instruction),
    length (caption), regions/words (ocr) are the task options; formats: any of coco,
    yolo, voc, jsonl (results.jsonl is always written; box tasks default to coco);
    zoom: "off", "tiles" or "refine" with options (`vistool.zoom.ZoomSettings.parse`):
    each tile or crop is cached on its own, so a resumed run re-asks nothing.
    profile: the model family (None: read from the checkpoint, see `resolve_profile`).
    engine: "local" (one process) or "ray" (vistool.engines; ray_address, ray_actors,
    ray_gpus_per_actor, or a whole `RayOptions` as `ray`, say how it runs).
    structured: constrain answers to the task's JSON schema (the default; part of the
    cache key, so free and constrained answers are never mixed up).
    """

    src: str
    out: Path
    task: str = "detect"
    classes: str | Sequence[str] | None = None
    query: str | None = None
    length: str | None = None
    regions: bool = False
    words: bool = False
    model: str | None = None  # None: DEFAULT_MODEL, or with rescore the one model the cache holds answers of
    profile: str | None = None
    backend: str = "transformers"
    base_url: str | None = None
    timeout: float | None = None
    retries: int | None = None
    api_key_env: str | None = None
    device: str | None = None
    dtype: str | None = None
    budget: int | None = None
    batch_size: int | None = None
    max_new_tokens: int | None = None
    thinking: bool = False
    structured: bool = True
    thought_tokens: int | None = None
    formats: Sequence[str] | None = None
    rescore: bool = False
    draw: bool = False
    limit: int | None = None
    max_pixels: int | None = None
    workers: int = 4
    progress: bool = True
    replay_answers: Path | None = None
    dataset: str | None = None
    zoom: str | None = None
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
    ray_gpus_per_actor: float | None = None
    ray: Any = None


# ------------------------------------------------------------------ options
def resolve_task(config: AnnotateConfig) -> tuple[str, dict[str, Any]]:
    """Turn the command's task and task options into (task registry name, options).

    Raises VistoolError when the task is unknown, a needed option is missing, or an
    option is given that the task does not use.
    """
    task = config.task.strip().lower()
    given = {
        "--classes": config.classes is not None,
        "--query": config.query is not None,
        "--length": config.length is not None,
        "--regions": config.regions,
        "--words": config.words,
    }
    name, options, uses = _task_options(task, config)
    unused = [option for option, present in given.items() if present and option not in uses]
    if unused:
        raise VistoolError(f"{', '.join(unused)} does not apply to --task {config.task}")
    return name, options


def _task_options(task: str, config: AnnotateConfig) -> tuple[str, dict[str, Any], set[str]]:
    """Return (registry name, options, the command options this task uses)."""
    query = (config.query or "").strip()

    def need_query(what: str) -> str:
        if not query:
            raise VistoolError(f"--task {task} needs --query ({what})")
        return query

    if task == "detect":
        classes = config.classes
        if isinstance(classes, str):
            classes = [name.strip() for name in classes.split(",") if name.strip()]
            if not classes:
                raise VistoolError("empty class list: give --classes a,b,c (or leave it out for all objects)")
        return "detect", {"classes": list(classes) if classes else None}, {"--classes"}
    if task == "classify":
        if not config.classes:
            raise VistoolError("--task classify needs --classes (the labels to choose from)")
        return "classify", {"labels": config.classes}, {"--classes"}
    if task == "ground":
        return "ground", {"expression": need_query("the referring expression")}, {"--query"}
    if task == "point":
        return "point", {"description": need_query("what to point at")}, {"--query"}
    if task in ("ocr", "ocr_regions"):
        if config.regions or task == "ocr_regions":
            return "ocr_regions", {"granularity": "word" if config.words else "line"}, {"--regions", "--words"}
        return "ocr", {}, {"--regions"}
    if task == "caption":
        return "caption", {"length": config.length or "normal"}, {"--length"}
    if task in ("ask", "vqa"):
        return "vqa", {"question": need_query("the question")}, {"--query"}
    if task in ("gui", "gui_elements", "gui_ground"):
        if query or task == "gui_ground":
            return "gui_ground", {"instruction": need_query("the instruction")}, {"--query"}
        return "gui_elements", {}, {"--query"}
    raise VistoolError(f"unknown task {config.task!r}; use one of {', '.join(CLI_TASKS)}")


def resolve_formats(formats: Sequence[str] | None, task: str) -> list[str]:
    """Return the export formats asked for (comma-separated or repeated; default: coco for
    box tasks, none for the others, whose results.jsonl is always written)."""
    labels = TASKS[task].choices is not None  # a classification: coco means image labels
    if not formats:
        return ["coco"] if has_boxes(task) or labels else []
    chosen: list[str] = []
    for value in formats:
        for name in str(value).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in EXPORT_FORMATS:
                raise VistoolError(f"unknown format {name!r}; use {', '.join(EXPORT_FORMATS)}")
            if name in ("coco", "yolo", "voc") and not has_boxes(task) and not (name == "coco" and labels):
                raise VistoolError(f"--format {name} needs boxes; task {task} gives none (its results go to {RESULTS_FILE})")
            if name not in chosen:
                chosen.append(name)
    return [name for name in chosen if name != "jsonl"]


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def out_folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT for the run (released by the OS if the process dies).

    Raises VistoolError when another run holds it. On systems without `fcntl` no lock is taken.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        yield
        return
    try:
        handle = open(out / LOCK_FILE, "a+")
    except OSError as exc:
        raise VistoolError(f"cannot write to the output folder {out}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise VistoolError(f"{out} is in use by another vistool annotate run") from exc
        yield
    finally:
        handle.close()


def annotate(config: AnnotateConfig, vt: Any = None) -> AnnotateSummary:
    """Run `vistool annotate`: collect the images, run the task with the answer cache,
    write the exports. Returns the `AnnotateSummary` (its `exit_code` is 0 or 1).

    Takes the config and, optionally, a ready `Vistool` (tests and the Python API; else
    it is built from the config by `make_vistool`, and the model loads only when an
    answer is missing from the cache). Raises VistoolError for usage and setup errors,
    before any image is processed, and when a re-score finds no cached answer for these
    settings (nothing is written then). When this run would leave an image that has a
    result in OUT without one, the exports in OUT are kept (see `guard`).
    """
    start = time.perf_counter()
    engine = check_engine(config.engine, config.backend)
    task, options = resolve_task(config)
    zoom = check_zoom(task, config.zoom)  # an unsupported zoom is a usage error, before any image is read
    formats = resolve_formats(config.formats, task)
    if "fiftyone" in formats:
        import importlib.util

        if importlib.util.find_spec("fiftyone") is None:
            raise VistoolError("--format fiftyone needs fiftyone: pip install 'vistool[fiftyone]'")
    if config.draw and not has_boxes(task) and task != "point":
        raise VistoolError(f"--draw needs boxes or points; task {task} gives text only")
    if config.batch_size is not None and config.batch_size < 1:
        raise VistoolError(f"--batch-size must be >= 1 (got {config.batch_size})")
    source = collect_images(config.src, limit=config.limit, exclude=config.out)  # never annotate our own drawings
    names = list(unique_safe_names(source.relative(path) for path in source.paths).values())
    if {"yolo", "voc"} & set(formats):
        clashes = stem_collisions(names)
        if clashes:
            raise VistoolError(
                "YOLO and VOC write one label file per folder and file stem, but these images share one: "
                + "; ".join(f"{a} and {b}" for a, b in clashes[:5]) + " (rename them, or use --format coco)"
            )
    out = Path(config.out)
    check_writable_folder(out, [CACHE_FILE, RESULTS_FILE, FAILURES_FILE, LOCK_FILE, "coco.json"])  # before any model loads
    with out_folder_lock(out):
        remove_stale_temporaries(out)
        cache = AnswerCache(out / CACHE_FILE)
        notes = _cache_notes(cache)
        try:
            if vt is None:
                from vistool.tasks import check_task

                config = _with_model(config, cache, notes)
                family = resolve_family(config)
                check_task(task, family, options)  # an unsupported task or bad options fail before the model loads
                vt = make_vistool(config, family)
            if TASKS[task].choices is not None and not config.rescore and not hasattr(vt.backend, "score"):
                raise VistoolError(f"--task {task} scores each label with the model's log-probabilities, which the "
                                   f"{config.backend} backend cannot do; use the local transformers backend")
            runner = make_runner(engine, vt, cache, batch_size=config.batch_size, workers=config.workers,
                                 cache_only=config.rescore, progress=config.progress, description=f"annotate {task}",
                                 ray=ray_options(config))
            settings = {"zoom": zoom} if zoom.on else {}
            report = runner.run([WorkItem(path, task, options, settings) for path in source.paths])
            if config.rescore and report.answered("cache") == 0 and any(o.stage == "cache" for o in report.failures):
                raise VistoolError(
                    f"--rescore: no cached answer matches model {vt.backend.model_id}, task {task} and these settings "
                    f"for any of the {len(report.outcomes)} images; {cache_contents(cache)}; nothing was written "
                    "(give the model and settings of the run that made the answers)"
                )
        finally:
            cache.close()
        if report.unreadable_records:
            verb = "left out (run without --rescore to ask again)" if config.rescore else "asked the model again"
            notes.append(f"{report.unreadable_records} cached answer(s) in {cache.path} could not be read back: {verb}")
        entries = make_entries(report.outcomes, source.relative)
        summary = AnnotateSummary(out, task, report, cache_notes=notes)
        backend = vt.backend
        if isinstance(backend, DeferredBackend):  # the ray engine loads it in the actors that answered, not here
            summary.model_loaded = backend.loaded if engine == "local" else report.generated > 0
        elif isinstance(backend, CacheOnlyBackend):
            summary.model_loaded = False
        lost = lost_results(out / RESULTS_FILE, entries)
        if lost:
            summary.kept_exports = (
                f"{len(lost)} image(s) with a result there failed in this run (e.g. {lost[0].name}: {lost[0].outcome.reason}); "
                "fix the cause and run again (finished answers are cached), or write to another --out"
            )
        else:
            write_exports(summary, entries, formats, draw=config.draw, max_pixels=config.max_pixels, workers=config.workers,
                          dataset=config.dataset)
    summary.seconds = time.perf_counter() - start
    return summary


def _with_model(config: AnnotateConfig, cache: AnswerCache, notes: list[str]) -> AnnotateConfig:
    """Return the config with its model settled: the one given; else, re-scoring, the one
    model the cache holds answers of (noted); else the default model."""
    if config.model is not None:
        return config
    if config.rescore:
        model = cached_model(cache)
        notes.append(f"re-scoring the cached answers of model {model} (the only model in {cache.path}; --model picks another)")
        return replace(config, model=model)
    return replace(config, model=DEFAULT_MODEL)


def ray_options(config: AnnotateConfig) -> RayOptions:
    """The Ray options of a config: its `ray` when given, with the command's --ray-* values on top."""
    base = config.ray if config.ray is not None else RayOptions()
    given = {"address": config.ray_address, "actors": config.ray_actors, "gpus_per_actor": config.ray_gpus_per_actor}
    return replace(base, **{name: value for name, value in given.items() if value is not None})


def _cache_notes(cache: AnswerCache) -> list[str]:
    """Say what opening the cache found wrong (a torn last line, unreadable lines)."""
    notes = []
    if cache.torn_tail:
        notes.append(f"ignored an incomplete last line in {cache.path} ({cache.torn_tail} bytes, an interrupted write); it is removed")
    if cache.bad_lines:
        notes.append(f"skipped {cache.bad_lines} unreadable line(s) in {cache.path}")
    return notes


def _named(entries: Sequence[Entry]) -> list[tuple[str, Any]]:
    """(output name, result) of every successful entry."""
    return [(entry.name, entry.result) for entry in entries if entry.outcome.ok]


def write_exports(summary: AnnotateSummary, entries: list[Entry], formats: Sequence[str], *, draw: bool = False,
                  max_pixels: int | None = None, workers: int = 4, dataset: str | None = None) -> None:
    """Write results.jsonl, failures.jsonl, the asked formats and drawings into `summary.out`.

    Fills `summary.outputs` (what -> path), `summary.classes` (boxes per class) and
    `summary.export_errors` (an export that failed is reported, the others still written).
    Raises VistoolError when results.jsonl or failures.jsonl cannot be written (a full disk).
    """
    out = summary.out
    for name, write in ((RESULTS_FILE, write_results_jsonl), (FAILURES_FILE, write_failures)):
        try:
            write(out / name, entries)
        except OSError as exc:  # a full disk: the answers are safe in the cache, the exports can be rebuilt
            raise VistoolError(
                f"cannot write {out / name}: {exc.strerror or exc}; every answer is saved in {out / CACHE_FILE}: "
                "make room and run the same command with --rescore to write the results"
            ) from exc
        summary.outputs["results" if name == RESULTS_FILE else "failures"] = str(out / name)
    classes = dataset_classes([entry for entry in entries if entry.outcome.ok and has_boxes(entry.outcome.item.task)])
    if has_boxes(summary.task):
        summary.classes = class_counts(entries, classes)
    writers = {
        "coco": (out / "coco.json", lambda path: write_coco(path, entries, classes)),
        "yolo": (out / "yolo", lambda path: write_yolo(path, entries, classes)),
        "voc": (out / "voc", lambda path: write_voc(path, entries, classes)),
    }
    if TASKS[summary.task].choices is not None:
        writers["coco"] = (out / "coco.json", lambda path: write_coco_image_labels(path, _named(entries)))
    writers["labelstudio"] = (out / "labelstudio", lambda path: write_labelstudio(path, _named(entries), asked=classes))
    dataset_name = dataset or f"vistool-{out.resolve().name}"
    writers["fiftyone"] = (f"FiftyOne dataset {dataset_name!r}, field {summary.task!r}",
                           lambda _: add_results(dataset_name, [(e.path, e.result) for e in entries if e.outcome.ok], summary.task))
    if draw:
        writers["draw"] = (out / "draw", lambda path: draw_results(path, entries, max_pixels=max_pixels, workers=workers))
    for name in [*formats, *(["draw"] if draw else [])]:
        path, write = writers[name]
        try:
            write(path)
            summary.outputs[name] = str(path)
        except Exception as exc:  # one export failing must not lose the others
            summary.export_errors.append(f"{name}: {type(exc).__name__}: {exc}")


def run_cli(config: AnnotateConfig) -> int:
    """Run annotate for the command line: progress and a human summary on stderr, the
    summary as JSON on stdout. Returns the exit code (0, 1, 2, 130 or 143; see the module
    doc). SIGTERM ends the run like Ctrl-C: the answers so far stay in the cache."""
    with sigterm_as_interrupt():
        try:
            summary = annotate(config)
        except VistoolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            print(f"{interrupt_word(exc)}: answers so far are saved in {Path(config.out) / CACHE_FILE}; "
                  "run the same command again to resume", file=sys.stderr)
            return interrupt_exit_code(exc)
    print(summary.text(), file=sys.stderr)
    print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    sys.stdout.flush()
    return summary.exit_code


__all__ = [
    "AnnotateConfig",
    "AnnotateSummary",
    "CLI_TASKS",
    "annotate",
    "make_vistool",
    "ray_options",
    "resolve_formats",
    "resolve_task",
    "run_cli",
    "write_exports",
]
