"""A progress bar on stderr while a local model generates: tokens so far, the limit, tokens/s.

Single-image commands wrap their model call in `token_progress(backend)`; stdout keeps
only the result. Backends without a progress hook (servers) show nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def token_progress(backend: Any, enabled: bool | None = None, description: str = "generating") -> Iterator[None]:
    """Show a tqdm bar of generated tokens on stderr while the block runs.

    Takes the backend (it needs a `progress` attribute, as `TransformersBackend` has),
    whether to show it (None: when stderr is a terminal) and the bar's label. The bar is
    left on screen when generation ends, so its last line tells how long it took.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or not hasattr(backend, "progress"):
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=None, unit="tok", desc=description, file=sys.stderr, dynamic_ncols=True, mininterval=0.2)

    def update(generated: int, limit: int) -> None:
        if bar.total != limit:
            bar.total = limit
        if generated > bar.n:
            bar.update(generated - bar.n)

    previous = backend.progress
    backend.progress = update
    try:
        yield
    finally:
        backend.progress = previous
        bar.close()
