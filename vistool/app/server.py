"""Start the demo: load a model, build the app, serve it (on 127.0.0.1 unless told otherwise).

    python demos/app.py --model google/gemma-4-E2B-it
    vistool demo --backend openai --base-url http://127.0.0.1:8000/v1 --model google/gemma-4-E2B-it
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import tempfile
import time
from typing import Any

from vistool.errors import VistoolError

DEFAULT_MODEL = "google/gemma-4-E2B-it"
MAX_UPLOAD = "200mb"

logger = logging.getLogger(__name__)


def serve(
    model: str = DEFAULT_MODEL,
    *,
    backend: str = "transformers",
    base_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    tiny: bool = False,
    max_queue: int = 32,
    profile: str | None = None,
    structured: bool = True,
    **backend_options: Any,
) -> None:
    """Load the model and serve the demo until interrupted.

    Takes the model (Hub id or folder; the served name with backend="openai"), the backend
    ("transformers" or "openai") and its server URL, the address and port to bind
    (127.0.0.1 by default: only this machine can connect), whether to ask Gradio for a
    public share link (off unless asked), the device and dtype for local runs, `tiny`
    (build a tiny random-weight model instead, of the `profile` family when given: its
    answers are noise, for trying the UI offline), the queue length, the model family
    profile (None: read from the checkpoint) and whether answers are held to their JSON
    schema by default (each tab has a checkbox); further backend options (timeout=,
    retries=, api_key_env= for "openai") go to `vistool.load`. Returns when the server
    stops. Raises VistoolError when the address cannot be served (a port in use is found
    before any model loads) or the model cannot load.
    """
    check_port(host, port)  # a busy port fails now, not after minutes of model loading
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from vistool.api import load
    from vistool.app.ui import build_app
    started = time.perf_counter()
    if tiny:
        from vistool.runtime.tiny import make_tiny_model

        model = str(make_tiny_model(tempfile.mkdtemp(prefix="vistool-tiny-"), family=profile or "gemma4"))
        backend, device = "transformers", device or "cpu"
    vt = load(model, backend=backend, base_url=base_url, device=device, dtype=dtype, profile=profile, structured=structured,
              **backend_options)
    logger.info("model %s loaded in %.1f s", model, time.perf_counter() - started)
    demo = build_app(vt, max_queue=max_queue)
    try:  # quiet: Gradio's own banner tells a script author to edit launch(); ours says what to type
        _, local_url, share_url = demo.launch(server_name=host, server_port=port, share=share, show_error=True,
                                              max_file_size=MAX_UPLOAD, quiet=True, prevent_thread_lock=True)
    except OSError as exc:  # the port was taken while the model loaded
        raise VistoolError(f"cannot serve on {host}:{port}: {exc}; pick a free port with --port") from exc
    print(f"vistool demo on {local_url}", file=sys.stderr, flush=True)
    if share_url:
        print(f"public link: {share_url} (anyone with it can use this model)", file=sys.stderr, flush=True)
    elif share:
        print("no public link could be made (Gradio's share server is unreachable)", file=sys.stderr, flush=True)
    elif host in ("127.0.0.1", "localhost", "::1"):
        print("only this machine can connect; `vistool demo --share` asks Gradio for a public link", file=sys.stderr,
              flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()


def check_port(host: str, port: int) -> None:
    """Raise VistoolError, naming the address, when `port` on `host` cannot be listened on.

    Takes the address and port the demo is to bind. A port another program listens on
    (another demo, a server) is "in use"; an unknown host or a port the user may not
    bind gets its own reason. Binding is tried once and released at once, so the
    check costs nothing and runs before the model loads.
    """
    if not 0 < port < 65536:
        raise VistoolError(f"--port must be between 1 and 65535 (got {port})")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise VistoolError(f"cannot serve the demo on {host}:{port}: unknown address ({exc.strerror or exc})") from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: a closing socket is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise VistoolError(f"port {port} on {host} is in use (another demo or server?); choose another with --port") from exc
            raise VistoolError(f"cannot serve the demo on {host}:{port}: {exc.strerror or exc}") from exc


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (`--model`, `--profile`, `--backend`, `--base-url`, `--host`,
    `--port`, `--share`, `--device`, `--dtype`, `--tiny`, `--max-queue`, `--structured`) and serve the demo."""
    parser = argparse.ArgumentParser(description="vistool demo app (Gradio)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face id or local folder (served name for openai)")
    parser.add_argument("--profile", default=None, help="model family (default: read from the checkpoint)")
    parser.add_argument("--backend", default="transformers", choices=["transformers", "openai"])
    parser.add_argument("--base-url", default=None, help="server URL for --backend openai")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    parser.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: best available)")
    parser.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 for a local model (default: per device)")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random model (noise answers) to try the UI offline")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait for the model")
    parser.add_argument("--structured", action=argparse.BooleanOptionalAction, default=True,
                        help="hold answers to the task's JSON schema by default (--no-structured: free)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        serve(args.model, backend=args.backend, base_url=args.base_url, host=args.host, port=args.port,
              share=args.share, device=args.device, dtype=args.dtype, tiny=args.tiny, max_queue=args.max_queue,
              profile=args.profile, structured=args.structured)
    except VistoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
