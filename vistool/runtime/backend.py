"""The backend interface: a batch of requests in, a batch of responses out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vistool.runtime.types import GenerationRequest, GenerationResponse


@runtime_checkable
class Backend(Protocol):
    """Anything that turns generation requests into responses.

    `generate` returns exactly one response per request, in order. A request that fails
    on its own (a model error, an HTTP error) yields a response with `error` set rather
    than an exception, so one bad item never takes a batch down. An empty batch or an
    invalid setting (e.g. an unsupported budget) raises `RequestError`/`BudgetError`.
    """

    model_id: str
    profile_name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate one response per request."""
        ...
