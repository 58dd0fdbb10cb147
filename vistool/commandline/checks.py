"""Checks of command-line values that must pass before any model loads.

Each raises `VistoolError` with a one-line message naming the option and what to do, so
a mistake costs a second, not a model load and a generation.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from vistool.errors import VistoolError


def check_save_path(path: Path | None) -> Path | None:
    """Refuse a --save path that cannot be written: a missing or unwritable folder, a
    folder given as the file, or a suffix Pillow cannot write. Returns the path."""
    if path is None:
        return None
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise VistoolError(f"--save {path}: is a folder; give a file name such as {path / 'drawn.png'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise VistoolError(f"--save {path}: folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise VistoolError(f"--save {path}: folder {folder} is not writable")
    extensions = Image.registered_extensions()
    if path.suffix.lower() not in extensions or extensions[path.suffix.lower()] not in Image.SAVE:
        raise VistoolError(f"--save {path}: unknown image type {path.suffix or '(no suffix)'!r}; use .png, .jpg or .webp")
    return path


def check_port_free(host: str, port: int) -> None:
    """Refuse a --host/--port pair that cannot be bound (in use, or not this machine's address)."""
    if not 0 < port < 65536:
        raise VistoolError(f"--port {port}: use a port between 1 and 65535")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise VistoolError(f"port {port} on {host} is already in use (another demo?); pick a free one with --port") from exc
        raise VistoolError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
