"""The Ray engine: the batch runner's steps as a Ray Data pipeline, on one machine or a cluster.

    runner = RayRunner(vistool.load(model, lazy=True), AnswerCache("out/answers.jsonl"),
                       options=RayOptions(actors=2))
    report = runner.run(items)          # the same RunReport as BatchRunner.run

The dataset is the list of work items (a path, a task, options; a few hundred bytes a
row). Three stages, all made of `vistool.batch.BatchRunner`'s own steps:

  read   Ray tasks, in parallel: `plan` (the task adapter builds the request) and `load`
         (read the file, hash it into the cache key, decode it unless its answer is
         already cached). A row that needs the model carries the decoded RGB pixels on;
         one that is cached, or failed (unreadable, bad options), carries only its facts.
         Any error is the row's own: a bad image never fails a block.
  model  Ray actors, one backend each, built from the recipe where the actor runs
         (`vistool.load(..., lazy=True)`): the transformers backend (GPU actors when the
         cluster has GPUs), the OpenAI backend over a list of servers, or ray.data.llm's
         vLLM processor (vistool.engines.ray_vllm). `ask_model` answers each batch once
         per distinct key and turns each answer into its cache record.
  write  the driver, the one writer: each finished block's records are appended to the
         answer cache (fsync'd) as it arrives; at the end every item's outcome is built
         from its cached record by the parser, exactly as a cached re-run builds it.

The read and model stages are vistool.engines.ray_stages; this module is the driver.

A worker that dies (kill -9, a lost node) is restarted by Ray and its unfinished block
run again (Ray Data's defaults: model actors are restarted and their tasks retried
without limit, reading tasks too): answers of finished blocks are already in the
cache, and the cache never stores a key twice. Rows the model stage did not see (the
vLLM path filters them) are settled on the driver by the local runner, from the cache.
Zoomed items (tiles, refine: passes planned one after another) are refused.

The read stage sees only the cache's key set, so before it is built the driver reads
every cached record back (`record_problem`, ~65 us a record): a damaged
one (a valid key, a response that cannot be rebuilt) is discarded and logged, so its
item is asked again, and `RunReport.unreadable_records` counts those of this run's
items, as the one-process runner does.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data
from tqdm import tqdm

import vistool
from vistool.api import Vistool
from vistool.batch.cache import AnswerCache
from vistool.batch.items import record_problem
from vistool.batch.runner import DEFAULT_BATCH, MAX_DEFAULT_BATCH, BatchRunner, Outcome, PreparedItem, RunReport, Status, WorkItem
from vistool.engines import RayOptions
from vistool.engines.ray_stages import ROW_SCHEMA, CachedKeys, ModelName, ModelStage, item_blocks, read_block
from vistool.errors import ModelLoadError, VistoolError
from vistool.runtime.deferred import BackendRecipe
from vistool.runtime.speed import default_batch_size

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[float]:
    """Use the Ray instance this process is connected to, or start one for the run.

    With `options.address` connects to that cluster; otherwise starts a local instance
    with the options' limits, no dashboard, and workers importing this very vistool.
    Shuts down only what it started. Yields the seconds the start-up took (0.0 when
    Ray was already running).
    """
    if ray.is_initialized():
        yield 0.0
        return
    start = time.perf_counter()
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address:
        ray.init(address=options.address, **quiet)
    else:
        package_root = str(Path(vistool.__file__).resolve().parents[1])
        path = os.pathsep.join(part for part in (package_root, os.environ.get("PYTHONPATH", "")) if part)
        ray.init(num_cpus=options.num_cpus, num_gpus=options.num_gpus, object_store_memory=options.object_store_memory,
                 include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
    try:
        yield time.perf_counter() - start
    finally:
        ray.shutdown()


class RayRunner:
    """Run work items on Ray Data; same results, cache and report as `BatchRunner`.

    Takes the `Vistool` (its settings, family and pixel limit; its backend is built in
    each actor from its recipe when it has one, `vistool.load(..., lazy=True)`, else
    shipped to the actors as it is), the answer cache (written by this process only),
    the rows per model call (`batch_size`; None: the backend's default for the budget,
    on a GPU when the actors get one), the progress bar switch and label, and the
    `RayOptions`. `startup_s` holds the last run's Ray start-up time.
    """

    def __init__(self, vt: Vistool, cache: AnswerCache, *, batch_size: int | None = None, progress: bool = True,
                 description: str = "vistool", options: RayOptions | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise VistoolError(f"batch size must be >= 1 (got {batch_size})")
        self.vt = vt
        self.cache = cache
        self.options = options or RayOptions()
        self.recipe: BackendRecipe | None = getattr(vt.backend, "recipe", None)
        self.batch_size = batch_size
        self.progress = progress
        self.description = description
        self.startup_s = 0.0
        self.light = copy.copy(vt)
        self.light.backend = ModelName(vt.backend.model_id, vt.backend.profile_name)  # type: ignore[assignment]
        if self.recipe is not None and self.recipe.backend.strip().lower() == "vllm" and vt.settings.structured:
            # ray.data.llm's vLLM stage sends no JSON schema (yet): plan its requests free, so that the cache
            # keys and the results say what was generated.
            warnings.warn("--engine ray --backend vllm sends no JSON schema: answers are generated free", UserWarning,
                          stacklevel=2)
            self.light.settings = dataclasses.replace(self.light.settings, structured=False)

    # ---------------------------------------------------------------- public
    def run(self, items: Iterable[WorkItem]) -> RunReport:
        """Run every item; return a `RunReport` with one `Outcome` per item, in input order."""
        work = list(items)
        start = time.perf_counter()
        if not work:
            return RunReport([], 0, 0.0)
        planner = BatchRunner(self.light, None, batch_size=1, workers=0, progress=False)
        if any(planner.zoom_of(item).on for item in work):
            raise VistoolError("zoom (tiles, refine) runs with --engine local only: its passes are planned one after "
                               "another on each image, which the Ray engine does not do yet")
        rows: dict[int, dict[str, Any]] = {}
        unreadable = self._discard_unreadable()
        bar = tqdm(total=len(work), unit="img", desc=self.description, file=sys.stderr, disable=not self.progress,
                   dynamic_ncols=True, smoothing=0.1)
        try:
            with ray_session(self.options) as startup, _quiet_ray_data():
                self.startup_s = startup
                for block in self._pipeline(work).iter_batches(batch_size=None, batch_format="pyarrow"):
                    self._write(block, rows)
                    bar.update(block.num_rows)
        finally:
            bar.close()
        outcomes = self._outcomes(work, rows)
        calls = sum(1 for row in rows.values() if row["call"])
        asked = sum(1 for row in rows.values() if row["asked"])
        unread = len(unreadable & {row["key"] for row in rows.values() if row["key"]})  # this run's items only
        return RunReport(outcomes, calls, time.perf_counter() - start, generated=asked, unreadable_records=unread)

    def _discard_unreadable(self) -> set[str]:
        """Discard every cached record that cannot be read back (so the read stage, which
        sees only the key set, sends its item to the model again); return their keys."""
        unreadable = set()
        for key in self.cache.keys():
            record = self.cache.get(key)
            problem = record_problem(record)
            if problem is None:
                continue
            unreadable.add(key)
            self.cache.discard(key)  # asked again; the new answer replaces the record
            where = record.get("path") if isinstance(record, dict) and isinstance(record.get("path"), str) else key
            logger.warning("the cached answer for %s in %s cannot be read (%s); asking the model again", where,
                           self.cache.path, problem)
        return unreadable

    # -------------------------------------------------------------- pipeline
    def _pipeline(self, work: list[WorkItem]) -> ray.data.Dataset:
        """The dataset of answered rows: items -> read tasks -> model stage."""
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver shows its own bar
        context.print_on_execution_start = False
        batch = self._batch_size()
        dataset = ray.data.from_arrow(item_blocks(work, batch))
        keys = ray.put(CachedKeys.of(self.cache.keys()).keys)
        dataset = dataset.map_batches(read_block, fn_kwargs={"vt": self.light, "keys": keys}, batch_size=batch,
                                      batch_format="pyarrow", num_cpus=self.options.read_cpus)
        if self._backend_kind() == "vllm":
            from vistool.engines.ray_vllm import vllm_stage

            return vllm_stage(dataset, self.light, self.recipe, work, batch, self._actors(), self.options)  # type: ignore[arg-type]
        source = self.recipe if self.recipe is not None else self._shippable(self.vt.backend)
        return dataset.map_batches(
            ModelStage, fn_constructor_kwargs={"vt": self.light, "source": source}, batch_size=batch,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=self._actors()),
            num_cpus=self.options.cpus_per_actor, num_gpus=self._gpus_per_actor(),
        )

    @staticmethod
    def _shippable(backend: Any) -> Any:
        """Return a backend without a recipe, checked to travel to the actors (pickled)."""
        try:
            ray.cloudpickle.dumps(backend)
        except Exception as exc:
            raise VistoolError(
                f"the ray engine builds the model in each actor, and this backend ({type(backend).__name__}) cannot be "
                f"sent there ({type(exc).__name__}: {exc}); load it with vistool.load(..., lazy=True)"
            ) from exc
        return backend

    def _backend_kind(self) -> str:
        """"transformers", "openai" or "vllm" (from the recipe); "shipped" for a backend without one."""
        if self.recipe is None:
            return "shipped"
        name = self.recipe.backend.strip().lower()
        if name == "vllm":
            return "vllm"
        kind = self.recipe.kind
        if kind is None:
            raise VistoolError(f"unknown backend {self.recipe.backend!r}; use transformers, openai or vllm")
        return kind

    def _gpus_per_actor(self) -> float:
        """GPUs per model actor: as asked, else 1 for a local model on a cluster with GPUs, else 0."""
        if self.options.gpus_per_actor is not None:
            return float(self.options.gpus_per_actor)
        local = self._backend_kind() in ("transformers", "vllm") and (self.recipe is None or self.recipe.device != "cpu")
        return 1.0 if local and _cluster_gpus() > 0 else 0.0

    def _actors(self) -> int:
        """Model actors: as asked, else one per server (openai) or per GPU share, at least one."""
        if self.options.actors is not None:
            if self.options.actors < 1:
                raise VistoolError(f"the ray engine needs at least one actor (got {self.options.actors})")
            return self.options.actors
        if self._backend_kind() == "openai" and self.recipe is not None:
            return max(1, len(self.recipe.base_urls))
        gpus = self._gpus_per_actor()
        return max(1, int(_cluster_gpus() / gpus)) if gpus > 0 else 1

    def _batch_size(self) -> int:
        """Rows per model call: as asked, else the backend's default for the run's budget."""
        if self.batch_size is not None:
            return self.batch_size
        kind = self._backend_kind()
        if kind == "openai":
            return DEFAULT_BATCH
        if self.recipe is not None and self.recipe.batch_size:
            return self.recipe.batch_size
        if kind == "shipped":
            preferred = getattr(self.vt.backend, "batch_size_for", None)
            if preferred is None:
                return DEFAULT_BATCH
        budget = self.vt.settings.budget if self.vt.settings.budget is not None else self.vt.profile.default_budget
        device = "cuda" if self._gpus_per_actor() > 0 else "cpu"
        return max(1, min(default_batch_size(budget, device), MAX_DEFAULT_BATCH))

    # ---------------------------------------------------------------- driver
    def _write(self, block: pa.Table, rows: dict[int, dict[str, Any]]) -> None:
        """Append a finished block's new answers to the cache (fsync'd); keep its rows' facts.

        Raises ModelLoadError when the block's actor could not build its model."""
        block = block.drop_columns(["item", "pixels"])
        records = []
        for row in block.to_pylist():
            if row["status"] == "unloadable":
                raise ModelLoadError(row["reason"])  # the answers of earlier blocks are in the cache already
            if row["status"] == "answered":
                records.append(json.loads(row.pop("answer")))
            rows[row["index"]] = row
        if records:
            self.cache.append(records)  # a key stored before (a retried batch, a duplicate image) is skipped

    def _outcomes(self, work: list[WorkItem], rows: dict[int, dict[str, Any]]) -> list[Outcome]:
        """Every item's outcome, in input order, from its row and the cache.

        Answers are interpreted MAX_DEFAULT_BATCH at a time (`BatchRunner.outcomes`: one
        `parse_many` per task and class list), each batch's records read from the cache.
        """
        driver = BatchRunner(self.light, self.cache, batch_size=1, workers=0, progress=False)
        missing = [index for index in range(len(work)) if index not in rows]
        outcomes: dict[int, Outcome] = self._settle_locally(work, missing)
        answered: dict[Status, list[tuple[int, PreparedItem, str | None]]] = {"done": [], "cached": []}
        for index, item in enumerate(work):
            if index in outcomes:
                continue
            row = rows[index]
            prepared = driver.plan(index, item)
            if row["fields"] is not None:
                prepared.fields, prepared.key = json.loads(row["fields"]), row["key"]
            if row["status"] == "failed":
                outcomes[index] = driver.failed(prepared, row["stage"], row["reason"])
            elif row["status"] == "error":
                answered["done"].append((index, prepared, row["answer"]))  # the model's error text
            else:  # the record is read from the cache below, a batch at a time
                answered["done" if row["status"] == "answered" else "cached"].append((index, prepared, None))
        for status, entries in answered.items():
            for start in range(0, len(entries), MAX_DEFAULT_BATCH):
                pairs: list[tuple[PreparedItem, dict[str, Any] | str]] = []
                for index, prepared, answer in entries[start : start + MAX_DEFAULT_BATCH]:
                    record = answer if answer is not None else self.cache.get(prepared.key) if prepared.key else None
                    if record is None:
                        outcomes[index] = driver.failed(prepared, "cache", "the answer did not reach the answer cache")
                    else:
                        pairs.append((prepared, record))
                for (prepared, _), outcome in zip(pairs, driver.outcomes(pairs, status)):
                    outcomes[prepared.index] = outcome
        return [outcomes[index] for index in range(len(work))]

    def _settle_locally(self, work: list[WorkItem], missing: list[int]) -> dict[int, Outcome]:
        """Outcomes of items the model stage did not return (cached or unreadable), from the cache here."""
        if not missing:
            return {}
        local = BatchRunner(self.light, self.cache, batch_size=1, workers=4, cache_only=True, progress=False)
        report = local.run([work[index] for index in missing])
        return dict(zip(missing, report.outcomes))


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Keep Ray Data's per-run INFO lines and its note on disabled progress bars off the
    terminal while the driver shows its own bar (warnings and errors still show)."""
    levels = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: named.level for name, named in loggers.items()}
    for name, named in loggers.items():
        named.setLevel(levels[name])
    try:
        yield
    finally:
        for name, named in loggers.items():
            named.setLevel(before[name])


def _cluster_gpus() -> float:
    """GPUs in the Ray cluster this process is connected to."""
    return float(ray.cluster_resources().get("GPU", 0.0))


# The stages (vistool.engines.ray_stages) are re-exported: tests and ray_vllm import them from here.
__all__ = ["ROW_SCHEMA", "CachedKeys", "ModelName", "ModelStage", "RayRunner", "item_blocks", "ray_session", "read_block"]
