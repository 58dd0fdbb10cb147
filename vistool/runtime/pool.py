"""One backend over several OpenAI-compatible servers: a fleet of vLLM / SGLang replicas.

`EndpointPool` holds one `OpenAIBackend` per server and spreads each batch over them
in turn (request i of the run goes to server i mod N), all servers working at once.
Each server keeps its own concurrency limit, retries and backoff; a request that
fails on its server is a failure response like any other (it is not re-sent to another
server: a re-run asks again for exactly the failed items).

    pool = EndpointPool("google/gemma-4-E2B-it", ["http://gpu1:8000/v1", "http://gpu2:8000/v1"], engine="vllm")
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vistool.errors import VistoolError
from vistool.runtime.backend import validate_requests
from vistool.runtime.openai_backend import OpenAIBackend
from vistool.runtime.types import GenerationRequest, GenerationResponse


def split_base_urls(base_url: str | Sequence[str] | None) -> list[str]:
    """Return the server addresses in `base_url`: one URL, a comma-separated list, or a list.

    Blank entries are dropped; None gives an empty list.
    """
    if base_url is None:
        return []
    parts = base_url.split(",") if isinstance(base_url, str) else [str(url) for url in base_url]
    return [part.strip() for part in parts if part.strip()]


class EndpointPool:
    """Generate through several OpenAI-compatible servers that serve the same model.

    Takes the served model name, the server addresses (at least one) and the options of
    `OpenAIBackend` (engine, profile, api_key, max_concurrency per server, retries, ...).
    The first request of each instance goes to a random server, so that many pools (one
    per Ray actor, say) do not all start on the first one.
    """

    def __init__(self, model: str, base_urls: Sequence[str], **options: Any) -> None:
        urls = split_base_urls(base_urls)
        if not urls:
            raise VistoolError("an endpoint pool needs at least one server address")
        self.backends = [OpenAIBackend(model, url, **options) for url in urls]
        first = self.backends[0]
        self.model_id = first.model_id
        self.profile = first.profile
        self.profile_name = first.profile_name
        self._next = random.randrange(len(self.backends))
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EndpointPool(model={self.model_id!r}, servers={[backend.base_url for backend in self.backends]!r})"

    def close(self) -> None:
        """Close every server's HTTP connections."""
        for backend in self.backends:
            backend.close()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Send the requests over the servers in turn, all servers at once; return one
        response per request, in order (a failed request gives a failure response).
        Raises RequestError / BudgetError for an empty batch or an unsupported budget."""
        validate_requests(requests, self.profile)
        with self._lock:
            start = self._next
            self._next = (start + len(requests)) % len(self.backends)
        shares: dict[int, list[int]] = {}
        for position in range(len(requests)):
            shares.setdefault((start + position) % len(self.backends), []).append(position)
        responses: list[GenerationResponse | None] = [None] * len(requests)

        def send(server: int, positions: list[int]) -> None:
            answers = self.backends[server].generate([requests[position] for position in positions])
            for position, answer in zip(positions, answers):
                responses[position] = answer

        with ThreadPoolExecutor(max_workers=len(shares), thread_name_prefix="vistool-pool") as threads:
            for future in [threads.submit(send, server, positions) for server, positions in shares.items()]:
                future.result()
        return [response for response in responses if response is not None]


__all__ = ["EndpointPool", "split_base_urls"]
