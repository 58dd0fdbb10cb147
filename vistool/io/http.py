"""One HTTP exchange with a hard deadline and a size cap, for image URLs and serving engines.

httpx's timeouts bound each socket operation, so a server that sends one byte every few
seconds (or accepts the request body one byte at a time) never trips them. `exchange`
bounds the whole exchange instead: a timer shuts the connection's socket down when the
deadline passes, whatever phase the exchange is in (connecting, sending, waiting for
the answer, reading it), and the body is read in chunks, at most `max_bytes` of it.
The socket is found through httpx's documented `trace` request extension when the
connection is made, so the client must not reuse connections (`fresh_client` makes one
that does not: each exchange opens its own, so that its deadline can cut it alone).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import httpx

_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class ResponseTooLarge(Exception):
    """The answer is larger than the cap; `size` is what was announced or read so far."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes ({size} bytes or more)")
        self.size = size
        self.limit = limit


def fresh_client(*, timeout: float, max_connections: int = 8, headers: dict[str, str] | None = None,
                 follow_redirects: bool = False) -> httpx.Client:
    """Return an httpx client for `exchange`: no connection reuse, `timeout` per socket operation."""
    return httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0),
        follow_redirects=follow_redirects,
    )


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    seconds: float,
    max_bytes: int,
    content: bytes | None = None,
) -> httpx.Response:
    """Send one request and read its whole answer within `seconds`, at most `max_bytes` of body.

    Takes a client from `fresh_client`, the method, the URL, the deadline for everything
    (connection, request, waiting, reading) and the body cap. Returns the response with
    its body read (`.content`, `.json()`, `.text` work; the body is already decoded).
    Raises httpx.TimeoutException when the deadline passes (also when it cuts a read
    that was still receiving), ResponseTooLarge when the answer is over the cap, and
    httpx's other errors as they come.
    """
    cut = _Cut()
    timer = threading.Timer(max(0.0, seconds), cut.fire)
    timer.daemon = True
    deadline = time.monotonic() + seconds
    timer.start()
    try:
        with client.stream(method, url, content=content, extensions={"trace": cut.trace}) as response:
            announced = response.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > max_bytes:
                raise ResponseTooLarge(int(announced), max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(len(body), max_bytes)
                if time.monotonic() > deadline:
                    cut.fire()
                    raise httpx.ReadTimeout(f"no complete answer within {seconds:g} s")
            headers = [(key, value) for key, value in response.headers.items() if key.lower() not in _DROPPED_HEADERS]
            return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)
    except ResponseTooLarge:
        raise
    except Exception as exc:
        if cut.fired and not isinstance(exc, httpx.TimeoutException):
            raise httpx.ReadTimeout(f"no complete answer within {seconds:g} s") from exc
        raise
    finally:
        timer.cancel()


class _Cut:
    """Shuts down the socket of one exchange when its deadline fires (or at once, if it already has)."""

    def __init__(self) -> None:
        self.fired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember the stream of each new connection."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with self._lock:
                    self._sockets.append(sock)
                    if self.fired:
                        _shut(sock)

    def fire(self) -> None:
        """The deadline: shut every socket of the exchange down (a blocked read or write returns at once)."""
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut a connection down through a duplicate of its descriptor (works for TLS sockets too)."""
    try:
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:  # already closed
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


__all__ = ["ResponseTooLarge", "exchange", "fresh_client"]
