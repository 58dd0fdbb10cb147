"""Checks of command-line values that must pass before any model loads.

Each raises `VistoolError` with a one-line message naming the option and what to do, so
a mistake costs a second, not a model load and a generation.
"""

from __future__ import annotations

import os
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

