"""The OpenAI-compatible backend against real servers on 127.0.0.1.

Two kinds of server, both started by the tests themselves and stopped at the end:
  - `transformers serve` (transformers' own OpenAI-compatible server) on the tiny
    offline Gemma 4: end-to-end requests, the image-token budget, engine detection;
  - a small scripted HTTP server (http.server in a thread) for faults (5xx, 429, hangs,
    malformed bodies, refused connections), request bodies per engine, answer parsing
    and concurrency.
No HTTP layer is mocked: every request goes through a socket.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from eval.bench_openai import TransformersServe, free_port
from vistool.errors import BudgetError, RequestError, VistoolError
from vistool.io.video import VideoFrames
from vistool.runtime import make_backend
from vistool.runtime.openai_backend import OpenAIBackend, map_logprobs
from vistool.runtime.types import Decoding, GenerationRequest

# --------------------------------------------------------------------------- scripted server
Reply = tuple[int, Any, dict[str, str]]


def completion(
    content: str | None = "ok",
    *,
    reasoning: str | None = None,
    logprobs: list[dict[str, Any]] | None = None,
    finish: str = "stop",
    usage: tuple[int, int] = (10, 3),
) -> dict[str, Any]:
    """A chat-completion answer as vLLM writes it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [choice],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def echo(body: dict[str, Any], server: "ScriptedServer") -> Reply:
    """Answer with the prompt text (the last text part of the user turn)."""
    return 200, completion(prompt_of(body)), {}


def prompt_of(body: dict[str, Any]) -> str:
    """The prompt of a request body: the last text part of the last message."""
    return body["messages"][-1]["content"][-1]["text"]


class ScriptedServer:
    """A loopback HTTP server whose POST answers come from `self.reply(body, server)`.

    Records every body and Authorization header, counts requests and the most requests
    in flight at once. `GET .../models` answers `self.models`.
    """

    def __init__(self) -> None:
        self.reply: Callable[[dict[str, Any], ScriptedServer], Reply] = echo
        self.models: dict[str, Any] = {"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()
        self.keep_alive = True
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def stop(self) -> None:
        """Release hanging handlers and stop serving."""
        self.release.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    if not server.keep_alive:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_GET(self) -> None:
                self._send(200, server.models, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.count += 1
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, headers = server.reply(body, server)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(status, payload, dict(headers))

        return Handler


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A fresh scripted loopback server per test."""
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def backend_for(server: ScriptedServer, **options: Any) -> OpenAIBackend:
    """An OpenAIBackend on the scripted server, with fast retries unless told otherwise."""
    options.setdefault("engine", "vllm")
    options.setdefault("backoff", 0.01)
    options.setdefault("timeout", 10.0)
    return OpenAIBackend("google/gemma-4-E2B-it", server.base_url, **options)


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A random RGB image (PNG round trips of noise are a strict losslessness check)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def decode_data_url(url: str) -> Image.Image:
    """The image inside a base64 data URL."""
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


# --------------------------------------------------------------------------- faults
def test_5xx_then_success_is_retried(server: ScriptedServer) -> None:
    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:
        return (500, {"error": {"message": "busy"}}, {}) if srv.count <= 2 else (200, completion("fine"), {})

    server.reply = reply
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert response.ok and response.text == "fine"
    assert server.count == 3 and response.timings["attempts"] == 3


def test_429_retry_after_is_honoured(server: ScriptedServer) -> None:
    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:
        return (429, {"error": "slow down"}, {"Retry-After": "1"}) if srv.count == 1 else (200, completion("ok"), {})

    server.reply = reply
    start = time.perf_counter()
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert response.ok and server.count == 2
    assert time.perf_counter() - start >= 0.95  # waited what Retry-After asked, not the 0.01 s backoff


def test_retries_are_bounded(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (503, "overloaded", {"Content-Type": "text/plain"})
    with backend_for(server, max_attempts=3) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert not response.ok and response.finish_reason == "error"
    assert server.count == 3
    assert "HTTP 503: overloaded" in response.error and "gave up after 3 attempts" in response.error


def test_client_errors_are_not_retried(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (400, {"detail": "max_tokens too large"}, {})
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert server.count == 1
    assert response.error.endswith("answered HTTP 400: max_tokens too large")


def test_hang_times_out_per_request_in_bounded_time(server: ScriptedServer) -> None:
    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:
        if prompt_of(body) == "hang":
            srv.release.wait(10)
        return 200, completion(prompt_of(body)), {}

    server.reply = reply
    start = time.perf_counter()
    with backend_for(server, timeout=0.5, max_attempts=2) as backend:
        responses = backend.generate([GenerationRequest(prompt="hang"), GenerationRequest(prompt="fast")])
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    assert not responses[0].ok and "no answer from" in responses[0].error and "within 0.5 s" in responses[0].error
    assert "gave up after 2 attempts" in responses[0].error
    assert responses[1].ok and responses[1].text == "fast"  # one hang does not take the batch down


def test_connection_refused_gives_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.perf_counter()
    with OpenAIBackend("m", url, engine="vllm", backoff=1.0) as backend:
        responses = backend.generate([GenerationRequest(prompt="p"), GenerationRequest(prompt="q")])
    assert time.perf_counter() - start < 2.0  # not retried: nobody has ever answered there
    assert [r.error for r in responses] == [
        f"cannot reach the server at {url}/chat/completions: connection refused; is it running?"
    ] * 2


def test_refused_after_the_server_answered_is_retried() -> None:
    scripted = ScriptedServer()
    scripted.keep_alive = False  # so that stopping the server really ends every connection
    backend = backend_for(scripted, max_attempts=2)
    try:
        assert backend.generate([GenerationRequest(prompt="first")])[0].text == "first"
    finally:
        scripted.stop()  # the server goes away (a restart, a crash)
    response = backend.generate([GenerationRequest(prompt="second")])[0]
    backend.close()
    assert "connection refused" in response.error and "gave up after 2 attempts" in response.error


def test_malformed_json_body_fails_with_reason(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (200, "<html>gateway says hi</html>", {"Content-Type": "text/html"})
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert server.count == 1
    assert "not valid JSON" in response.error and "text/html" in response.error and "<html>gateway" in response.error


def test_json_without_choices_fails_with_reason(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (200, {"object": "chat.completion", "choices": []}, {})
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert "without choices[0].message" in response.error and "object" in response.error


def test_one_failing_request_leaves_the_others(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (422, {"detail": "bad"}, {}) if prompt_of(body) == "b" else echo(body, srv)
    with backend_for(server) as backend:
        responses = backend.generate([GenerationRequest(prompt=p) for p in "abc"])
    assert [r.text for r in responses] == ["a", "", "c"]
    assert responses[1].error.endswith("HTTP 422: bad")


def test_api_key_sent_as_bearer_and_never_leaked(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-Very-Secret-123"
    monkeypatch.setenv("VISTOOL_API_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")

    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:  # a proxy that echoes the header back
        header = srv.auth[-1]
        status = 503 if prompt_of(body) == "retry" else 401
        return status, {"error": {"message": f"rejected {header}"}}, {}

    server.reply = reply
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with backend_for(server, max_attempts=2) as backend:
            responses = backend.generate(
                [GenerationRequest(prompt="retry"), GenerationRequest(prompt="p", budget=280, return_logprobs=True)]
            )
            text_of_backend = repr(backend) + str(vars(backend).get("base_url"))
    assert set(server.auth) == {f"Bearer {secret}"}
    assert "HTTP 401" in responses[1].error and "VISTOOL_API_KEY" in responses[1].error
    assert "rejected Bearer ***" in responses[1].error
    everything = json.dumps([r.to_dict() for r in responses]) + caplog.text + text_of_backend
    everything += " ".join(str(w.message) for w in caught)
    assert secret not in everything

    monkeypatch.delenv("VISTOOL_API_KEY")
    server.reply = echo
    with backend_for(server) as backend:  # OPENAI_API_KEY goes only to api.openai.com unless asked (issue 20)
        backend.generate([GenerationRequest(prompt="p")])
    assert server.auth[-1] is None
    with backend_for(server, api_key_env="OPENAI_API_KEY") as backend:
        backend.generate([GenerationRequest(prompt="p")])
    assert server.auth[-1] == "Bearer sk-other"


# --------------------------------------------------------------------------- concurrency
def test_fifty_requests_four_in_flight(server: ScriptedServer) -> None:
    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:
        time.sleep(0.05)
        return echo(body, srv)

    server.reply = reply
    prompts = [f"request {i}" for i in range(50)]
    with backend_for(server, max_concurrency=4) as backend:
        responses = backend.generate([GenerationRequest(prompt=p) for p in prompts])
    assert [r.text for r in responses] == prompts  # all answered, in order
    assert sorted(prompt_of(b) for b in server.bodies) == sorted(prompts)  # each sent exactly once
    assert server.max_in_flight == 4


# --------------------------------------------------------------------------- request bodies
def test_vllm_body_budget_sampling_logprobs_thinking(server: ScriptedServer) -> None:
    image = noise_image(64, 40)
    request = GenerationRequest(
        prompt="find the cat",
        images=[image],
        system="be brief",
        budget=560,
        max_new_tokens=33,
        decoding=Decoding(temperature=1.0, top_p=0.95, top_k=64, seed=7),
        thinking=True,
        return_logprobs=True,
    )
    with pytest.warns(UserWarning, match="returned no token log-probabilities"):  # the echo server sends none
        with backend_for(server, engine="vllm") as backend:
            response = backend.generate([request])[0]
    assert response.logprobs is None
    body = server.bodies[0]
    assert body["model"] == "google/gemma-4-E2B-it"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    parts = body["messages"][1]["content"]
    assert [part["type"] for part in parts] == ["image_url", "text"]  # media first, then the prompt
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    sent = decode_data_url(parts[0]["image_url"]["url"])
    assert sent.size == (64, 40) and np.array_equal(np.asarray(sent.convert("RGB")), np.asarray(image))  # lossless
    assert body["mm_processor_kwargs"] == {"max_soft_tokens": 560}
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (33, 1.0, 0.95, 64, 7)
    assert body["logprobs"] is True and body["top_logprobs"] == 1
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["skip_special_tokens"] is False
    assert response.settings["engine"] == "vllm" and response.settings["budget"] == 560
    assert response.settings["image_tokens_reported"] is False and response.image_tokens == 0


def test_transformers_engine_body(server: ScriptedServer) -> None:
    request = GenerationRequest(
        prompt="p", images=[noise_image(8, 8)], budget=1120, decoding=Decoding(temperature=0.7, top_k=5), return_logprobs=True
    )
    with pytest.warns(UserWarning, match="does not take top_k / logprobs"):
        with backend_for(server, engine="transformers") as backend:
            response = backend.generate([request])[0]
    body = server.bodies[0]
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "processor_kwargs": {"max_soft_tokens": 1120}}
    assert "mm_processor_kwargs" not in body and "top_k" not in body and "logprobs" not in body
    assert response.settings["not_sent"] == ["top_k", "logprobs"]


def test_greedy_default_and_default_budget(server: ScriptedServer) -> None:
    with backend_for(server, engine="sglang") as backend:
        response = backend.generate([GenerationRequest(prompt="p", images=[noise_image(8, 8)]), GenerationRequest(prompt="text only")])
    first, second = server.bodies if prompt_of(server.bodies[0]) == "p" else server.bodies[::-1]
    assert first["temperature"] == 0.0 and "top_p" not in first and "top_k" not in first and "seed" not in first
    assert first["mm_processor_kwargs"] == {"max_soft_tokens": 280}  # the profile's default budget
    assert "mm_processor_kwargs" not in second  # no media, no budget knob
    assert response[0].settings["budget"] == 280


def test_llamacpp_budget_is_server_side_and_warned_once(server: ScriptedServer) -> None:
    requests = [GenerationRequest(prompt=str(i), images=[noise_image(8, 8)], budget=1120) for i in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with backend_for(server, engine="llama.cpp") as backend:
            responses = backend.generate(requests)
            backend.generate(requests[:1])
    budget_warnings = [w for w in caught if "--image-max-tokens" in str(w.message)]
    assert len(budget_warnings) == 1
    assert all("mm_processor_kwargs" not in b and "processor_kwargs" not in b.get("chat_template_kwargs", {}) for b in server.bodies)
    assert all(r.settings["budget"] == "server" and r.settings["engine"] == "llamacpp" for r in responses)


def test_video_frames_with_timestamps(server: ScriptedServer) -> None:
    frames = [noise_image(32, 24, seed=i) for i in range(3)]
    video = VideoFrames(frames=frames, timestamps=[0.0, 2.5, 75.0], fps=24.0, duration=80.0)
    with backend_for(server, engine="vllm") as backend:
        response = backend.generate([GenerationRequest(prompt="what happens?", video=video)])[0]
    parts = server.bodies[0]["messages"][-1]["content"]
    assert [p.get("text", p["type"]) for p in parts] == [
        "00:00", "image_url", "00:02", "image_url", "01:15", "image_url", "what happens?"
    ]
    assert server.bodies[0]["mm_processor_kwargs"] == {"max_soft_tokens": 70}  # Gemma 4's per-frame budget
    assert response.settings["video_frame_budget"] == 70


def test_images_resized_only_when_asked_and_jpeg_on_request(server: ScriptedServer) -> None:
    image = noise_image(1000, 500)
    with backend_for(server) as backend:
        plain = backend.generate([GenerationRequest(prompt="p", images=[image])])[0]
    with backend_for(server, max_image_side=400, image_format="jpeg") as backend:
        small = backend.generate([GenerationRequest(prompt="p", images=[image])])[0]
    original_url = server.bodies[0]["messages"][-1]["content"][0]["image_url"]["url"]
    resized_url = server.bodies[1]["messages"][-1]["content"][0]["image_url"]["url"]
    assert decode_data_url(original_url).size == (1000, 500) and "client_resized_to" not in plain.settings
    assert resized_url.startswith("data:image/jpeg;base64,") and decode_data_url(resized_url).size == (400, 200)
    assert small.settings["client_resized_to"] == [[400, 200]] and small.settings["image_format"] == "jpeg"


def test_invalid_budget_and_empty_batch_raise(server: ScriptedServer) -> None:
    with backend_for(server) as backend:
        with pytest.raises(BudgetError, match="use one of 70, 140, 280, 560, 1120"):
            backend.generate([GenerationRequest(prompt="p", budget=100)])
        with pytest.raises(RequestError, match="empty batch"):
            backend.generate([])
    assert server.count == 0


def test_engine_auto_detection(server: ScriptedServer) -> None:
    with backend_for(server, engine="auto") as backend:
        assert backend.engine == "vllm"
    server.models = {"data": [{"id": "gemma4", "owned_by": "llamacpp"}]}
    with backend_for(server, engine="auto") as backend:
        assert backend.engine == "llamacpp"
    server.models = {"data": [{"id": "x", "owned_by": "someone"}]}
    with backend_for(server, engine="auto") as backend:
        assert backend.engine == "generic"
        with pytest.warns(UserWarning, match="engine is unknown .* budget 560 is not sent"):
            response = backend.generate([GenerationRequest(prompt="p", images=[noise_image(8, 8)], budget=560)])[0]
    assert response.settings["budget"] == "server"
    generic = server.bodies[-1]
    assert "chat_template_kwargs" not in generic and "mm_processor_kwargs" not in generic


# --------------------------------------------------------------------------- answers
def test_reasoning_content_and_logprob_offsets(server: ScriptedServer) -> None:
    tokens = ["<|channel>", "thought", "\n", "think", "<channel|>", "[", "1", ",", " 2", "]", "<turn|>"]
    logprobs = [{"token": t, "logprob": -0.1 * i} for i, t in enumerate(tokens)]
    server.reply = lambda body, srv: (
        200,
        completion("[1, 2]<turn|>", reasoning="think", logprobs=logprobs, finish="length", usage=(50, 11)),
        {},
    )
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p", thinking=True, return_logprobs=True)])[0]
    assert response.text == "[1, 2]" and response.thought == "think"
    assert response.raw_text.startswith("<|channel>thought\nthink<channel|>")
    assert response.finish_reason == "length" and (response.prompt_tokens, response.generated_tokens) == (50, 11)
    assert [lp.offset for lp in response.logprobs] == [-1, -1, -1, -1, -1, 0, 1, 2, 3, 5, -1]
    assert response.logprobs[6].token == "1" and response.logprobs[6].logprob == pytest.approx(-0.6)
    for lp in response.logprobs:
        if lp.offset >= 0:
            assert response.text[lp.offset :].startswith(lp.token)


def test_inline_thought_channel_is_split(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (200, completion("<|channel>thought\nhmm<channel|>\nanswer"), {})
    with backend_for(server) as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert response.text == "answer" and response.thought == "hmm"


def test_logprobs_with_bytes_split_character() -> None:
    snowman = "☃".encode()  # three bytes, split over two tokens
    entries = [
        {"token": "a", "logprob": -1.0, "bytes": list(b"a")},
        {"token": "bytes:\\xe2", "logprob": -2.0, "bytes": list(snowman[:1])},
        {"token": "bytes:\\x98\\x83", "logprob": -3.0, "bytes": list(snowman[1:])},
        {"token": "b", "logprob": -4.0, "bytes": list(b"b")},
    ]
    assert [lp.offset for lp in map_logprobs(entries, "a☃b")] == [0, 1, 1, 2]
    assert [lp.offset for lp in map_logprobs(entries, "")] == [-1] * 4


# --------------------------------------------------------------------------- factory
def test_make_backend(tiny_model_dir: Path) -> None:
    with pytest.raises(VistoolError, match="unknown backend 'tgi'"):
        make_backend("m", "tgi")
    with pytest.raises(VistoolError, match="unknown serving engine"):
        make_backend("m", "openai", engine="tgi")
    http = make_backend("Qwen/Qwen2.5-VL-7B-Instruct", "openai", base_url="http://127.0.0.1:1", max_concurrency=3)
    assert isinstance(http, OpenAIBackend) and http.profile_name == "qwen25vl" and http.max_concurrency == 3
    http = make_backend("my-served-name", "openai", profile="gemma4", engine="vllm", timeout=5)
    assert http.profile_name == "gemma4" and http.url == "http://127.0.0.1:8000/v1/chat/completions"
    local = make_backend(str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2)
    assert type(local).__name__ == "TransformersBackend" and local.batch_size == 2


# --------------------------------------------------------------------------- transformers serve
def _serve_available() -> bool:
    from transformers.utils.import_utils import is_serve_available

    return is_serve_available()


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve` on the tiny model, on 127.0.0.1 and a free port; yields the base URL."""
    yield from serve_on_loopback(tiny_model_dir, tmp_path_factory)


def serve_on_loopback(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run `transformers serve` on `model_dir` (127.0.0.1, a free port, one thread) for a
    fixture: yields its base URL, stops it after; skips without the serving extras and
    fails the test when the server does not come up."""
    if not _serve_available():
        pytest.skip("transformers serve needs its [serving] extras: pip install 'openai>=1.98' fastapi uvicorn")
    server = TransformersServe(model_dir, log_path=tmp_path_factory.mktemp("serve") / "serve.log", threads=1)
    try:
        base_url = server.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield base_url
    finally:
        server.__exit__()


@pytest.mark.slow
def test_serve_image_end_to_end(tiny_server: str, tiny_model_dir: Path) -> None:
    requests = [
        GenerationRequest(prompt="Describe the image.", images=[noise_image(96, 64)], budget=70, max_new_tokens=6),
        GenerationRequest(
            prompt="Detect every person.", images=[noise_image(64, 96, seed=1)], system="Answer in JSON.",
            thinking=True, max_new_tokens=6, return_logprobs=True,
        ),
    ]
    with pytest.warns(UserWarning, match="returned no token log-probabilities|does not take logprobs"):
        with OpenAIBackend(str(tiny_model_dir), tiny_server, engine="auto", max_concurrency=2) as backend:
            responses = backend.generate(requests)
    for response in responses:
        assert response.ok, response.error
        assert response.settings["engine"] == "transformers"  # detected from GET /v1/models
        assert response.prompt_tokens > 0 and 1 <= response.generated_tokens <= 6
        assert response.finish_reason in ("stop", "length")
        assert response.timings["generate_s"] > 0
    assert responses[1].logprobs is None and responses[1].settings["not_sent"] == ["logprobs"]


@pytest.mark.slow
def test_serve_budget_changes_prompt_tokens_like_local(tiny_server: str, tiny_model_dir: Path, tiny_backend) -> None:
    image = noise_image(1920, 1080)
    requests = [GenerationRequest(prompt="Read the text.", images=[image], budget=b, max_new_tokens=1) for b in (70, 1120)]
    with OpenAIBackend(str(tiny_model_dir), tiny_server, engine="transformers") as backend:
        remote = backend.generate(requests)
    local = tiny_backend.generate(requests)
    assert all(r.ok for r in remote), [r.error for r in remote]
    assert [r.prompt_tokens for r in remote] == [r.prompt_tokens for r in local]
    assert [r.image_sizes for r in remote] == [r.image_sizes for r in local]  # computed on the client with Gemma 4's rule
    assert remote[1].prompt_tokens - remote[0].prompt_tokens == 1100 - 66  # 1080x1920: 66 soft tokens at 70, 1100 at 1120


@pytest.mark.slow
def test_serve_wrong_model_name_is_a_clear_failure(tiny_server: str) -> None:
    with OpenAIBackend("not-the-served-model", tiny_server, engine="transformers") as backend:
        response = backend.generate([GenerationRequest(prompt="p")])[0]
    assert "HTTP 400" in response.error and "pinned" in response.error
