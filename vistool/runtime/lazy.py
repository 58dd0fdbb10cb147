"""A backend that loads its model on first use, with its family known from the start.

`vistool.load(..., lazy=True)` returns a `Vistool` over a `LazyBackend`: the family is
read from the checkpoint's config.json at once (cheap), the weights only when the first
request arrives, so a task the family cannot run is refused without loading anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from vistool.runtime.types import GenerationRequest, GenerationResponse


class LazyBackend:
    """Stands for the backend `factory()` builds, building it on the first `generate`.

    Takes the factory (no arguments, returns a backend), the model id and the family
    profile name (known before loading). Any other attribute is the loaded backend's
    (reading one loads it).
    """

    def __init__(self, factory: Callable[[], Any], model_id: str, profile_name: str) -> None:
        self._factory = factory
        self._backend: Any = None
        self._lock = threading.Lock()
        self.model_id = model_id
        self.profile_name = profile_name

    @property
    def loaded(self) -> bool:
        """True once the real backend has been built."""
        return self._backend is not None

    def backend(self) -> Any:
        """Return the real backend, building it on first use (once, even from several threads)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._factory()
        return self._backend

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate with the real backend (loading it first if needed)."""
        return self.backend().generate(requests)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.backend(), name)
