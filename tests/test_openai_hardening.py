"""The HTTP transport under hostile servers, empty answers, keys and URLs (issue 20, items 2, 9, 11).

Servers bind 127.0.0.1 only and stop by themselves (a stop event ends every handler,
and each handler gives up after a minute anyway). Every test is bounded by a
pytest-timeout; the deadlines asserted are generous correctness bounds (a trickling
server would hold a request for minutes), not speed measurements.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.test_openai_backend import ScriptedServer, completion
from vistool.api import Vistool, load
from vistool.errors import ImageLoadError
from vistool.io import images
from vistool.io.images import load_image
from vistool.runtime import make_backend
from vistool.runtime.openai_backend import OpenAIBackend, api_key_from_env, is_loopback, is_official_openai
from vistool.runtime.types import GenerationRequest

MODELS = json.dumps({"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}).encode()


class RawServer:
    """A loopback TCP server; each connection goes to `handler(connection, server)` on its own thread."""

    def __init__(self, handler: Callable[[socket.socket, "RawServer"], None]) -> None:
        self.handler = handler
        self.stop_event = threading.Event()
        self.connections = 0
        self.posts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                connection, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                self.handler(connection, self)
            except OSError:
                pass  # the client cut the connection: what these tests expect

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def read_request(self, connection: socket.socket) -> bytes:
        """Read one HTTP request (headers and a Content-Length body); answer GET /models at once."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        if head.startswith(b"POST"):
            self.posts += 1
        return head

    def trickle(self, connection: socket.socket, data: bytes, every: float = 0.3) -> None:
        """Send `data` one byte at a time, `every` seconds apart (a minute at most)."""
        for byte in data[:200]:
            if self.stop_event.wait(every):
                return
            connection.sendall(bytes([byte]))


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, RawServer], None]], RawServer]]:
    """Start RawServers for a test; stop them all at its end."""
    started: list[RawServer] = []

    def start(handler: Callable[[socket.socket, RawServer], None]) -> RawServer:
        started.append(RawServer(handler))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def models_or(action: Callable[[socket.socket, RawServer], None]) -> Callable[[socket.socket, RawServer], None]:
    """A handler answering GET /models normally and doing `action` to every POST."""

    def handler(connection: socket.socket, server: RawServer) -> None:
        head = server.read_request(connection)
        if head.startswith(b"GET"):
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                               + f"Content-Length: {len(MODELS)}\r\n\r\n".encode() + MODELS)
            return
        action(connection, server)

    return handler


def trickle_body(connection: socket.socket, server: RawServer) -> None:
    body = json.dumps(completion("never finished")).encode()
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode())
    server.trickle(connection, body)


def trickle_headers(connection: socket.socket, server: RawServer) -> None:
    server.trickle(connection, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 150)


def run_vistool(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m vistool.cli ARGUMENTS` with this checkout's code."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    environment.pop("VISTOOL_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "vistool.cli", *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------ item 2: deadline
@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_a_trickling_server_is_cut_at_the_deadline(raw_server, action) -> None:
    server = raw_server(models_or(action))
    start = time.monotonic()
    with OpenAIBackend("m", server.base_url, engine="vllm", timeout=1.0, max_attempts=2, backoff=0.01) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    elapsed = time.monotonic() - start
    assert not response.ok
    assert "no answer from" in response.error and "within 1 s" in response.error and "gave up after 2 attempts" in response.error
    assert server.posts == 2
    assert elapsed < 10  # two attempts of 1 s (trickling all 200 bytes would take a minute per attempt)


@pytest.mark.timeout(120)
def test_cli_timeout_and_retries(raw_server, photo: Path) -> None:
    server = raw_server(models_or(trickle_body))
    done = run_vistool("detect", str(photo), "--classes", "cat", "--backend", "openai", "--base-url", server.base_url,
                       "--timeout", "1", "--retries", "0", cwd=photo.parent)
    assert done.returncode == 2
    assert "no answer from" in done.stderr and "within 1 s" in done.stderr and "Traceback" not in done.stderr
    assert server.posts == 1  # --retries 0: one try


def test_make_backend_takes_timeout_and_retries() -> None:
    backend = make_backend("m", "openai", base_url="http://127.0.0.1:9/v1", engine="vllm", timeout=7, retries=2)
    assert backend.timeout == 7.0 and backend.max_attempts == 3
    with pytest.raises(Exception, match="retries must be"):
        make_backend("m", "openai", base_url="http://127.0.0.1:9/v1", retries=-1)


# ------------------------------------------------ item 9: size cap, empty answers
@pytest.mark.timeout(60)
def test_an_oversized_answer_is_refused_and_not_retried(raw_server) -> None:
    def huge(connection: socket.socket, server: RawServer) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(64):  # 4 MB, no Content-Length
            connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")

    server = raw_server(models_or(huge))
    with OpenAIBackend("m", server.base_url, engine="vllm", max_response_bytes=1 << 20, backoff=0.01) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert not response.ok and "larger than 1048576 bytes" in response.error
    assert server.posts == 1


@pytest.mark.timeout(180)
def test_an_empty_answer_is_a_failure_everywhere(photo: Path, tmp_path: Path) -> None:
    server = ScriptedServer()
    server.reply = lambda body, srv: (200, completion(None), {})  # content: null
    try:
        vt = load("google/gemma-4-E2B-it", backend="openai", base_url=server.base_url, engine="vllm")
        api = vt.detect(str(photo), ["cat"])
        cli = run_vistool("detect", str(photo), "--classes", "cat", "--backend", "openai", "--base-url", server.base_url,
                          cwd=tmp_path)
        batch = run_vistool("annotate", str(photo), "--out", "out", "--classes", "cat", "--backend", "openai",
                            "--base-url", server.base_url, "--no-progress", cwd=tmp_path)
    finally:
        server.stop()
    reason = "empty answer: the model returned no text"
    assert api.error == reason and len(api.detections) == 0
    assert cli.returncode == 2 and reason in cli.stderr
    assert batch.returncode == 1
    assert json.loads((tmp_path / "out/failures.jsonl").read_text())["reason"] == reason


# --------------------------------------------------------------- item 11: keys
@pytest.mark.timeout(180)
def test_openai_api_key_goes_only_where_it_is_asked_to(photo: Path, tmp_path: Path) -> None:
    server = ScriptedServer()
    server.reply = lambda body, srv: (200, completion("[]"), {})
    env = {"OPENAI_API_KEY": "sk-not-for-this-server"}
    common = ["detect", str(photo), "--classes", "cat", "--backend", "openai", "--base-url", server.base_url]
    try:
        plain = run_vistool(*common, cwd=tmp_path, env=env)
        asked = run_vistool(*common, "--api-key-env", "OPENAI_API_KEY", cwd=tmp_path, env=env)
    finally:
        server.stop()
    assert plain.returncode == 0 and asked.returncode == 0, plain.stderr + asked.stderr
    assert server.auth == [None, "Bearer sk-not-for-this-server"]


def test_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISTOOL_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    assert api_key_from_env("https://api.openai.com/v1") == "sk-o"
    assert api_key_from_env("http://api.openai.com/v1") is None  # not over plain http
    assert api_key_from_env("https://api.openai.com.evil.example/v1") is None
    assert api_key_from_env("http://127.0.0.1:8000/v1", "OPENAI_API_KEY") == "sk-o"
    monkeypatch.setenv("VISTOOL_API_KEY", "vk")
    assert api_key_from_env("http://gpu-box:8000/v1") == "vk"
    with pytest.raises(Exception, match="NOT_SET, which is not set"):
        api_key_from_env("http://x/v1", "NOT_SET")
    assert is_official_openai("https://API.openai.com/v1") and not is_official_openai("https://openai.com/v1")
    assert is_loopback("http://localhost:1/v1") and is_loopback("http://127.0.0.2/v1") and is_loopback("http://[::1]:8/v1")
    assert not is_loopback("http://10.0.0.5:8000/v1")


def test_a_key_over_plain_http_to_another_host_is_warned_about() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OpenAIBackend("m", "http://10.0.0.5:8000/v1", engine="vllm", api_key="sk-secret").close()
        OpenAIBackend("m", "http://127.0.0.1:8000/v1", engine="vllm", api_key="sk-secret").close()
        OpenAIBackend("m", "https://10.0.0.5:8000/v1", engine="vllm", api_key="sk-secret").close()
        OpenAIBackend("m", "http://10.0.0.5:8000/v1", engine="vllm").close()  # no key: nothing to leak
    messages = [str(w.message) for w in caught if "plain http" in str(w.message)]
    assert messages == ["the API key is sent over plain http to http://10.0.0.5:8000/v1, readable by anyone on the way; "
                        "use an https address (or no key)"]
    assert not any("sk-secret" in str(w.message) for w in caught)


# --------------------------------------------------------------- item 11: URLs
@pytest.mark.timeout(60)
def test_urls_are_opt_in_bounded_and_capped(raw_server, monkeypatch: pytest.MonkeyPatch, photo: Path) -> None:
    png = photo.read_bytes()

    def serve(connection: socket.socket, server: RawServer) -> None:
        head = server.read_request(connection)
        if b"/slow" in head.split(b"\r\n")[0]:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + f"Content-Length: {len(png)}\r\n\r\n".encode())
            server.trickle(connection, png)
        else:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
                               + f"Content-Length: {len(png)}\r\n\r\n".encode() + png)

    server = raw_server(serve)
    root = server.base_url.removesuffix("/v1")
    with pytest.raises(ImageLoadError, match="fetching URLs is off; pass allow_urls=True"):
        load_image(f"{root}/photo.png")
    vt = Vistool(OpenAIBackend("m", "http://127.0.0.1:9/v1", engine="vllm"))
    with pytest.raises(ImageLoadError, match="fetching URLs is off"):
        vt.detect(f"{root}/photo.png", ["cat"])
    assert server.connections == 0  # nothing was fetched
    assert load_image(f"{root}/photo.png", allow_urls=True).size == (40, 30)
    with pytest.raises(ImageLoadError, match="no complete answer within 1 s"):
        load_image(f"{root}/slow.png", allow_urls=True, timeout=1.0)
    monkeypatch.setattr(images, "MAX_URL_BYTES", 100)
    with pytest.raises(ImageLoadError, match="download larger than 100 bytes"):
        load_image(f"{root}/photo.png", allow_urls=True)
