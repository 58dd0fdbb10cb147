"""Generation through an OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, Ollama, transformers serve).

`OpenAIBackend` turns each `GenerationRequest` into one `POST {base_url}/chat/completions`
and the answer back into a `GenerationResponse`, with N requests in flight at once. It
composes one module per step:
  - vistool.runtime.openai_engines: which engine serves (engine="auto" asks the server
    once), what each takes (the image-token budget's field), the endpoint URL;
  - vistool.runtime.openai_request: the request body for that engine (media, decoding,
    budget, thinking, `response_format`, `extra_body`) and the settings its response
    records, with vistool.runtime.openai_media for images and video frames;
  - vistool.runtime.openai_http: the POST, with a deadline, a size cap and retries;
  - vistool.runtime.openai_answer: the completion as a response (thought split, loop
    cut, log-probs mapped by vistool.runtime.openai_logprobs).

Every request gets a response: a failure (HTTP error, timeout, malformed answer,
unreachable server) is a response with `error` set and a one-line reason, never an
exception that takes the batch down.

Structured answers (vistool.runtime.openai_structured): a request with a JSON schema sends
it as `response_format` (`{"type": "json_schema", ...}`), which vLLM, SGLang and
llama.cpp's server enforce; a server that refuses the field (HTTP 400/422 naming it) gets
the request again without it, and every later request goes without it; responses
record `structured` ("response_format" or "free") and, when free, `structured_note`. A
request that thinks is sent free (the server would constrain the thought too).

The API key comes from `api_key=`, else the variable `api_key_env` names, else
`VISTOOL_API_KEY`, else `OPENAI_API_KEY`, which is sent only to the official OpenAI API
(https://api.openai.com), never to another `base_url` unless `api_key_env="OPENAI_API_KEY"`
says so (vistool.runtime.keys). A key sent over plain http to a host that is not this
machine gets a warning (it travels readable by anyone on the way). It is sent as
`Authorization: Bearer ...` and never written to settings, errors, logs or reprs.

The public names of the modules above that callers import from here (`encode_image`,
`map_logprobs`, `chat_completions_url`, ...) are re-exported.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from vistool.errors import VistoolError
from vistool.io.http import fresh_client
from vistool.profiles.base import ModelProfile
from vistool.runtime import openai_structured
from vistool.runtime.backend import validate_requests
from vistool.runtime.keys import API_KEY_VARIABLES, api_key_from_env, is_loopback, is_official_openai
from vistool.runtime.openai_answer import completion_response
from vistool.runtime.openai_engines import (
    DEFAULT_BASE_URL,
    ENGINES,
    api_root,
    chat_completions_url,
    detect_engine,
    normalise_engine,
    redact_url,
)
from vistool.runtime.openai_http import ChatPoster
from vistool.runtime.openai_logprobs import map_logprobs
from vistool.runtime.openai_media import ImageCache, ImageTransport, encode_image, format_timestamp, resize_to_max_side
from vistool.runtime.openai_request import WireBuilder
from vistool.runtime.types import GenerationRequest, GenerationResponse

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a 2,048-token answer with log-probs is ~1 MB


class _Notices:
    """One backend's warnings, each once per key, with its API key taken out of every message."""

    def __init__(self, api_key: str | None) -> None:
        self._api_key = api_key
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "_Notices()"

    def redact(self, text: str) -> str:
        """Return `text` with the API key replaced by "***"."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def warn_once(self, key: str, message: str) -> None:
        """Emit a UserWarning once per backend for `key`, attributed to the caller's caller."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(self.redact(message), UserWarning, stacklevel=3)


class OpenAIBackend:
    """Generate through an OpenAI-compatible `/chat/completions` server.

    Takes the served model name (`model`, what the server calls it: a Hub id, a path, an
    Ollama tag), the server address (`base_url`, e.g. "http://127.0.0.1:8000/v1"), the
    serving engine ("vllm", "sglang", "transformers", "llamacpp", "ollama", "generic"
    or "auto" to ask the server), the model family profile (a `ModelProfile` or its
    name; when None, read from `model`'s config.json if it is a local folder or a cached
    Hub id, else guessed from the name), the API key (default from the environment), how many requests to keep in
    flight (`max_concurrency`), the retry policy (`max_attempts` tries per request,
    backoff starting at `backoff` seconds, doubling, capped at `max_backoff`), the
    per-attempt deadline `timeout` in seconds (connection to last byte), the largest
    answer accepted (`max_response_bytes`), the image transport (`image_format` "png" or
    "jpeg", `jpeg_quality`), an optional client-side `max_image_side`, `extra_body`
    fields merged into every request body (engine-specific options), and `api_key_env`,
    the environment variable to read the key from (see the module doc for the default).
    """

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        engine: str = "auto",
        profile: ModelProfile | str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float = DEFAULT_TIMEOUT_S,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        image_format: str = "png",
        jpeg_quality: int = 95,
        max_image_side: int | None = None,
        extra_body: dict[str, Any] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        api_key_env: str | None = None,
    ) -> None:
        self.model_id = str(model)
        from vistool.profiles import resolve_profile

        profile = resolve_profile(self.model_id, profile, backend="openai")
        self.profile = profile
        self.profile_name = profile.name
        self.url = chat_completions_url(base_url)
        self.base_url = redact_url(api_root(self.url))
        self.engine_option = normalise_engine(engine)
        self._engine: str | None = None if self.engine_option == "auto" else self.engine_option
        transport = ImageTransport.checked(image_format, jpeg_quality, max_image_side)
        self.image_format = transport.image_format
        self.jpeg_quality = transport.jpeg_quality
        self.max_image_side = transport.max_image_side
        if not (timeout > 0):
            raise VistoolError(f"timeout must be a positive number of seconds (got {timeout!r})")
        if int(max_attempts) < 1:
            raise VistoolError(f"max_attempts must be at least 1 (got {max_attempts!r})")
        if int(max_response_bytes) < 1:
            raise VistoolError(f"max_response_bytes must be positive (got {max_response_bytes!r})")
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_attempts = int(max_attempts)
        self.timeout = float(timeout)
        self.max_response_bytes = int(max_response_bytes)
        self.backoff = max(0.0, float(backoff))
        self.max_backoff = max(0.0, float(max_backoff))
        self.extra_body = dict(extra_body or {})
        self._api_key = api_key if api_key is not None else api_key_from_env(self.url, api_key_env)
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
            if urlsplit(self.url).scheme == "http" and not is_loopback(self.url):
                warnings.warn(
                    f"the API key is sent over plain http to {self.base_url}, readable by anyone on the way; "
                    "use an https address (or no key)", UserWarning, stacklevel=2,
                )
        self._client = fresh_client(timeout=self.timeout, max_connections=self.max_concurrency, headers=headers)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._notices = _Notices(self._api_key)  # not the backend's own methods: no reference cycle, so __del__ runs
        self._response_format_refused: str | None = None  # why the server refused response_format, once it has
        self._builder = WireBuilder(self.model_id, profile, transport, self.base_url, self.extra_body, self._notices.warn_once)
        self._poster = ChatPoster(
            self._client,
            self.url,
            timeout=self.timeout,
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            max_response_bytes=self.max_response_bytes,
            key_sent=bool(self._api_key),
            redact=self._notices.redact,
        )

    # --------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # interpreter shutdown: nothing left to tidy
                pass

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model_id!r}, base_url={self.base_url!r}, engine={self.engine_option!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    # ------------------------------------------------------------------ engine
    @property
    def engine(self) -> str:
        """The engine in use; with engine="auto", asks the server on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine, answered = detect_engine(self._client, self.url, self.timeout)
                    if not answered:  # server not up yet: do not remember a guess
                        return engine
                    self._engine = engine
        return self._engine

    # -------------------------------------------------------------- validation
    def _validate(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Check the batch and resolve default budgets; raise RequestError/BudgetError."""
        return validate_requests(requests, self.profile)

    # -------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Send the requests, up to `max_concurrency` at once, and return one response per request.

        Takes a non-empty sequence of requests. Returns responses in the same order; a
        request that fails (HTTP error, timeout, bad answer) yields a response with
        `error` set. Raises RequestError for an empty batch and BudgetError for a budget
        the model family does not support.
        """
        original = list(requests)
        resolved = self._validate(original)
        engine = self.engine
        cache: ImageCache = {}
        workers = min(self.max_concurrency, len(resolved))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vistool-openai") as pool:
            futures = [
                pool.submit(self._run_one, request, original[index].budget, engine, cache)
                for index, request in enumerate(resolved)
            ]
            return [future.result() for future in futures]

    def _run_one(
        self, request: GenerationRequest, asked_budget: int | None, engine: str, cache: ImageCache
    ) -> GenerationResponse:
        """Build, send and parse one request; any failure becomes a failure response."""
        start = time.perf_counter()
        settings = self._builder.settings(request, engine, self._response_format_refused)
        try:
            wire = self._builder.build(request, asked_budget, engine, cache, self._response_format_refused)
            settings = wire.settings
            with self._slots:
                reply = self._poster.post(wire.body)
                if "response_format" in wire.body and openai_structured.is_refusal(reply.status, reply.detail):
                    self._response_format_refused = (
                        f"the server refused response_format (HTTP {reply.status}: {reply.detail[:120]}): generated free"
                    )
                    self._notices.warn_once("response_format", self._response_format_refused)
                    wire = self._builder.build(request, asked_budget, engine, cache, self._response_format_refused)
                    settings = wire.settings
                    reply = self._poster.post(wire.body)
            timings = {
                "preprocess_s": wire.encode_s,
                "generate_s": reply.http_s,
                "total_s": time.perf_counter() - start,
                "attempts": float(reply.attempts),
            }
            if reply.error is not None:
                response = GenerationResponse.failure(self._notices.redact(reply.error), settings)
                response.timings = timings
                return response
            return completion_response(
                request, reply.data or {}, settings, timings, wire.image_sizes, self.profile.strip_tokens, self._notices.warn_once
            )
        except Exception as exc:  # never let one request take the batch down
            message = self._notices.redact(f"{type(exc).__name__}: {exc}")
            response = GenerationResponse.failure(message, settings)
            response.timings = {"total_s": time.perf_counter() - start}
            return response


__all__ = [
    "API_KEY_VARIABLES",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "ENGINES",
    "OpenAIBackend",
    "api_key_from_env",
    "chat_completions_url",
    "encode_image",
    "format_timestamp",
    "is_loopback",
    "is_official_openai",
    "map_logprobs",
    "normalise_engine",
    "redact_url",
    "resize_to_max_side",
]
