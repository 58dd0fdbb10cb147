"""A backend that is built where and when it is first used.

`BackendRecipe` holds the arguments of `make_backend` (model, backend name, server
addresses, device, ...); `DeferredBackend` wraps a recipe, knows the model's name and
family without loading anything, and builds the real backend on first use. It pickles
as its recipe alone, so an engine that runs the model elsewhere (vistool.engines: one
model per Ray actor) ships the recipe and each worker builds its own backend, and a
run whose answers are all cached never loads the model.

    backend = DeferredBackend(BackendRecipe("google/gemma-4-E2B-it", device="cuda"))
    backend.model_id          # known at once; nothing loaded
    backend.generate(...)     # loads the model now, then generates
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    """A backend built from its recipe on first use (any attribute but the ones below).

    `model_id`, `profile_name` and `recipe` are known without building, and so is
    whether it can `score` fixed answers (the local transformers backend can); `loaded`
    says whether the backend has been built; every other attribute (`generate`,
    `batch_size_for`, ...) is the built backend's. Pickling keeps only the recipe.
    """

    def __init__(self, recipe: BackendRecipe) -> None:
        self.recipe = recipe
        self.model_id = recipe.model
        self.profile_name = recipe.profile_name
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the real backend has been built."""
        return self._backend is not None

    def backend(self) -> Backend:
        """Return the real backend, building it on the first call (once, thread-safe)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self.recipe.build()
        return self._backend

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Build the backend if needed, then generate one response per request."""
        return self.backend().generate(requests)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pickling and copying look these up before __init__ ran
            raise AttributeError(name)
        if name == "score" and self._backend is None:  # asked before any run: answer without loading
            if self.recipe.kind != "transformers":
                raise AttributeError(name)
            return lambda requests: self.backend().score(requests)
        return getattr(self.backend(), name)

    def __getstate__(self) -> dict[str, Any]:
        return {"recipe": self.recipe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["recipe"])

    def __repr__(self) -> str:
        return f"DeferredBackend({self.recipe!r}, loaded={self.loaded})"


__all__ = ["BackendRecipe", "DeferredBackend"]
