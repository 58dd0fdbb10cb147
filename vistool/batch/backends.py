"""The backends a batch run can use besides a loaded model: none at all (re-scoring from the
cache) and one that loads the model only when an answer is missing from the cache.

`make_vistool(config)` picks between them for `vistool annotate`; the evaluators use
`CacheOnlyBackend` for --rescore too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from vistool.errors import ModelLoadError, VistoolError


class CacheOnlyBackend:
    """The backend of a --rescore run: it has the model's name (for cache keys) and no model."""

    def __init__(self, model_id: str, profile_name: str) -> None:
        self.model_id = model_id
        self.profile_name = profile_name

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        """Never called: a re-score only reads the cache."""
        raise VistoolError("--rescore never runs the model")


class LazyBackend:
    """Stands in for a backend and builds it on the first `generate` call.

    So a run whose answers are all cached never loads the model. Takes the model id and
    the family profile name (the cache keys and prompts need them, and they are what the
    real backend will report), `build()` (returns the real backend) and, for a local
    backend, `batch_size_for(budget)` (what the real backend will answer, known without
    loading it), and whether the real backend can `score` fixed answers (classification;
    the local backend can). A failure to build raises ModelLoadError (a setup error: the
    batch runner stops the run instead of failing every item).
    """

    def __init__(self, model_id: str, profile_name: str, build: Callable[[], Any],
                 batch_size_for: Callable[[int | None], int] | None = None, can_score: bool = False) -> None:
        self.model_id = model_id
        self.profile_name = profile_name
        self._build = build
        self._backend: Any = None
        if batch_size_for is not None:
            self.batch_size_for = batch_size_for
        if can_score:
            self.score = lambda requests: self._real().score(requests)

    @property
    def loaded(self) -> bool:
        """True once the real backend has been built."""
        return self._backend is not None

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        """Build the real backend if needed, then let it generate."""
        return self._real().generate(requests)

    def _real(self) -> Any:
        """Return the real backend, building it on first use (saying so on stderr)."""
        if self._backend is None:
            print(f"loading model {self.model_id} (answers are missing from the cache)", file=sys.stderr, flush=True)
            try:
                backend = self._build()
            except ModelLoadError:
                raise
            except VistoolError as exc:
                raise ModelLoadError(str(exc)) from exc
            if backend.model_id != self.model_id or backend.profile_name != self.profile_name:
                raise ModelLoadError(
                    f"the loaded backend is {backend.model_id!r} ({backend.profile_name}), expected "
                    f"{self.model_id!r} ({self.profile_name}): the cache keys would not match"
                )
            self._backend = backend
        return self._backend


def make_vistool(config: Any) -> Any:
    """Build the `Vistool` an `AnnotateConfig` asks for.

    --rescore: a stand-in that never runs a model (answers come from the cache only);
    --backend replay: answers from --replay-answers (tests); otherwise a `LazyBackend`
    that loads the model (transformers or an OpenAI-compatible server) on the first
    uncached answer. The budget and, for a local model, the device and dtype are checked
    here, before anything is loaded. Returns the `Vistool`.
    """
    from vistool.api import Vistool, load
    from vistool.profiles import profile_for_model
    from vistool.runtime import BACKENDS

    model = config.model
    profile = profile_for_model(model)
    if config.budget is not None:
        profile.check_budget(config.budget)
    if config.rescore:
        backend: Any = CacheOnlyBackend(model, profile.name)
    elif config.backend == "replay":
        from vistool.batch.replay_file import replay_backend_from_file

        if config.replay_answers is None:
            raise VistoolError("--backend replay needs --replay-answers FILE")
        backend = replay_backend_from_file(config.replay_answers, model, profile.name)
    else:
        kind = BACKENDS.get(str(config.backend).strip().lower())
        if kind is None:
            load(model, backend=config.backend)  # raises the one-line "unknown backend" error
        batch_size_for = None
        if kind == "transformers":
            from vistool.runtime import speed
            from vistool.runtime.devices import pick_device, pick_dtype

            device = pick_device(config.device)  # a device this machine lacks fails now, not after the images are read
            pick_dtype(config.dtype, device)

            def batch_size_for(budget: int | None) -> int:
                return config.batch_size or speed.default_batch_size(budget, device)

        def build() -> Any:
            return load(model, backend=config.backend, base_url=config.base_url, device=config.device,
                        dtype=config.dtype, batch_size=config.batch_size).backend

        backend = LazyBackend(str(model), profile.name, build, batch_size_for, can_score=kind == "transformers")
    return Vistool(backend, budget=config.budget, max_new_tokens=config.max_new_tokens, thinking=config.thinking,
                   max_pixels=config.max_pixels)
