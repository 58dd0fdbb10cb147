"""The batch engine: work items -> requests -> backend (in batches) -> answer cache -> results.

A work item is one image path, one task name and that item's own task options (e.g. the
class list of that image), so the same engine serves `vistool annotate` (one task for a
folder) and the benchmark evaluators (a prompt per image).

    runner = BatchRunner(vt, AnswerCache("out/answers.jsonl"), batch_size=8)
    report = runner.run([WorkItem("a.jpg", "detect", {"classes": ["cat"]}), ...])
    for outcome in report.outcomes:       # input order
        outcome.status, outcome.result, outcome.reason

How a run goes: a small thread pool reads each file ahead of the model, checks it (a
regular file within the size cap, an image header; a pipe, a device or a 6 GB non-image
is one failed item, never a hang or a MemoryError), hashes its bytes in chunks and
decodes it only when its answer is not cached (so the model never waits on image
decoding, and a fully cached re-run decodes nothing). Answers are appended to the cache
(fsync'd) after every batch, then interpreted from the cached record, so a fresh result
and a cached one are built from the very same bytes; answers are interpreted a batch at
a time (`BatchRunner.outcomes`: one `parse_many` per task and class list). Work items
and outcomes are defined in `vistool.batch.items`. One item's failure (unreadable file,
model error, unusable answer) is recorded in its `Outcome` and never stops the others.
A cached record that cannot be read back (a corrupted line with a valid key) counts as
absent: the item is asked again, the new answer replaces it, and the report counts it
(`RunReport.unreadable_records`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vistool.api import Vistool
from vistool.batch.cache import AnswerCache, cache_key, key_fields, make_record
from vistool.batch.items import (
    Outcome,
    PreparedItem,
    RunReport,
    Stage,
    Status,
    WorkItem,
    answer_problem,
    record_problem,
)
from vistool.errors import ImageLoadError, ModelLoadError, VistoolError
from vistool.io.images import LoadedImage, image_file_sha256, load_image
from vistool.runtime.backend import answer_requests
from vistool.runtime.types import GenerationResponse
from vistool.tasks import TASKS, RunSettings, TaskResult, build_request, interpret_many
from vistool.zoom import ZoomSettings

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 8  # requests per call to a backend without a batch of its own (servers batch themselves)
FIRST_BATCH_SHARE = 8  # the first batch is 1/8 of the others (at least 1): an early Ctrl-C keeps answers
MAX_DEFAULT_BATCH = 64  # a batch's decoded full-size images (and the next batch's) are held in memory


def default_batch_size(vt: Vistool) -> int:
    """Return how many requests a run sends to `vt`'s backend at once by default.

    A local backend that knows how many requests it wants per call for an image-token
    budget (`requests_per_call(budget)`: a few micro-batches when it refills finished
    rows, else `batch_size_for(budget)`: larger on a GPU, where decoding is bound by
    per-step overhead) gets that for the run's budget, at most MAX_DEFAULT_BATCH; other
    backends get DEFAULT_BATCH.
    """
    preferred = getattr(vt.backend, "requests_per_call", None) or getattr(vt.backend, "batch_size_for", None)
    if preferred is None:
        return DEFAULT_BATCH
    budget = vt.settings.budget if vt.settings.budget is not None else vt.profile.default_budget
    return max(1, min(int(preferred(budget)), MAX_DEFAULT_BATCH))


class BatchRunner:
    """Run work items through a `Vistool`'s backend in batches, with an answer cache.

    Takes the `Vistool` (its backend, model family, default settings and pixel limit are
    used), an optional `AnswerCache` (None: nothing is cached), the number of requests
    sent to the backend at once (`batch_size`; the cache is fsync'd after each batch;
    None: `default_batch_size`), the number of image-reading threads (`workers`; 0
    reads on the calling thread),
    `cache_only` (never call the model: an uncached item fails with stage "cache"; used
    to re-score), and whether to show a tqdm progress bar on stderr (`progress`, with
    its label `description`).
    """

    def __init__(
        self,
        vt: Vistool,
        cache: AnswerCache | None = None,
        *,
        batch_size: int | None = None,
        workers: int = 4,
        cache_only: bool = False,
        progress: bool = True,
        description: str = "vistool",
    ) -> None:
        if batch_size is None:
            batch_size = default_batch_size(vt)
        if batch_size < 1:
            raise VistoolError(f"batch size must be >= 1 (got {batch_size})")
        if workers < 0:
            raise VistoolError(f"workers must be >= 0 (got {workers})")
        self.vt = vt
        self.cache = cache
        self.batch_size = batch_size
        self.workers = workers
        self.cache_only = cache_only
        self.progress = progress
        self.description = description
        self.model_calls = 0
        self.generated = 0
        self._unreadable: set[str] = set()  # keys whose cached record could not be read back

    # ---------------------------------------------------------------- public
    def run(self, items: Iterable[WorkItem]) -> RunReport:
        """Run every item; return a `RunReport` with one `Outcome` per item, in input order."""
        work = list(items)
        start = time.perf_counter()
        calls_before, generated_before = self.model_calls, self.generated
        self._unreadable = set()
        outcomes: list[Outcome | None] = [None] * len(work)
        batch: list[PreparedItem] = []
        bar = tqdm(
            total=len(work), unit="img", desc=self.description, file=sys.stderr, disable=not self.progress,
            dynamic_ncols=True, smoothing=0.1,
        )
        tally: Counter[str] = Counter()

        def settle(new: list[tuple[int, Outcome]]) -> None:
            for index, outcome in new:
                outcomes[index] = outcome
                tally[outcome.status] += 1
            bar.update(len(new))
            bar.set_postfix(cached=tally["cached"], failed=tally["failed"], refresh=False)

        plain = [(index, item) for index, item in enumerate(work) if not self.zoom_of(item).on]
        zoomed = [(index, item) for index, item in enumerate(work) if self.zoom_of(item).on]
        # The first batch is small, so that an interrupt (or a crash) early on already
        # finds answers saved, and the bar shows a rate after seconds, not after a whole batch.
        limit = max(1, self.batch_size // FIRST_BATCH_SHARE)
        cached: list[tuple[PreparedItem, dict[str, Any]]] = []  # interpreted together, as a batch of answers
        try:
            for prepared in self._prefetched(plain):
                record = self._cached_record(prepared)
                if record is not None:
                    cached.append((prepared, record))
                    if len(cached) >= self.batch_size:
                        settle(self._indexed(cached, "cached"))
                        cached = []
                    continue
                ready = self._resolve(prepared)
                if ready is not None:
                    settle([(prepared.index, ready)])
                    continue
                batch.append(prepared)
                if len(batch) >= limit:
                    settle(self._run_batch(batch))
                    batch, limit = [], self.batch_size
            if cached:
                settle(self._indexed(cached, "cached"))
            if batch:
                settle(self._run_batch(batch))
            if zoomed:
                from vistool.batch.zoomed import run_zoomed

                run_zoomed(self, zoomed, settle)
        finally:
            bar.close()
        final = [outcome for outcome in outcomes if outcome is not None]
        return RunReport(final, self.model_calls - calls_before, time.perf_counter() - start,
                         generated=self.generated - generated_before, unreadable_records=len(self._unreadable))

    # ------------------------------------------------------------ preparing
    def zoom_of(self, item: WorkItem) -> ZoomSettings:
        """Return the zoom an item runs with: its own `settings["zoom"]`, else the
        `Vistool`'s default where the item's task supports its mode (see `Vistool.zoom_for`).
        An unsupported zoom is left for `_prepare` to report as the item's failure."""
        try:
            return self.vt.zoom_for(item.task, item.settings.get("zoom"))
        except VistoolError:
            return ZoomSettings()

    def _prefetched(self, work: list[tuple[int, WorkItem]]) -> Iterator[PreparedItem]:
        """Yield each (index, item) prepared (read, hashed, decoded when needed), in order.

        With workers, up to a few batches are prepared ahead on the pool, so decoding
        overlaps with generation while memory stays bounded.
        """
        if self.workers == 0:
            for index, item in work:
                yield self._prepare(index, item)
            return
        window = max(2 * self.batch_size, 2 * self.workers)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vistool-read") as pool:
            upcoming = iter(work)
            pending: deque[Future[PreparedItem]] = deque(pool.submit(self._prepare, *first) for first in islice(upcoming, window))
            try:
                while pending:
                    prepared = pending.popleft().result()
                    following = next(upcoming, None)
                    if following is not None:
                        pending.append(pool.submit(self._prepare, *following))
                    yield prepared
            finally:
                for future in pending:
                    future.cancel()

    def _settings_for(self, item: WorkItem) -> RunSettings:
        """Return the run's settings with the item's overrides applied (its zoom aside)."""
        overrides = {key: value for key, value in item.settings.items() if key != "zoom"}
        if not overrides:
            return self.vt.settings
        try:
            return replace(self.vt.settings, **overrides)
        except TypeError as exc:
            raise VistoolError(f"unknown setting in {dict(item.settings)}: {exc}") from exc

    def _prepare(self, index: int, item: WorkItem) -> PreparedItem:
        """Build the item's request and cache key, read the file, decode it if not cached."""
        return self.load(self.plan(index, item))

    def plan(self, index: int, item: WorkItem) -> PreparedItem:
        """Return the item (at position `index`) with its task spec and request; no file is read.

        An unknown task or unusable options are recorded as an "options" failure.
        """
        prepared = PreparedItem(index, item)
        spec = TASKS.get(item.task)
        if spec is None:
            prepared.failure = ("options", f"unknown task {item.task!r}; use one of {', '.join(TASKS)}")
            return prepared
        prepared.spec = spec
        try:
            self.vt.zoom_for(spec.name, item.settings.get("zoom"))  # an unsupported zoom fails this item
            prepared.request = build_request(spec, self.vt.profile, item.options, self._settings_for(item))
        except VistoolError as exc:
            prepared.failure = ("options", str(exc))
        return prepared

    def load(self, prepared: PreparedItem) -> PreparedItem:
        """Read a planned item's file, hash it into its cache key, and decode it unless its
        answer is cached; return the item, filled in. A file that cannot be read or decoded
        is recorded as a "read" failure; an item that already failed is returned as it is.
        """
        if prepared.failure is not None:
            return prepared
        assert prepared.spec is not None and prepared.request is not None
        path = Path(prepared.item.image)
        try:
            digest = image_file_sha256(path, max_pixels=self.vt.max_pixels)  # a regular image file, checked first
        except ImageLoadError as exc:
            prepared.failure = ("read", str(exc))
            return prepared
        prepared.fields = key_fields(digest, prepared.spec.name, prepared.request, self.vt.backend.model_id)
        prepared.key = cache_key(prepared.fields)
        if self.cache is not None and prepared.key in self.cache:
            read = getattr(self.cache, "get", None)  # a key set (the Ray engine's read stage) has no records to check
            problem = record_problem(read(prepared.key)) if read is not None else None
            if problem is None:
                return prepared  # answered before: no need to decode (a cache-only miss is decoded to say why it fails)
            prepared.unreadable = problem
            if not self.cache_only:
                self.cache.discard(prepared.key)  # asked again; the new answer replaces the record
            logger.warning("the cached answer for %s in %s cannot be read (%s); %s", path, self.cache.path, problem,
                           "leaving it out" if self.cache_only else "asking the model again")
        try:
            loaded = load_image(path, max_pixels=self.vt.max_pixels)
        except ImageLoadError as exc:
            prepared.failure = ("read", str(exc))
            return prepared
        prepared.image = LoadedImage(loaded.image, loaded.width, loaded.height, str(path))
        return prepared

    def _cached_record(self, prepared: PreparedItem) -> dict[str, Any] | None:
        """Return the item's cached answer record, or None (not cached, no cache, the item
        already failed, or its record cannot be read back and was not answered again since)."""
        if prepared.unreadable is not None and prepared.key is not None:
            self._unreadable.add(prepared.key)
        if prepared.failure is not None or self.cache is None or prepared.key is None:
            return None
        record = self.cache.get(prepared.key)
        if record is not None and prepared.unreadable is not None and record_problem(record) is not None:
            return None  # the damaged record itself (kept by a cache-only run): `_resolve` fails the item
        return record

    def _resolve(self, prepared: PreparedItem) -> Outcome | None:
        """Settle an uncached item without the model when possible (it failed, or the run is cache-only).

        Returns its outcome, or None when it must go to the model (its image is loaded).
        Cached items are settled before this, in batches (`_cached_record`, `outcomes`).
        """
        if prepared.failure is not None:
            return self.failed(prepared, *prepared.failure)
        assert prepared.key is not None
        if self.cache_only and prepared.unreadable is not None:
            return self.failed(prepared, "cache", f"the cached answer cannot be read ({prepared.unreadable}); "
                                "run without --rescore to ask the model again")
        if self.cache_only:
            return self.failed(prepared, "cache", "no cached answer for this image and these settings (run without --rescore)")
        assert prepared.image is not None  # only cached items skip decoding, and the cache only grows
        return None

    # -------------------------------------------------------------- running
    def _run_batch(self, batch: list[PreparedItem]) -> list[tuple[int, Outcome]]:
        """Ask the model for one batch (once per distinct key; `ask_model` caches the answers as they
        arrive), interpret them.

        Returns (item position, outcome) pairs.
        """
        answers = self.ask_model(batch)
        return self._indexed([(prepared, answers[prepared.key]) for prepared in batch])  # type: ignore[index]

    def ask_model(self, batch: list[PreparedItem]) -> dict[str, dict[str, Any] | str]:
        """Ask the backend once per distinct cache key of `batch` (loaded items, image decoded).

        Returns key -> the answer's cache record (see `make_record`; exactly what a later
        run reads back from the cache), or the error text of a request that failed. With
        a cache, answers are appended as the backend reports them done (the local backend
        reports each micro-batch as it finishes), so an interrupt keeps them. A backend
        that raises fails every request of the batch not answered by then, and the run goes on,
        except for ModelLoadError (a model built on first use that cannot load: a setup
        error, raised). Counts the backend call in `model_calls` and the requests sent
        in `generated`.
        """
        leaders: dict[str, PreparedItem] = {}
        for prepared in batch:
            assert prepared.key is not None
            leaders.setdefault(prepared.key, prepared)
        requests = [replace(leader.request, images=[leader.image.image]) for leader in leaders.values()]  # type: ignore[union-attr]
        keys = list(leaders)
        answers: dict[str, dict[str, Any] | str] = {}

        def settle(answered: list[tuple[int, GenerationResponse]]) -> None:
            """Keep each answer as it arrives, and append the new ones to the cache at once
            (a backend that finishes requests at different times reports them in groups)."""
            records = []
            for index, response in answered:
                key, leader = keys[index], leaders[keys[index]]
                if response.ok:
                    assert leader.fields is not None and leader.image is not None
                    record = make_record(leader.fields, response.to_dict(packed_logprobs=True), leader.image.size, str(leader.item.image))
                    answers[key] = json.loads(json.dumps(record))  # exactly what a later run reads back
                    records.append(answers[key])
                else:
                    answers[key] = str(response.error)
            if self.cache is not None and records:
                self.cache.append(records)

        self.model_calls += 1
        self.generated += len(requests)
        try:
            responses = answer_requests(self.vt.backend, requests, settle)  # generated, or scored (choices)
            if len(responses) != len(requests):
                raise VistoolError(f"the backend returned {len(responses)} answers for {len(requests)} requests")
        except ModelLoadError:  # a model loaded on first use that cannot load: a setup error, not an item's
            raise
        except Exception as exc:  # a model error, a backend bug, a server gone away: record it, carry on
            for key in keys:
                answers.setdefault(key, f"{type(exc).__name__}: {exc}")  # answers that arrived are kept
        return answers

    def outcome(self, prepared: PreparedItem, answer: dict[str, Any] | str, status: Status = "done") -> Outcome:
        """Return the outcome of a loaded item from its answer.

        Takes the item, its answer (a cache record, or the error text of a failed
        request, as `ask_model` gives them) and the status of a usable answer ("done",
        or "cached" for an answer read from the cache). `outcomes` does the same for a
        batch of answers, faster.
        """
        return self.outcomes([(prepared, answer)], status)[0]

    def outcomes(self, answered: Sequence[tuple[PreparedItem, dict[str, Any] | str]], status: Status = "done") -> list[Outcome]:
        """Return the outcomes of loaded items from their answers, in order (see `outcome`).

        Takes (item, answer) pairs and the status of the usable answers. The answers of
        one task are interpreted together (`interpret_many`: one `parse_many` per class
        list); should that raise, each answer is interpreted alone, so a bad answer
        fails only its own item.
        """
        results: list[Outcome | None] = [None] * len(answered)
        by_task: dict[str, list[int]] = {}
        for position, (prepared, answer) in enumerate(answered):
            if isinstance(answer, str):
                results[position] = self.failed(prepared, "model", f"model error: {answer}")
            else:
                assert prepared.spec is not None
                by_task.setdefault(prepared.spec.name, []).append(position)
        for positions in by_task.values():
            group: list[tuple[PreparedItem, dict[str, Any]]] = [answered[position] for position in positions]  # type: ignore[misc]
            try:
                interpreted: list[TaskResult | None] = list(self._interpret_records(group))
            except Exception:  # isolate: each answer alone in `_settled`
                interpreted = [None] * len(group)
            for position, (prepared, record), result in zip(positions, group, interpreted):
                results[position] = self._settled(prepared, record, status, result)
        return results  # type: ignore[return-value]

    def _indexed(self, answered: list[tuple[PreparedItem, dict[str, Any] | str]], status: Status = "done") -> list[tuple[int, Outcome]]:
        """`outcomes` as (item position, outcome) pairs, for `run`'s bookkeeping."""
        return [(prepared.index, outcome) for (prepared, _), outcome in zip(answered, self.outcomes(answered, status))]

    def _interpret_records(self, group: list[tuple[PreparedItem, dict[str, Any]]]) -> list[TaskResult]:
        """Interpret the records of one task's items with one `interpret_many` call."""
        spec = group[0][0].spec
        assert spec is not None and all(prepared.request is not None for prepared, _ in group)
        sizes = []
        for _, record in group:
            width, height = record["image_size"]
            sizes.append((int(width), int(height)))
        return interpret_many(
            spec,
            self.vt.profile,
            [prepared.item.options for prepared, _ in group],
            [prepared.request for prepared, _ in group],  # type: ignore[misc]
            [GenerationResponse.from_dict(record["response"]) for _, record in group],
            sizes,
            [str(prepared.item.image) for prepared, _ in group],
            [self._settings_for(prepared.item) for prepared, _ in group],
        )

    def _settled(self, prepared: PreparedItem, record: dict[str, Any], status: Status, result: TaskResult | None) -> Outcome:
        """The outcome of a cached (or just cached) answer, interpreted as `result` (None: interpret it here, alone)."""
        outcome = Outcome(prepared.item, status, key=prepared.key, image_sha256=record.get("image_sha256"),
                          answered="cache" if status == "cached" else "model")
        if result is None:
            try:
                result = self._interpret_records([(prepared, record)])[0]
            except Exception as exc:  # a parser bug must not stop the batch; --rescore re-tries after a fix
                return replace(outcome, status="failed", stage="answer", reason=f"cannot interpret the answer: {type(exc).__name__}: {exc}")
        outcome.result = result
        problem = answer_problem(result)
        if problem is not None:
            return replace(outcome, status="failed", stage="answer", reason=problem)
        return outcome

    @staticmethod
    def failed(prepared: PreparedItem, stage: Stage, reason: str) -> Outcome:
        """Return the failed outcome of an item (`stage` and `reason` say where and why)."""
        return Outcome(prepared.item, "failed", reason=reason, stage=stage, key=prepared.key,
                       image_sha256=None if prepared.fields is None else prepared.fields["image_sha256"])


__all__ = [
    "BatchRunner",
    "Outcome",
    "PreparedItem",
    "RunReport",
    "Stage",
    "Status",
    "WorkItem",
    "answer_problem",
    "record_problem",
]
