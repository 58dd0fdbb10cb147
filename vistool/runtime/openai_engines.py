"""Which serving engine is behind an OpenAI-compatible address, and what each one takes.

The image-token budget is not part of the OpenAI API; each engine has its own knob,
picked by `engine`:
  - "vllm", "sglang": `mm_processor_kwargs: {"max_soft_tokens": N}` in the body;
  - "transformers" (`transformers serve`): `chat_template_kwargs: {"processor_kwargs":
    {"max_soft_tokens": N}}` (its handler passes chat_template_kwargs to
    `processor.apply_chat_template`, which hands `processor_kwargs` to the processor);
  - "llamacpp", "ollama", "generic": fixed when the server starts (llama-server's
    `--image-max-tokens`); settings record `"budget": "server"` and a request that asks
    for a budget gets a warning (once per backend);
  - "auto" (default): asks `GET {base_url}/models` once and reads `owned_by` ("vllm",
    "sglang", "llamacpp", "library"/"ollama") or the transformers-serve `status` field;
    anything else is "generic" (standard fields only).

Also here: the engine names and their aliases, and the server address as the
chat-completions endpoint (and without any user:password, for messages).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from vistool.errors import VistoolError
from vistool.io.http import ResponseTooLarge, exchange

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
ENGINES = ("auto", "generic", "vllm", "sglang", "transformers", "llamacpp", "ollama")
ENGINE_ALIASES = {
    "llama.cpp": "llamacpp",
    "llama-server": "llamacpp",
    "llama_cpp": "llamacpp",
    "transformers-serve": "transformers",
    "hf": "transformers",
    "openai": "generic",
}
# Engines that take the budget per request, and the ones that accept `top_k` in the body.
BUDGET_IN_BODY = frozenset({"vllm", "sglang", "transformers"})
TAKES_TOP_K = frozenset({"vllm", "sglang", "llamacpp"})
SERVER_BUDGET_WARNINGS = {
    "llamacpp": "llama-server fixes the image-token budget at launch (--image-max-tokens); "
    "the requested budget {budget} is not applied",
    "ollama": "Ollama has no per-request image-token budget; the requested budget {budget} is not applied",
    "generic": "the serving engine is unknown (engine='generic'), so the image-token budget {budget} is not sent; "
    "pass engine='vllm', 'sglang' or 'transformers' if the server is one of those",
}
_ENDPOINT = "/chat/completions"


def normalise_engine(engine: str) -> str:
    """Return the canonical engine name ("llama.cpp" -> "llamacpp"); raise VistoolError if unknown."""
    name = ENGINE_ALIASES.get(str(engine).strip().lower(), str(engine).strip().lower())
    if name not in ENGINES:
        raise VistoolError(f"unknown serving engine {engine!r}; use one of {', '.join(ENGINES)}")
    return name


def chat_completions_url(base_url: str) -> str:
    """Return the chat-completions endpoint for a server address.

    Takes "http://host:8000/v1" (the usual form), "http://host:8000" (then "/v1" is
    added), a path ending in a version ("/openai/v1") or the full endpoint URL. Returns
    the URL to POST to. Raises VistoolError when it is not an http(s) URL.
    """
    url = str(base_url).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise VistoolError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL} (got {redact_url(url)!r})")
    path = parts.path
    if path.endswith(_ENDPOINT):
        return url
    if not path:
        return url + "/v1" + _ENDPOINT
    return url + _ENDPOINT


def api_root(endpoint: str) -> str:
    """Return the API's base address ("http://host:8000/v1") of a chat-completions endpoint URL."""
    return endpoint[: -len(_ENDPOINT)]


def redact_url(url: str) -> str:
    """Return `url` without any user:password part (safe for messages and settings)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def detect_engine(client: httpx.Client, endpoint: str, timeout: float) -> tuple[str, bool]:
    """Ask the server's `GET /models` which engine serves it.

    Takes the HTTP client, the chat-completions endpoint URL and the caller's timeout
    (the question waits at most 10 s of it). Returns (engine, whether the server
    answered); "generic" when the answer names no engine vistool knows.
    """
    url = api_root(endpoint) + "/models"
    try:
        response = exchange(client, "GET", url, seconds=min(timeout, 10.0), max_bytes=1 << 20)
    except (httpx.HTTPError, ResponseTooLarge):
        return "generic", False
    try:
        entries = response.json().get("data") or []
    except (ValueError, AttributeError):
        return "generic", True
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        owner = str(entry.get("owned_by", "")).lower()
        if owner in ("vllm", "sglang", "llamacpp", "ollama"):
            return owner, True
        if owner == "library":
            return "ollama", True
        if isinstance(entry.get("status"), dict):
            return "transformers", True
    return "generic", True


__all__ = [
    "BUDGET_IN_BODY",
    "DEFAULT_BASE_URL",
    "ENGINES",
    "ENGINE_ALIASES",
    "SERVER_BUDGET_WARNINGS",
    "TAKES_TOP_K",
    "api_root",
    "chat_completions_url",
    "detect_engine",
    "normalise_engine",
    "redact_url",
]
