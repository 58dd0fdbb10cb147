"""Generation through an OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, Ollama, transformers serve).

`OpenAIBackend` turns each `GenerationRequest` into one `POST {base_url}/chat/completions`
and the answer back into a `GenerationResponse`, with N requests in flight at once.

What goes over the wire:
  - images as base64 data URLs in `image_url` parts, PNG by default (lossless: the model
    sees exactly the pixels it would see locally); JPEG only when asked
    (`image_format="jpeg"`), which is smaller but lossy;
  - a video as its sampled frames, each an `image_url` part preceded by a text part with
    its `mm:ss` timestamp (the way Gemma 4's own processor lays frames out), all before
    the prompt. `video_url` is not used: the frames vistool sampled (and their
    timestamps) are exactly what the model gets, whatever the server's video support;
  - the system turn as a plain string, the user turn as media parts then the prompt;
  - `max_tokens`, `temperature` (0 is greedy), `top_p`, `seed`, and `top_k` as an extra
    body field where the engine accepts it; `logprobs`/`top_logprobs` when the request
    asks for log-probs; `chat_template_kwargs: {"enable_thinking": ...}` for thinking.

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

Structured answers (vistool.runtime.openai_structured): a request with a JSON schema sends
it as `response_format` (`{"type": "json_schema", ...}`), which vLLM, SGLang and
llama.cpp's server enforce; a server that refuses the field (HTTP 400/422 naming it) gets
the request again without it, and every later request goes without it; responses
record `structured` ("response_format" or "free") and, when free, `structured_note`. A
request that thinks is sent free (the server would constrain the thought too). A
request with `stop_on_repeat` whose answer ends in a loop (one item over and over) has
the repeated tail cut off (`raw_text` keeps all of it; settings say how many characters).

Images are resized on the client only when the user asks (`max_image_side`, default
None). The server's processor must see the original image, aspect ratio included, for
coordinates to stay right: Gemma 4's 0..1000 normalised coordinates survive an
aspect-preserving resize, but a server that letterboxes, or a family that answers in
pixels of the processor-resized image (Qwen2.5-VL), would not. Resizing saves bandwidth
only; the server resizes to its budget anyway.

Failures: every request gets a response. 429, 5xx, dropped connections and timeouts are
retried with exponential backoff and jitter (`Retry-After` is honoured, capped at
`max_backoff`), up to `max_attempts` tries; other HTTP errors, malformed answers and an
unreachable server give a failure response (`error` set) with a one-line reason. A
connection refused before the server has ever answered is not retried: it fails at
once with "cannot reach the server at URL: connection refused; is it running?".

Time and size are bounded per attempt (`vistool.io.http.exchange`): `timeout` seconds in
all, from connecting to the last byte of the answer (a server that trickles a byte every
few seconds is cut at the deadline, not only one that goes silent), and an answer of at
most `max_response_bytes` (larger: a failure, not retried). So one request takes at most
`max_attempts` x `timeout` plus the backoffs. Each attempt opens its own connection (so
that its deadline can cut it alone); on a LAN that costs well under a millisecond.

The API key comes from `api_key=`, else the variable `api_key_env` names, else
`VISTOOL_API_KEY`, else `OPENAI_API_KEY`, which is sent only to the official OpenAI API
(https://api.openai.com), never to another `base_url` unless `api_key_env="OPENAI_API_KEY"`
says so. A key sent over plain http to a host that is not this machine gets a warning
(it travels readable by anyone on the way). It is sent as `Authorization: Bearer ...`
and never written to settings, errors, logs or reprs.

The size the server's processor resizes each image to is computed on the client with
the family's own rule (`vistool.profiles.resize`) and the settings sent: Gemma 4's
max_soft_tokens, Qwen's min_pixels / max_pixels (smart_resize), so Qwen2.5-VL's answers in
resized pixels map back exactly. It fills `image_sizes`, and settings record the rule
under "resize" (`"assumed": True` when the engine fixes the budget at launch and
Qwen2.5-VL's checkpoint default is assumed). Fixed-size families (PaliGemma 2,
Florence-2) answer in normalised bins; their size depends on the served checkpoint and
is not reported. Unknown over HTTP: the number of image tokens (`image_tokens` is 0 and
settings say `"image_tokens_reported": False`).
"""

from __future__ import annotations

import base64
import codecs
import email.utils
import io
import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from PIL import Image

from vistool.errors import VistoolError
from vistool.io.http import ResponseTooLarge, exchange, fresh_client
from vistool.profiles.base import ModelProfile
from vistool.profiles.resize import SmartResize
from vistool.runtime import openai_structured
from vistool.runtime.backend import validate_requests
from vistool.runtime.keys import API_KEY_VARIABLES, api_key_from_env, is_loopback, is_official_openai  # noqa: F401
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, split_thought
from vistool.runtime.types import GenerationRequest, GenerationResponse, TokenLogprob

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
ENGINES = ("auto", "generic", "vllm", "sglang", "transformers", "llamacpp", "ollama")
_ENGINE_ALIASES = {
    "llama.cpp": "llamacpp",
    "llama-server": "llamacpp",
    "llama_cpp": "llamacpp",
    "transformers-serve": "transformers",
    "hf": "transformers",
    "openai": "generic",
}
# Engines that take the budget per request, and the ones that accept `top_k` in the body.
_BUDGET_IN_BODY = {"vllm", "sglang", "transformers"}
_TAKES_TOP_K = {"vllm", "sglang", "llamacpp"}
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a 2,048-token answer with log-probs is ~1 MB
_SERVER_BUDGET_WARNINGS = {
    "llamacpp": "llama-server fixes the image-token budget at launch (--image-max-tokens); "
    "the requested budget {budget} is not applied",
    "ollama": "Ollama has no per-request image-token budget; the requested budget {budget} is not applied",
    "generic": "the serving engine is unknown (engine='generic'), so the image-token budget {budget} is not sent; "
    "pass engine='vllm', 'sglang' or 'transformers' if the server is one of those",
}


# --------------------------------------------------------------------------- helpers
def normalise_engine(engine: str) -> str:
    """Return the canonical engine name ("llama.cpp" -> "llamacpp"); raise VistoolError if unknown."""
    name = _ENGINE_ALIASES.get(str(engine).strip().lower(), str(engine).strip().lower())
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
    if path.endswith("/chat/completions"):
        return url
    if not path:
        return url + "/v1/chat/completions"
    return url + "/chat/completions"


def redact_url(url: str) -> str:
    """Return `url` without any user:password part (safe for messages and settings)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def format_timestamp(seconds: float) -> str:
    """Return `seconds` as "mm:ss" (minutes may exceed 59), as Gemma 4 labels video frames."""
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def resize_to_max_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """Return `image` scaled down (aspect ratio kept) so its longer side is <= `max_side`.

    None, or an image already small enough, is returned unchanged.
    """
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, image_format: str = "png", jpeg_quality: int = 95) -> str:
    """Encode a PIL image as a base64 data URL.

    Takes the image, "png" (lossless, the default) or "jpeg", and the JPEG quality.
    Returns "data:image/png;base64,..." (or image/jpeg).
    """
    buffer = io.BytesIO()
    if image_format == "jpeg":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # lossless either way; level 1 is fast
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _token_spans(entries: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """Rebuild the generated text from log-prob entries and return (text, start of each token).

    Uses each entry's UTF-8 `bytes` when every entry has them (exact even when a
    character is split over tokens), else concatenates the `token` strings.
    """
    starts: list[int] = []
    if entries and all(isinstance(entry.get("bytes"), list) for entry in entries):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        length = 0
        for entry in entries:
            starts.append(length)
            piece = decoder.decode(bytes(entry["bytes"]))
            pieces.append(piece)
            length += len(piece)
        pieces.append(decoder.decode(b"", final=True))
        return "".join(pieces), starts
    length = 0
    for entry in entries:
        starts.append(length)
        length += len(str(entry.get("token", "")))
    return "".join(str(entry.get("token", "")) for entry in entries), starts


def map_logprobs(entries: list[dict[str, Any]], answer: str) -> list[TokenLogprob]:
    """Turn `choices[0].logprobs.content` entries into `TokenLogprob`s with offsets into `answer`.

    Takes the entries (each with `token`, `logprob`, optionally `bytes`) and the answer
    text (thought removed, stripped). The generated text is rebuilt from the tokens; the
    answer is located after the last thought-channel close marker (or, without markers,
    as the last occurrence, since the answer follows the thought). A token overlapping
    the answer gets the offset of its first character in it (clamped to 0 for a token
    that starts with whitespace before the answer); tokens of the thought, the markers
    and trailing special tokens get -1. When the answer cannot be located in the rebuilt
    text, tokens are matched one by one from left to right (approximate). Returns one
    `TokenLogprob` per entry.
    """
    joined, starts = _token_spans(entries)
    ends = starts[1:] + [len(joined)]
    close = joined.rfind(CHANNEL_CLOSE)
    search_from = close + len(CHANNEL_CLOSE) if close >= 0 else 0
    if CHANNEL_OPEN in joined[search_from:]:  # a channel left open: no answer tokens
        at = -1 if answer else 0
    else:
        at = joined.rfind(answer, search_from) if answer else 0
    offsets: list[int] = []
    if not answer:
        offsets = [-1] * len(entries)
    elif at >= 0:
        for start, end in zip(starts, ends):
            inside = end > at and start < at + len(answer)
            offsets.append(min(max(start - at, 0), len(answer) - 1) if inside else -1)
    else:
        cursor = 0
        for entry in entries:
            token = str(entry.get("token", ""))
            found = answer.find(token, cursor) if token.strip() else -1
            offsets.append(found)
            if found >= 0:
                cursor = found + len(token)
    return [
        TokenLogprob(token=str(entry.get("token", "")), logprob=float(entry.get("logprob", 0.0)), offset=offset)
        for entry, offset in zip(entries, offsets)
    ]


def _retry_after(response: httpx.Response) -> float | None:
    """Return the wait a `Retry-After` header asks for, in seconds (None when absent/unreadable)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(response: httpx.Response) -> str:
    """Return the server's own explanation of an HTTP error, on one short line."""
    detail: Any = None
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            detail = error.get("message") or error
        else:
            detail = error or data.get("detail") or data.get("message")
    if detail is None:
        detail = response.text or response.reason_phrase
    text = " ".join(str(detail).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _is_refused(exc: BaseException) -> bool:
    """True when a connection error is a refused connection (nobody listening)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "refused" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


# id(image) -> (data URL, size sent), shared by the requests of one `generate` call.
_ImageCache = dict[int, tuple[str, tuple[int, int]]]


@dataclass
class _Reply:
    """The outcome of posting one request body: parsed JSON, or the reason it failed."""

    data: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    http_s: float = 0.0
    status: int | None = None
    detail: str = ""


@dataclass
class _Wire:
    """One request as it goes over the wire, with what its response records."""

    body: dict[str, Any]
    settings: dict[str, Any]
    encode_s: float = 0.0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- backend
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
        self.base_url = redact_url(self.url[: -len("/chat/completions")])
        self.engine_option = normalise_engine(engine)
        self._engine: str | None = None if self.engine_option == "auto" else self.engine_option
        image_format = image_format.lower().replace("jpg", "jpeg")
        if image_format not in ("png", "jpeg"):
            raise VistoolError(f"image_format must be 'png' or 'jpeg' (got {image_format!r})")
        if max_image_side is not None and max_image_side < 1:
            raise VistoolError(f"max_image_side must be a positive number of pixels or None (got {max_image_side})")
        self.image_format = image_format
        self.jpeg_quality = int(jpeg_quality)
        self.max_image_side = max_image_side
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
        self._server_answered = False
        self._warned: set[str] = set()
        self._random = random.Random()
        self._response_format_refused: str | None = None  # why the server refused response_format, once it has

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
                    engine, answered = self._detect_engine()
                    if not answered:  # server not up yet: do not remember a guess
                        return engine
                    self._engine = engine
        return self._engine

    def _detect_engine(self) -> tuple[str, bool]:
        """Ask `GET /models` which engine serves; return (engine, whether the server answered)."""
        url = self.url[: -len("/chat/completions")] + "/models"
        try:
            response = exchange(self._client, "GET", url, seconds=min(self.timeout, 10.0), max_bytes=1 << 20)
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

    def _warn_once(self, key: str, message: str) -> None:
        """Emit a UserWarning once per backend for `key`."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(self._redact(message), UserWarning, stacklevel=3)

    def _redact(self, text: str) -> str:
        """Return `text` with the API key replaced by "***"."""
        return text.replace(self._api_key, "***") if self._api_key else text

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
        cache: _ImageCache = {}
        workers = min(self.max_concurrency, len(resolved))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vistool-openai") as pool:
            futures = [
                pool.submit(self._run_one, request, original[index].budget, engine, cache)
                for index, request in enumerate(resolved)
            ]
            return [future.result() for future in futures]

    def _run_one(
        self, request: GenerationRequest, asked_budget: int | None, engine: str, cache: _ImageCache
    ) -> GenerationResponse:
        """Build, send and parse one request; any failure becomes a failure response."""
        start = time.perf_counter()
        settings = self._settings(request, engine)
        try:
            wire = self._wire(request, asked_budget, engine, cache)
            settings = wire.settings
            with self._slots:
                reply = self._post(wire.body)
                if "response_format" in wire.body and openai_structured.is_refusal(reply.status, reply.detail):
                    self._response_format_refused = (
                        f"the server refused response_format (HTTP {reply.status}: {reply.detail[:120]}): generated free"
                    )
                    self._warn_once("response_format", self._response_format_refused)
                    wire = self._wire(request, asked_budget, engine, cache)
                    settings = wire.settings
                    reply = self._post(wire.body)
            timings = {
                "preprocess_s": wire.encode_s,
                "generate_s": reply.http_s,
                "total_s": time.perf_counter() - start,
                "attempts": float(reply.attempts),
            }
            if reply.error is not None:
                response = GenerationResponse.failure(self._redact(reply.error), settings)
                response.timings = timings
                return response
            return self._response(request, reply.data or {}, settings, timings, wire.image_sizes)
        except Exception as exc:  # never let one request take the batch down
            message = self._redact(f"{type(exc).__name__}: {exc}")
            response = GenerationResponse.failure(message, settings)
            response.timings = {"total_s": time.perf_counter() - start}
            return response

    def _settings(self, request: GenerationRequest, engine: str) -> dict[str, Any]:
        """Return the settings a response records: request settings plus server facts (never the key)."""
        settings = {
            **request.settings(),
            "model": self.model_id,
            "profile": self.profile_name,
            "backend": "openai",
            "engine": engine,
            "base_url": self.base_url,
            "image_format": self.image_format,
            "max_image_side": self.max_image_side,
            "image_tokens_reported": False,
        }
        if engine not in _BUDGET_IN_BODY:
            settings["budget"] = "server"
        settings.update(openai_structured.plan(request, self._response_format_refused)[1])
        return settings

    def _wire(
        self, request: GenerationRequest, asked_budget: int | None, engine: str, cache: _ImageCache
    ) -> _Wire:
        """Build the request body for `engine` and the settings its response records."""
        settings = self._settings(request, engine)
        start = time.perf_counter()
        content: list[dict[str, Any]] = []
        sent_sizes: list[tuple[int, int]] = []
        for image in request.images:
            content.append(self._image_part(image, cache, sent_sizes))
        if request.video is not None:
            for frame, timestamp in zip(request.video.frames, request.video.timestamps):
                content.append({"type": "text", "text": format_timestamp(timestamp)})
                content.append(self._image_part(frame, cache, sent_sizes))
        encode_s = time.perf_counter() - start
        content.append({"type": "text", "text": request.prompt})
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": content})
        if any(size != image.size for size, image in zip(sent_sizes, self._media(request))):
            settings["client_resized_to"] = [list(size) for size in sent_sizes]

        decoding = request.decoding
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": request.max_new_tokens,
            "temperature": max(0.0, decoding.temperature),
            "stream": False,
        }
        not_sent: list[str] = []
        if not decoding.greedy and decoding.top_p is not None:
            body["top_p"] = decoding.top_p
        if not decoding.greedy and decoding.top_k is not None:
            if engine in _TAKES_TOP_K:
                body["top_k"] = decoding.top_k
            else:
                not_sent.append("top_k")
        if decoding.seed is not None:
            body["seed"] = decoding.seed
        if request.return_logprobs:
            if engine == "transformers":
                not_sent.append("logprobs")  # transformers serve ignores them
            else:
                body["logprobs"] = True
                body["top_logprobs"] = 1

        template_kwargs: dict[str, Any] = {}
        if engine != "generic" or request.thinking:
            template_kwargs["enable_thinking"] = bool(request.thinking)
        if request.thinking and engine in ("vllm", "sglang"):
            body["skip_special_tokens"] = False  # keep <|channel> markers visible without a reasoning parser

        media = bool(request.images) or request.video is not None
        budget = self.profile.video_budget if request.video is not None else request.budget
        if request.video is not None:
            settings["video_frame_budget"] = budget
        if media and budget is not None and engine in ("vllm", "sglang"):
            budget_kwargs = self.profile.server_kwargs(budget)  # Qwen: min_pixels / max_pixels, as vLLM documents
        elif media and budget is not None:
            budget_kwargs = self.profile.processor_kwargs(budget)  # transformers' own keywords (transformers serve)
        else:
            budget_kwargs = {}
        if engine in ("vllm", "sglang") and budget_kwargs:
            body["mm_processor_kwargs"] = budget_kwargs
        elif engine == "transformers" and budget_kwargs:
            template_kwargs["processor_kwargs"] = budget_kwargs
        elif engine not in _BUDGET_IN_BODY and asked_budget is not None:
            self._warn_once("budget", _SERVER_BUDGET_WARNINGS[engine].format(budget=asked_budget))
        if template_kwargs:
            body["chat_template_kwargs"] = template_kwargs
        if request.json_schema is not None and openai_structured.plan(request, self._response_format_refused)[0]:
            body["response_format"] = openai_structured.response_format(request.json_schema)
        if not_sent:
            settings["not_sent"] = not_sent
            self._warn_once(
                "not_sent:" + ",".join(not_sent),
                f"the {engine} engine does not take {' / '.join(not_sent)}; not sent",
            )
        for key, value in self.extra_body.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        image_sizes = self._server_sizes(request, sent_sizes[: len(request.images)], engine, settings)
        return _Wire(body=body, settings=settings, encode_s=encode_s, image_sizes=image_sizes)

    def _server_sizes(
        self, request: GenerationRequest, sent: list[tuple[int, int]], engine: str, settings: dict[str, Any]
    ) -> list[tuple[int, int]]:
        """Compute the (W, H) the server's processor resizes each sent image to, with the
        family's rule and the budget sent; record the rule in `settings["resize"]`.

        When the engine fixes the budget itself, sizes are computed only for a family
        that needs them (answers in resized pixels), from the checkpoint's default
        settings, and marked `"assumed": True`. Returns [] when the size cannot be known.
        """
        rule = self.profile.resize
        if rule is None or not rule.client_side or not sent:
            return []
        sent_budget = engine in _BUDGET_IN_BODY
        if not sent_budget and not self.profile.needs_resized_size:
            return []
        budget = request.budget if sent_budget else None
        if budget is None and not isinstance(rule, SmartResize):
            return []  # Gemma 4's rule needs the budget; its coordinates are normalised anyway
        settings["resize"] = {**rule.settings(budget), "computed_on": "client", "assumed": not sent_budget}
        return [rule.resized_size(width, height, budget) for width, height in sent]

    @staticmethod
    def _media(request: GenerationRequest) -> list[Image.Image]:
        """Return the request's images, or its video frames."""
        return list(request.images) if request.video is None else list(request.video.frames)

    def _image_part(self, image: Image.Image, cache: _ImageCache, sent_sizes: list[tuple[int, int]]) -> dict[str, Any]:
        """Return the `image_url` part of one image (resized and encoded once per `generate` call)."""
        cached = cache.get(id(image))
        if cached is None:
            sized = resize_to_max_side(image, self.max_image_side)
            cached = (encode_image(sized, self.image_format, self.jpeg_quality), sized.size)
            cache[id(image)] = cached
        sent_sizes.append(cached[1])
        return {"type": "image_url", "image_url": {"url": cached[0]}}

    # -------------------------------------------------------------------- HTTP
    def _post(self, body: dict[str, Any]) -> _Reply:
        """POST one body with retries; return the parsed JSON or the reason it failed."""
        payload = json.dumps(body).encode("utf-8")
        where = redact_url(self.url)
        last_error = "no attempt made"
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            start = time.perf_counter()
            try:
                response = exchange(self._client, "POST", self.url, content=payload, seconds=self.timeout,
                                    max_bytes=self.max_response_bytes)
            except ResponseTooLarge as exc:  # the same request would get the same answer: not retried
                return _Reply(
                    error=f"the server at {where} sent an answer larger than {self.max_response_bytes} bytes "
                    f"({exc.size} bytes or more); raise max_response_bytes= if that is expected",
                    attempts=attempt,
                )
            except httpx.TimeoutException:
                last_error = (
                    f"no answer from {where} within {self.timeout:g} s (connection to last byte); the server may be overloaded "
                    "or the request too large (raise timeout=)"
                )
            except httpx.ConnectError as exc:
                refused = _is_refused(exc)
                if not self._server_answered:
                    reason = "connection refused; is it running?" if refused else f"{exc}; is it running, and is the address right?"
                    return _Reply(error=f"cannot reach the server at {where}: {reason}", attempts=attempt)
                last_error = f"cannot reach the server at {where}: {'connection refused' if refused else exc}"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last_error = f"connection to {where} failed: {type(exc).__name__}: {exc}"
            except httpx.HTTPError as exc:  # invalid URL, unsupported protocol...: retrying cannot help
                return _Reply(error=f"request to {where} failed: {type(exc).__name__}: {exc}", attempts=attempt)
            else:
                http_s = time.perf_counter() - start
                self._server_answered = True
                status = response.status_code
                if status == 429 or status >= 500:
                    last_error = f"the server at {where} answered HTTP {status}: {_error_detail(response)}"
                    wait = _retry_after(response)
                elif status >= 400:
                    hint = self._key_hint() if status in (401, 403) else ""
                    detail = _error_detail(response)
                    return _Reply(
                        error=f"the server at {where} answered HTTP {status}: {detail}{hint}",
                        attempts=attempt,
                        http_s=http_s,
                        status=status,
                        detail=detail,
                    )
                else:
                    return self._decode(response, where, attempt, http_s)
            if attempt < self.max_attempts:
                delay = self._delay(attempt, wait)
                logger.info("retrying %s in %.2f s (attempt %d of %d): %s", where, delay, attempt + 1, self.max_attempts, self._redact(last_error))
                time.sleep(delay)
        suffix = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
        return _Reply(error=last_error + suffix, attempts=attempt)

    def _key_hint(self) -> str:
        """What to check after a 401 / 403 (which key was, or was not, sent)."""
        if self._api_key:
            return "; check VISTOOL_API_KEY (or the key you passed)"
        if os.environ.get("OPENAI_API_KEY", "").strip():
            return ("; no key was sent: OPENAI_API_KEY goes only to https://api.openai.com unless asked "
                    "(api_key_env='OPENAI_API_KEY', --api-key-env OPENAI_API_KEY), or set VISTOOL_API_KEY")
        return "; no key was sent: set VISTOOL_API_KEY"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt: Retry-After, else exponential backoff with jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * self._random.uniform(0.5, 1.0)

    @staticmethod
    def _decode(response: httpx.Response, where: str, attempt: int, http_s: float) -> _Reply:
        """Parse a 2xx answer as a chat completion; a malformed one becomes a failure reason."""
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            start = " ".join(response.text[:80].split())
            return _Reply(
                error=f"the server at {where} sent an answer that is not valid JSON (HTTP {response.status_code}, {kind}, starts with {start!r})",
                attempts=attempt,
                http_s=http_s,
            )
        if isinstance(data, dict) and data.get("error"):
            error = data["error"]
            detail = error.get("message", error) if isinstance(error, dict) else error
            return _Reply(error=f"the server at {where} reported an error: {detail}", attempts=attempt, http_s=http_s)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
            keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
            return _Reply(
                error=f"the server at {where} sent JSON without choices[0].message (got: {keys})",
                attempts=attempt,
                http_s=http_s,
            )
        return _Reply(data=data, attempts=attempt, http_s=http_s)

    # ---------------------------------------------------------------- answers
    def _response(
        self,
        request: GenerationRequest,
        data: dict[str, Any],
        settings: dict[str, Any],
        timings: dict[str, float],
        image_sizes: list[tuple[int, int]] | None = None,
    ) -> GenerationResponse:
        """Turn one chat completion into a `GenerationResponse` (thought split, log-probs mapped);
        `image_sizes` are the client-computed resized sizes (`_server_sizes`)."""
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        reasoning = message.get("reasoning_content") or message.get("reasoning") or None
        answer, inline_thought = split_thought(str(content))
        for token in self.profile.strip_tokens:
            answer = answer.replace(token, "")
        answer = answer.strip()
        if request.stop_on_repeat:
            answer, cut = openai_structured.cut_loop(answer)
            settings = {**settings, **cut}
        thoughts = [part.strip() for part in (reasoning, inline_thought) if isinstance(part, str) and part.strip()]
        thought = "\n\n".join(thoughts) or None
        raw_text = str(content)
        if isinstance(reasoning, str) and reasoning:
            raw_text = f"{CHANNEL_OPEN}thought\n{reasoning}{CHANNEL_CLOSE}{raw_text}"

        finish = choice.get("finish_reason")
        if finish not in ("stop", "length", None):
            settings = {**settings, "server_finish_reason": finish}
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

        logprobs = None
        if request.return_logprobs and "logprobs" not in settings.get("not_sent", []):
            entries = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
            if isinstance(entries, list) and entries:
                logprobs = map_logprobs([entry for entry in entries if isinstance(entry, dict)], answer)
            else:
                self._warn_once(
                    "no-logprobs",
                    f"the server ({settings.get('engine')}) returned no token log-probabilities; "
                    "vLLM, SGLang and llama-server return them, transformers serve does not",
                )
        generated = int(usage.get("completion_tokens") or 0) or (len(logprobs) if logprobs else 0)
        return GenerationResponse(
            text=answer,
            raw_text=raw_text,
            thought=thought,
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            image_tokens=0,
            generated_tokens=generated,
            logprobs=logprobs,
            timings=timings,
            settings=settings,
            image_sizes=list(image_sizes or []),
        )
