"""Engines: what runs a batch of work items through a model.

  local  one process (`vistool.batch.BatchRunner`): threads read images ahead of the model
  ray    Ray Data over a local Ray instance or an existing cluster
         (`vistool.engines.ray_engine.RayRunner`): image reading and decoding in parallel
         tasks, the model in actors (one model each; or a fleet of OpenAI-compatible
         servers; or ray.data.llm's vLLM processor), one writer of the answer cache

Both take the same work items and give the same `RunReport`, the same answer cache and
the same exports: `make_runner(engine, vt, cache, ...)` returns either one, and callers
(`vistool annotate`, `vistool eval`) use its `run(items)`. Re-scoring (`cache_only`)
reads the cache in one process whatever the engine: it needs no model.

    runner = make_runner("ray", vistool.load(model, lazy=True), AnswerCache("out/answers.jsonl"),
                         ray=RayOptions(actors=2))
    report = runner.run(items)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vistool.errors import VistoolError

if TYPE_CHECKING:
    from vistool.api import Vistool
    from vistool.batch.cache import AnswerCache
    from vistool.batch.runner import RunReport, WorkItem

ENGINES: dict[str, str] = {
    "local": "one process (vistool.batch.BatchRunner)",
    "ray": "Ray Data on a local Ray instance or an existing cluster (vistool.engines.ray_engine)",
}
# Backends that only an engine can run (they are not vistool backends of their own).
ENGINE_BACKENDS: dict[str, str] = {"vllm": "ray"}
RAY_INSTALL_HINT = "pip install 'vistool[ray]'"


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs.

    address: an existing cluster ("auto", "ray://head:10001"); None starts a local Ray
    instance for the run and shuts it down after. actors: model replicas (None: one per
    GPU for a local model, one on a machine without GPUs, one per server for
    --backend openai). gpus_per_actor: GPUs each model actor takes (None: 1 when the
    cluster has GPUs and the model runs locally, else 0; 0.5 puts two actors on a GPU).
    cpus_per_actor: CPUs each model actor takes. read_cpus: CPUs each image-reading
    task takes. num_cpus, num_gpus, object_store_memory (bytes): limits of a local
    instance (ignored with `address`).
    """

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    read_cpus: float = 0.5
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None


class Runner(Protocol):
    """What an engine gives: `run(items)` -> a `RunReport` (one outcome per item, in order)."""

    def run(self, items: Iterable["WorkItem"]) -> "RunReport":
        """Run every item; return the report."""
        ...


def check_engine(engine: str, backend: str | None = None) -> str:
    """Return the engine's canonical name ("local" or "ray").

    Takes the engine name and, optionally, the backend name it is to run. Raises
    VistoolError for an unknown engine, or a backend that needs another engine
    ("vllm": ray.data.llm's processor, only with --engine ray).
    """
    name = str(engine).strip().lower()
    if name not in ENGINES:
        raise VistoolError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    needed = ENGINE_BACKENDS.get(str(backend or "").strip().lower())
    if needed is not None and needed != name:
        raise VistoolError(f"--backend {backend} runs only with --engine {needed}")
    return name


def make_runner(
    engine: str,
    vt: "Vistool",
    cache: "AnswerCache | None",
    *,
    batch_size: int | None = None,
    workers: int = 4,
    cache_only: bool = False,
    progress: bool = True,
    description: str = "vistool",
    ray: RayOptions | None = None,
) -> Runner:
    """Return the runner of `engine` for a run.

    Takes the engine name, the `Vistool` (for the ray engine, best built with
    `vistool.load(..., lazy=True)`, so that each actor loads its own model and the
    driver none), the answer cache and the runner options of `BatchRunner` (batch size,
    image-reading threads, cache-only, progress bar), plus the Ray options. Raises
    VistoolError for an unknown engine, or when Ray is not installed.
    """
    from vistool.batch.runner import BatchRunner

    name = check_engine(engine, getattr(getattr(vt.backend, "recipe", None), "backend", None))
    if name == "local" or cache_only:
        return BatchRunner(vt, cache, batch_size=batch_size, workers=workers, cache_only=cache_only,
                           progress=progress, description=description)
    try:
        from vistool.engines.ray_engine import RayRunner
    except ImportError as exc:
        raise VistoolError(f"--engine ray needs Ray Data ({exc.name or exc} is not installed): {RAY_INSTALL_HINT}") from exc
    if cache is None:
        raise VistoolError("the ray engine needs an answer cache (it is how answers come back from the workers)")
    return RayRunner(vt, cache, batch_size=batch_size, progress=progress, description=description, options=ray or RayOptions())


__all__ = ["ENGINES", "ENGINE_BACKENDS", "RAY_INSTALL_HINT", "RayOptions", "Runner", "check_engine", "make_runner"]
