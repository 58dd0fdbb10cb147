"""Zoomed work items in the batch engine: every tile or crop through the answer cache.

A zoomed item (zoom "tiles" or "refine") costs several model calls. Each pass is cached
on its own, keyed by the source image's content hash, the pass's prompt and settings,
and its crop box in pixels of the displayed image (`key_fields(..., crop=box)`; a pass on
the whole image has the same key as an unzoomed call). So a resumed run asks only the
passes it lacks, and refine's second pass, planned from the first pass's cached answer,
lands on the same key again. Items go in chunks of `batch_size` images; the ready passes
of a chunk are asked `batch_size` at a time, and the cache is fsync'd after each call.
Every pass is interpreted from its cache record, so a fresh and a resumed run build the
same result from the same bytes. Unlike unzoomed items, a zoomed item's image is decoded
even when every pass is cached (the passes are planned on the displayed image).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vistool.batch.cache import cache_key, key_fields, make_record
from vistool.errors import ImageLoadError, ModelLoadError, VistoolError
from vistool.io.images import image_file_sha256, load_image
from vistool.runtime.backend import answer_requests
from vistool.runtime.types import GenerationResponse
from vistool.tasks import TASKS
from vistool.zoom import Pass, ZoomJob
from vistool.zoom.mapping import is_whole

if TYPE_CHECKING:
    from vistool.batch.runner import BatchRunner, Outcome, WorkItem


@dataclass
class _Item:
    """One zoomed item: its position, work item, content hash, job, and how it went."""

    index: int
    item: "WorkItem"
    sha256: str | None = None
    job: ZoomJob | None = None
    failure: tuple[str, str] | None = None
    asked: int = 0  # passes answered by the model in this run (not from the cache)


def run_zoomed(runner: "BatchRunner", work: list[tuple[int, "WorkItem"]], settle: Callable[[list[tuple[int, "Outcome"]]], None]) -> None:
    """Run zoomed (index, item) pairs for `runner`, handing each chunk's outcomes to `settle`."""
    size = runner.batch_size
    with ThreadPoolExecutor(max_workers=max(1, runner.workers), thread_name_prefix="vistool-zoom-read") as pool:
        for start in range(0, len(work), size):
            chunk = list(pool.map(lambda pair: _prepare(runner, *pair), work[start : start + size]))
            _answer_chunk(runner, [entry for entry in chunk if entry.job is not None])
            settle([(entry.index, _outcome(runner, entry)) for entry in chunk])


def _prepare(runner: "BatchRunner", index: int, item: "WorkItem") -> _Item:
    """Read, hash and decode the item's image and plan its passes (a failure is recorded)."""
    entry = _Item(index, item)
    spec = TASKS.get(item.task)
    if spec is None:
        entry.failure = ("options", f"unknown task {item.task!r}; use one of {', '.join(TASKS)}")
        return entry
    path = Path(item.image)
    try:
        zoom = runner.zoom_of(item)
        settings = runner._settings_for(item)
        spec.prompt(runner.vt.profile, item.options)
    except VistoolError as exc:
        entry.failure = ("options", str(exc))
        return entry
    try:  # a regular image file, checked before its bytes are read (as for unzoomed items)
        entry.sha256 = image_file_sha256(path, max_pixels=runner.vt.max_pixels)
        loaded = load_image(path, max_pixels=runner.vt.max_pixels)
    except ImageLoadError as exc:
        entry.failure = ("read", str(exc))
        return entry
    try:
        entry.job = ZoomJob(spec, runner.vt.profile, dict(item.options), settings, loaded.image, str(path), zoom)
    except VistoolError as exc:
        entry.failure = ("options", str(exc))
    return entry


def _fields(runner: "BatchRunner", entry: _Item, step: Pass) -> dict[str, Any]:
    """The cache key fields of one pass: the source image, the pass's request and its crop."""
    assert entry.sha256 is not None and entry.job is not None
    crop = None if is_whole(step.box, entry.job.size) else step.box
    return key_fields(entry.sha256, step.spec.name, step.request, runner.vt.backend.model_id, crop=crop)


def _answer_chunk(runner: "BatchRunner", entries: list[_Item]) -> None:
    """Answer every pass of the chunk's jobs, round after round (refine plans its next pass
    from the answer before): from the cache where it has them, else from the model."""
    while True:
        ready = [(entry, step) for entry in entries if entry.failure is None for step in entry.job.pending()]  # type: ignore[union-attr]
        if not ready:
            return
        missing: dict[str, list[tuple[_Item, Pass, dict[str, Any]]]] = {}
        for entry, step in ready:
            fields = _fields(runner, entry, step)
            key = cache_key(fields)
            record = runner.cache.get(key) if runner.cache is not None else None
            problem = None if record is None else _unreadable(runner, key, record, entry)
            if problem is not None and runner.cache_only:
                entry.failure = ("cache", f"the cached answer of the {step.purpose} pass cannot be read ({problem}); "
                                          "run without --rescore to ask the model again")
            elif record is not None and problem is None:
                _feed(entry, step, record)
            elif runner.cache_only:
                entry.failure = ("cache", f"no cached answer for the {step.purpose} pass on {list(step.box)} "
                                          "(run without --rescore)")
            else:
                missing.setdefault(key, []).append((entry, step, fields))
        keys = list(missing)
        for start in range(0, len(keys), runner.batch_size):
            _ask(runner, {key: missing[key] for key in keys[start : start + runner.batch_size]})


def _unreadable(runner: "BatchRunner", key: str, record: dict[str, Any], entry: _Item) -> str | None:
    """Say why a pass's cached record cannot be read back (then it counts as absent: the
    cache forgets it, so that the pass is asked again), or None when it can."""
    from vistool.batch.runner import logger, record_problem

    problem = record_problem(record)
    if problem is not None:
        runner._unreadable.add(key)
        if not runner.cache_only and runner.cache is not None:
            runner.cache.discard(key)
        logger.warning("a cached answer for %s cannot be read (%s); %s", entry.item.image, problem,
                       "leaving it out" if runner.cache_only else "asking the model again")
    return problem


def _ask(runner: "BatchRunner", group: dict[str, list[tuple[_Item, Pass, dict[str, Any]]]]) -> None:
    """Ask the model once per distinct key, cache the answers, feed every pass that waits on them."""
    leaders = [members[0] for members in group.values()]
    requests = [step.request for _, step, _ in leaders]
    runner.model_calls += 1  # one backend call; `generated` counts the answers asked in it
    runner.generated += len(requests)
    try:
        responses = answer_requests(runner.vt.backend, requests)
        if len(responses) != len(requests):
            raise VistoolError(f"the backend returned {len(responses)} answers for {len(requests)} requests")
    except ModelLoadError:  # a model loaded on first use that cannot load: a setup error, not an item's
        raise
    except Exception as exc:  # a model error, a backend bug, a server gone away: record it, carry on
        responses = [GenerationResponse.failure(f"{type(exc).__name__}: {exc}") for _ in requests]
    records: dict[str, dict[str, Any]] = {}
    for (key, members), (entry, step, fields), response in zip(group.items(), leaders, responses):
        if response.ok:
            record = make_record(fields, response.to_dict(), step.size, str(entry.item.image))
            records[key] = json.loads(json.dumps(record))  # exactly what a later run reads back
    if runner.cache is not None and records:
        runner.cache.append(records.values())
    for (key, members), response in zip(group.items(), responses):
        for entry, step, _ in members:
            entry.asked += 1
            if key in records:
                _feed(entry, step, records[key])
            else:
                entry.job.feed(step, response)  # type: ignore[union-attr]


def _feed(entry: _Item, step: Pass, record: dict[str, Any]) -> None:
    """Hand a pass the answer stored in its cache record."""
    assert entry.job is not None
    try:
        entry.job.feed(step, GenerationResponse.from_dict(record["response"]))
    except Exception as exc:  # a parser bug must not stop the batch; --rescore re-tries after a fix
        entry.failure = ("answer", f"cannot interpret the {step.purpose} pass's answer: {type(exc).__name__}: {exc}")


def _outcome(runner: "BatchRunner", entry: _Item) -> "Outcome":
    """The outcome of one zoomed item."""
    from vistool.batch.runner import Outcome, answer_problem

    item = entry.item
    if entry.failure is not None:
        stage, reason = entry.failure
        return Outcome(item, "failed", reason=reason, stage=stage, image_sha256=entry.sha256)  # type: ignore[arg-type]
    assert entry.job is not None
    result = entry.job.result()
    key = cache_key(_fields(runner, entry, entry.job.passes[0]))
    status = "done" if entry.asked else "cached"
    outcome = Outcome(item, status, result=result, key=key, image_sha256=entry.sha256,  # type: ignore[arg-type]
                      answered="model" if entry.asked else "cache")
    if not result.ok:
        return replace(outcome, status="failed", stage="model", reason=f"model error: {result.error}")
    problem = answer_problem(result)
    if problem is not None:
        return replace(outcome, status="failed", stage="answer", reason=problem)
    return outcome
