"""SIGTERM handled like Ctrl-C, so `kill PID` ends a run cleanly and resumably.

`with sigterm_as_interrupt(): ...` makes SIGTERM raise `Terminated` (a KeyboardInterrupt)
in the main thread: the code that saves work on Ctrl-C runs for it too, and
`interrupt_exit_code` tells the two apart (143 = 128 + SIGTERM, 130 = 128 + SIGINT).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere, where
    signal handlers cannot be set, nothing changes). The previous handler is restored after."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(exc: BaseException) -> int:
    """Return 143 for SIGTERM (`Terminated`), 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def interrupt_word(exc: BaseException) -> str:
    """Return "terminated" for SIGTERM, "interrupted" for Ctrl-C."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"
