"""Benchmark: the OpenAI-compatible HTTP path vs the local backend, same inputs.

Starts `transformers serve` on the tiny offline Gemma 4 (or `--model DIR`) on 127.0.0.1,
then times the same N images (mixed aspect ratios, greedy, one prompt, one budget):
  - locally, `TransformersBackend` one image at a time (batch_size=1);
  - over HTTP, `OpenAIBackend` with 1 and with 4 requests in flight.
Prints images/s per path and the HTTP overhead per image (HTTP at 1 in flight minus
local batch 1: PNG encoding, transfer, JSON, server-side decoding of the image), plus
how many answers are identical on both paths (greedy decoding, same weights).

    python -m eval.bench_openai [--model DIR] [--images 16] [--budget 280] [--new-tokens 16] [--repeats 3]

Both sides use the same number of CPU threads (`--threads`, default 1): on a small
shared machine, a tiny model in 2 OpenMP threads on the main thread runs several times
slower than in 1 thread (synchronisation costs more than the tiny matrix products), and
the server runs `generate` on a worker thread, so unequal settings would compare
threading, not HTTP.

`transformers serve` runs one `generate` at a time per model, so more requests in
flight overlap only the client/HTTP/preprocessing work; engines with continuous
batching (vLLM, SGLang) gain much more from concurrency.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from eval.bench_runtime import PROMPT, make_images
from vistool.runtime.openai_backend import OpenAIBackend
from vistool.runtime.types import GenerationRequest


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TransformersServe:
    """`transformers serve MODEL` in a subprocess on 127.0.0.1, as a context manager.

    Takes the model folder (or Hub id, offline: HF_HUB_OFFLINE=1 is set), the port (a
    free one by default), where to write the server's log, how long to wait for
    `/health`, and optionally the number of CPU threads (OMP_NUM_THREADS). Entering starts the server and returns the base URL ("http://127.0.0.1:P/v1");
    leaving stops it (SIGTERM, then SIGKILL after 15 s). Raises RuntimeError with the log
    tail when it exits early or does not come up in time.
    """

    def __init__(
        self,
        model: str | Path,
        port: int | None = None,
        log_path: Path | None = None,
        start_timeout: float = 120.0,
        threads: int | None = None,
    ) -> None:
        self.model = str(model)
        self.threads = threads
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="vistool-serve-")) / "serve.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _log_tail(self) -> str:
        """Return the last lines the server wrote."""
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> str:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "warning"}
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        command = [
            sys.executable, "-m", "transformers.cli.transformers", "serve", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--dtype", "float32",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.start_timeout
        health = f"http://127.0.0.1:{self.port}/health"
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"transformers serve exited with code {code}:\n{self._log_tail()}")
            try:
                if httpx.get(health, timeout=1.0).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"transformers serve did not answer /health in {self.start_timeout:g} s:\n{self._log_tail()}")
            time.sleep(0.25)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Return the fastest wall time of `repeats` calls of `run` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Parse arguments, start the server, time local vs HTTP at 1 and 4 in flight, print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: build the tiny model in a temp folder)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--budget", type=int, default=280)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads, same for the local model and the server")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from vistool.runtime.tiny import model_or_tiny
    from vistool.runtime.transformers_backend import TransformersBackend

    model_dir = model_or_tiny(args.model)
    images = make_images(args.images)
    requests = [GenerationRequest(PROMPT, images=[image], budget=args.budget, max_new_tokens=args.new_tokens) for image in images]

    local = TransformersBackend(model_dir, device="cpu", dtype="float32", batch_size=1)
    local.generate(requests[:2])  # warm-up
    local_texts = [response.text for response in local.generate(requests)]

    paths = ["local, batch 1", "HTTP, 1 in flight", "HTTP, 4 in flight"]
    times: dict[str, list[float]] = {name: [] for name in paths}
    extras: dict[str, tuple[float, int]] = {}
    with TransformersServe(model_dir, threads=args.threads) as base_url:
        remotes = {
            paths[1]: OpenAIBackend(model_dir, base_url, engine="transformers", max_concurrency=1),
            paths[2]: OpenAIBackend(model_dir, base_url, engine="transformers", max_concurrency=4),
        }
        for name, remote in remotes.items():
            remote.generate(requests[:2])  # warm-up (connections, server-side first call)
            responses = remote.generate(requests)
            failed = [response.error for response in responses if not response.ok]
            if failed:
                raise SystemExit(f"{len(failed)} HTTP requests failed, e.g.: {failed[0]}")
            encode = sum(response.timings["preprocess_s"] for response in responses) / len(responses)
            extras[name] = (encode, sum(response.text == text for response, text in zip(responses, local_texts)))
        # Interleave the paths and keep each one's fastest run, so that load from other
        # processes on the machine penalises none of them more than the others.
        for _ in range(args.repeats):
            times[paths[0]].append(best_time(lambda: local.generate(requests), 1))
            for name, remote in remotes.items():
                times[name].append(best_time(lambda: remote.generate(requests), 1))
        for remote in remotes.values():
            remote.close()
    local_s = min(times[paths[0]])
    rows = [(name, min(times[name]), extras.get(name)) for name in paths]

    print(
        f"model={model_dir} images={args.images} budget={args.budget} new_tokens={args.new_tokens} "
        f"threads={torch.get_num_threads()} repeats={args.repeats} (best run)"
    )
    print(f"{'path':<20} | {'seconds':>7} | {'img/s':>6} | {'ms/img vs local':>15} | {'PNG encode ms':>13} | same answers")
    for name, seconds, extra in rows:
        overhead = 1000 * (seconds - local_s) / args.images
        encode_ms = f"{1000 * extra[0]:13.1f}" if extra else f"{'-':>13}"
        same = f"{extra[1]}/{args.images}" if extra else "-"
        print(f"{name:<20} | {seconds:7.2f} | {args.images / seconds:6.2f} | {overhead:+15.1f} | {encode_ms} | {same}")


if __name__ == "__main__":
    main()
