"""`vistool demo` on a port that is taken: one line and exit 2, before any model loads (issue 20, item 10)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from vistool.app.server import check_port
from vistool.errors import VistoolError


@pytest.fixture
def taken_port():
    """A port that another program listens on, for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


@pytest.mark.timeout(120)
def test_demo_on_a_busy_port_is_one_line_and_exit_2(taken_port: int, tmp_path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "vistool.cli", "demo", "--tiny", "--port", str(taken_port)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=100,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (  # the one line: no traceback, and no model built or loaded first
        f"error: port {taken_port} on 127.0.0.1 is in use (another demo or server?); choose another with --port"
    )


def test_check_port_accepts_a_free_port_and_names_a_bad_one(taken_port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as spare:
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
    check_port("127.0.0.1", free)
    with pytest.raises(VistoolError, match="is in use"):
        check_port("127.0.0.1", taken_port)
    with pytest.raises(VistoolError, match="between 1 and 65535"):
        check_port("127.0.0.1", 70000)
