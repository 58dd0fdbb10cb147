"""Backends: a batch of generation requests in, one response per request out.

`make_backend(model, backend=...)` builds the local transformers backend or the
OpenAI-compatible HTTP backend (vLLM, SGLang, llama.cpp, Ollama, transformers serve)
from one set of options, so callers (the CLI, `vistool.load`) need not know either class.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from vistool.errors import VistoolError
from vistool.profiles.base import ModelProfile
from vistool.runtime.backend import Backend
from vistool.runtime.types import Decoding, GenerationRequest, GenerationResponse, TokenLogprob

# Accepted backend names and what they mean.
BACKENDS: dict[str, str] = {
    "transformers": "transformers",
    "local": "transformers",
    "openai": "openai",
    "http": "openai",
    "openai-compatible": "openai",
}


def backend_kind(backend: str) -> str:
    """Return the backend class a name selects ("transformers" or "openai"; see BACKENDS).

    Raises VistoolError for an unknown name, saying which names to use."""
    kind = BACKENDS.get(str(backend).strip().lower())
    if kind is None:
        raise VistoolError(
            f"unknown backend {backend!r}; use 'transformers' (run the model locally) or 'openai' "
            "(an OpenAI-compatible server: vLLM, SGLang, llama.cpp, Ollama, transformers serve)"
        )
    return kind


def make_backend(
    model: str,
    backend: str = "transformers",
    *,
    base_url: str | Sequence[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    max_concurrency: int = 8,
    engine: str = "auto",
    profile: ModelProfile | str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    api_key_env: str | None = None,
    **kwargs: Any,
) -> Backend:
    """Build a backend by name.

    Takes the model (a Hub id or folder for "transformers"; the served model name for
    "openai"), the backend name ("transformers"/"local" or "openai"/"http"), the server
    address for "openai" (default http://127.0.0.1:8000/v1), device/dtype/batch_size
    for local runs (batch_size None: a default per budget and device), max_concurrency
    and engine ("auto", "vllm", "sglang", "transformers",
    "llamacpp", "ollama", "generic") for HTTP, the model family profile (a
    `ModelProfile` or its name; when None, the local backend reads it from the loaded
    model's config and the HTTP backend from `resolve_profile`), for HTTP the seconds
    one attempt may take in all (`timeout`, default 120), the retries after a failed
    attempt (`retries`, default 3) and the environment variable holding the API key
    (`api_key_env`; these three are ignored, with a warning, by the local backend), and
    further options of the chosen class (`TransformersBackend`: trust_remote_code,
    revision, refill, prefetch, bucket, compile; `OpenAIBackend`: api_key, max_response_bytes, image_format,
    max_image_side, ...). Returns the backend. Raises VistoolError for an unknown
    backend name or a bad timeout / retries.
    """
    kind = backend_kind(backend)
    if profile is not None:
        from vistool.profiles import get_profile

        profile = get_profile(profile)
    if kind == "transformers":
        from vistool.runtime.transformers_backend import TransformersBackend

        if base_url is not None:
            warnings.warn("base_url is ignored by the local transformers backend", UserWarning, stacklevel=2)
        unused = [name for name, value in (("timeout", timeout), ("retries", retries), ("api_key_env", api_key_env)) if value is not None]
        if unused:
            warnings.warn(f"{', '.join(unused)} only apply to the openai backend; ignored", UserWarning, stacklevel=2)
        return TransformersBackend(model, device=device, dtype=dtype, profile=profile, batch_size=batch_size, **kwargs)

    from vistool.runtime.openai_backend import DEFAULT_BASE_URL, OpenAIBackend

    ignored = [name for name, value in (("device", device), ("dtype", dtype)) if value is not None]
    if ignored:
        warnings.warn(
            f"{' and '.join(ignored)} ignored by the openai backend: the server decides where the model runs",
            UserWarning,
            stacklevel=2,
        )
    if timeout is not None:
        kwargs["timeout"] = timeout
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise VistoolError(f"retries must be a whole number >= 0 (got {retries!r})")
        kwargs["max_attempts"] = retries + 1
    if api_key_env is not None:
        kwargs["api_key_env"] = api_key_env
    from vistool.runtime.pool import EndpointPool, split_base_urls

    urls = split_base_urls(base_url) or [DEFAULT_BASE_URL]
    if len(urls) > 1:
        return EndpointPool(model, urls, engine=engine, profile=profile, max_concurrency=max_concurrency, **kwargs)
    return OpenAIBackend(
        model,
        urls[0],
        engine=engine,
        profile=profile,
        max_concurrency=max_concurrency,
        **kwargs,
    )


__all__ = [
    "BACKENDS",
    "Backend",
    "Decoding",
    "GenerationRequest",
    "GenerationResponse",
    "TokenLogprob",
    "backend_kind",
    "make_backend",
]
