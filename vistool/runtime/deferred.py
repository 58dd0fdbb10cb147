"""A backend that is built where and when it is first needed.

`BackendRecipe` holds the arguments of `make_backend` (model, backend name, server
addresses, device, ...); `DeferredBackend` wraps a recipe and answers, without loading
anything, what callers ask before a run: the model's name and family (cache keys and
prompts), the batch size a local model will use, and whether it can `score` fixed
answers. It builds the real backend on the first `generate` (or any other attribute).
So a run whose answers are all cached never loads the model, and an engine that runs
the model elsewhere (vistool.engines: one model per Ray actor) ships the recipe (a
`DeferredBackend` pickles as its recipe alone) and each worker builds its own.

    backend = DeferredBackend(BackendRecipe("google/gemma-4-E2B-it", device="cuda"))
    backend.model_id          # known at once; nothing loaded
    backend.generate(...)     # loads the model now, then generates

A backend that cannot be built raises `ModelLoadError` (a setup error: the batch
runner stops the run with its one line instead of failing every item with it).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vistool.errors import ModelLoadError, VistoolError
from vistool.runtime.backend import Backend
from vistool.runtime.types import GenerationRequest, GenerationResponse


@dataclass(frozen=True)
class BackendRecipe:
    """The arguments of `vistool.runtime.make_backend`, kept to build the backend later.

    model: Hub id or folder (local backend) or served model name (servers); backend:
    "transformers" or "openai" (or a name an engine understands, e.g. "vllm" for the
    Ray engine's vLLM processor); base_urls: server addresses (several: an
    `EndpointPool`); device/dtype/batch_size: local runs; profile: the model family
    name (None: read from the checkpoint, see `vistool.profiles.resolve_profile`);
    options: further backend options.
    """

    model: str
    backend: str = "transformers"
    base_urls: tuple[str, ...] = ()
    device: str | None = None
    dtype: str | None = None
    batch_size: int | None = None
    profile: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """The vistool backend class the recipe builds ("transformers" or "openai"), or None
        for a name only an engine understands (e.g. "vllm")."""
        from vistool.runtime import BACKENDS

        return BACKENDS.get(self.backend.strip().lower())

    @property
    def profile_name(self) -> str:
        """The model family's profile name (given, else read from the checkpoint without
        loading it: `vistool.profiles.resolve_profile`)."""
        from vistool.profiles import resolve_profile

        return resolve_profile(self.model, self.profile, backend=self.backend, revision=self.options.get("revision")).name

    def build(self) -> Backend:
        """Build the backend (loads a local model; opens no connection to a server yet)."""
        from vistool.runtime import make_backend

        base_url: Sequence[str] | None = list(self.base_urls) or None
        return make_backend(self.model, backend=self.backend, base_url=base_url, device=self.device, dtype=self.dtype,
                            batch_size=self.batch_size, profile=self.profile, **dict(self.options))


class DeferredBackend:
    """A backend built from its recipe on first use.

    Known without building: `model_id` and `profile_name` (the recipe's; the family is
    resolved once, here, and the build is given it, so the built backend reports the
    same and cache keys match), `recipe`, `loaded`, and, for a local transformers
    recipe, `batch_size_for(budget)` and `score` (whether fixed answers can be scored;
    a server recipe has neither attribute). Every other attribute (`generate`, ...) is
    the built backend's, and asking for one builds it. `announce`: when set, a line
    `loading model NAME (ANNOUNCE)` goes to stderr as the model starts loading (the CLI
    says why a model loads: answers are missing from the cache). Building raises
    ModelLoadError when the backend cannot be built, with the builder's one-line
    message. Pickling keeps only the recipe.
    """

    def __init__(self, recipe: BackendRecipe, *, announce: str | None = None) -> None:
        if recipe.profile is None:  # resolve the family once (it may read the checkpoint's config.json)
            recipe = replace(recipe, profile=recipe.profile_name)
        self.recipe = recipe
        self.model_id = recipe.model
        self.profile_name: str = recipe.profile  # type: ignore[assignment]
        self.announce = announce
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the real backend has been built."""
        return self._backend is not None

    def backend(self) -> Backend:
        """Return the real backend, building it on the first call (once, thread-safe).

        Raises ModelLoadError when it cannot be built."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._build()
        return self._backend

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Build the backend if needed, then generate one response per request."""
        return self.backend().generate(requests)

    def _build(self) -> Backend:
        """Build the recipe's backend (saying so when `announce` is set); check its identity."""
        if self.announce is not None:
            print(f"loading model {self.model_id} ({self.announce})", file=sys.stderr, flush=True)
        try:
            backend = self.recipe.build()
        except ModelLoadError:
            raise
        except VistoolError as exc:  # a bad device, an unknown backend name, ...: the model cannot load
            raise ModelLoadError(str(exc)) from exc
        built = (getattr(backend, "model_id", None), getattr(backend, "profile_name", None))
        if built != (self.model_id, self.profile_name):
            raise ModelLoadError(
                f"the loaded backend is {built[0]!r} ({built[1]}), expected {self.model_id!r} ({self.profile_name}): "
                "the cache keys would not match"
            )
        return backend

    def _local_batch_size_for(self, budget: int | None) -> int:
        """What a local backend's `batch_size_for(budget)` answers, without building it:
        the recipe's batch size, else the default for the budget on its device."""
        if self._backend is not None:
            return self._backend.batch_size_for(budget)  # type: ignore[attr-defined]
        from vistool.runtime import speed
        from vistool.runtime.devices import pick_device

        return self.recipe.batch_size or speed.default_batch_size(budget, pick_device(self.recipe.device))

    def _local_requests_per_call(self, budget: int | None) -> int:
        """What a local backend's `requests_per_call(budget)` answers, without building it:
        `speed.REFILL_CALLS` batches (it refills finished rows unless compiled), else one."""
        if self._backend is not None:
            return self._backend.requests_per_call(budget)  # type: ignore[attr-defined]
        from vistool.runtime import speed

        refills = self.recipe.options.get("refill", True) and not self.recipe.options.get("compile", False)
        return self._local_batch_size_for(budget) * (speed.REFILL_CALLS if refills else 1)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pickling and copying look these up before __init__ ran
            raise AttributeError(name)
        if self._backend is None and name in ("score", "batch_size_for", "requests_per_call"):  # answered without loading
            if self.recipe.kind != "transformers":
                raise AttributeError(name)
            if name == "batch_size_for":
                return self._local_batch_size_for
            if name == "requests_per_call":
                return self._local_requests_per_call
            scorer: Callable[[Sequence[GenerationRequest]], list[GenerationResponse]] = (
                lambda requests: self.backend().score(requests)  # type: ignore[attr-defined]
            )
            return scorer
        return getattr(self.backend(), name)

    def __getstate__(self) -> dict[str, Any]:
        return {"recipe": self.recipe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["recipe"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"DeferredBackend({self.recipe!r}, loaded={self.loaded})"


__all__ = ["BackendRecipe", "DeferredBackend"]
