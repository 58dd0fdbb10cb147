"""The HTTP exchange with a chat-completions server: one POST per request body, retried.

Failures: every request gets a reply. 429, 5xx, dropped connections and timeouts are
retried with exponential backoff and jitter (`Retry-After` is honoured, capped at
`max_backoff`), up to `max_attempts` tries; other HTTP errors, malformed answers and an
unreachable server give a failed reply with a one-line reason. A connection refused
before the server has ever answered is not retried: it fails at once with "cannot reach
the server at URL: connection refused; is it running?".

Time and size are bounded per attempt (`vistool.io.http.exchange`): `timeout` seconds in
all, from connecting to the last byte of the answer (a server that trickles a byte every
few seconds is cut at the deadline, not only one that goes silent), and an answer of at
most `max_response_bytes` (larger: a failure, not retried). So one request takes at most
`max_attempts` x `timeout` plus the backoffs. Each attempt opens its own connection (so
that its deadline can cut it alone); on a LAN that costs well under a millisecond.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from vistool.io.http import ResponseTooLarge, exchange
from vistool.runtime.keys import key_hint
from vistool.runtime.openai_engines import redact_url

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    """The outcome of posting one request body: parsed JSON, or the reason it failed.

    data: the chat completion (when it succeeded). error: the one-line reason (when it
    failed). attempts: how many tries it took. http_s: seconds of the last exchange.
    status / detail: the HTTP status and the server's own explanation, for an HTTP 4xx.
    """

    data: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    http_s: float = 0.0
    status: int | None = None
    detail: str = ""


class ChatPoster:
    """POST chat-completion bodies to one endpoint, with the retry policy above.

    Takes the HTTP client (from `vistool.io.http.fresh_client`), the endpoint URL, the
    per-attempt deadline `timeout` in seconds, `max_attempts`, the backoff (starting at
    `backoff` seconds, doubling, capped at `max_backoff`), the largest answer accepted
    (`max_response_bytes`), whether an API key is sent (`key_sent`, for the hint after a
    401 / 403) and `redact`, which takes the key out of what is logged.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        *,
        timeout: float,
        max_attempts: int,
        backoff: float,
        max_backoff: float,
        max_response_bytes: int,
        key_sent: bool,
        redact: Callable[[str], str],
    ) -> None:
        self.client = client
        self.url = url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_response_bytes = max_response_bytes
        self.key_sent = key_sent
        self.redact = redact
        self.server_answered = False  # once it has, a refused connection is retried (a restart)
        self.random = random.Random()

    def post(self, body: dict[str, Any]) -> Reply:
        """POST one body with retries; return the parsed JSON or the reason it failed."""
        payload = json.dumps(body).encode("utf-8")
        where = redact_url(self.url)
        last_error = "no attempt made"
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            start = time.perf_counter()
            try:
                response = exchange(self.client, "POST", self.url, content=payload, seconds=self.timeout,
                                    max_bytes=self.max_response_bytes)
            except ResponseTooLarge as exc:  # the same request would get the same answer: not retried
                return Reply(
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
                refused = is_refused(exc)
                if not self.server_answered:
                    reason = "connection refused; is it running?" if refused else f"{exc}; is it running, and is the address right?"
                    return Reply(error=f"cannot reach the server at {where}: {reason}", attempts=attempt)
                last_error = f"cannot reach the server at {where}: {'connection refused' if refused else exc}"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last_error = f"connection to {where} failed: {type(exc).__name__}: {exc}"
            except httpx.HTTPError as exc:  # invalid URL, unsupported protocol...: retrying cannot help
                return Reply(error=f"request to {where} failed: {type(exc).__name__}: {exc}", attempts=attempt)
            else:
                http_s = time.perf_counter() - start
                self.server_answered = True
                status = response.status_code
                if status == 429 or status >= 500:
                    last_error = f"the server at {where} answered HTTP {status}: {error_detail(response)}"
                    wait = retry_after(response)
                elif status >= 400:
                    hint = key_hint(self.key_sent) if status in (401, 403) else ""
                    detail = error_detail(response)
                    return Reply(
                        error=f"the server at {where} answered HTTP {status}: {detail}{hint}",
                        attempts=attempt,
                        http_s=http_s,
                        status=status,
                        detail=detail,
                    )
                else:
                    return decode_completion(response, where, attempt, http_s)
            if attempt < self.max_attempts:
                delay = self.delay(attempt, wait)
                logger.info("retrying %s in %.2f s (attempt %d of %d): %s", where, delay, attempt + 1, self.max_attempts, self.redact(last_error))
                time.sleep(delay)
        suffix = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
        return Reply(error=last_error + suffix, attempts=attempt)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt: Retry-After, else exponential backoff with jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * self.random.uniform(0.5, 1.0)


def decode_completion(response: httpx.Response, where: str, attempt: int, http_s: float) -> Reply:
    """Parse a 2xx answer as a chat completion; a malformed one becomes a failure reason.

    Takes the answer, the (redacted) server address for messages, the attempt number and
    the seconds the exchange took. Returns the reply.
    """
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        start = " ".join(response.text[:80].split())
        return Reply(
            error=f"the server at {where} sent an answer that is not valid JSON (HTTP {response.status_code}, {kind}, starts with {start!r})",
            attempts=attempt,
            http_s=http_s,
        )
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        detail = error.get("message", error) if isinstance(error, dict) else error
        return Reply(error=f"the server at {where} reported an error: {detail}", attempts=attempt, http_s=http_s)
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        return Reply(
            error=f"the server at {where} sent JSON without choices[0].message (got: {keys})",
            attempts=attempt,
            http_s=http_s,
        )
    return Reply(data=data, attempts=attempt, http_s=http_s)


def retry_after(response: httpx.Response) -> float | None:
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


def error_detail(response: httpx.Response) -> str:
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


def is_refused(exc: BaseException) -> bool:
    """True when a connection error is a refused connection (nobody listening)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "refused" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


__all__ = ["ChatPoster", "Reply", "decode_completion", "error_detail", "is_refused", "retry_after"]
