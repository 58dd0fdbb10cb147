"""Output names that cannot leave OUT, and an OUT that can be written.

Every file an export writes for one image (a drawing, a YOLO label, a VOC xml) is named
after the image's name relative to the source root. That name comes from the user's
input (a folder walk, a glob, a list file), so it is cleaned here, once, before any
writer sees it: `safe_name` makes it a relative POSIX path with no `..`, no absolute
root, no empty or `.` parts; `unique_safe_names` gives every distinct image its own
name even when two names become equal after cleaning; `path_inside` joins a name to a
folder and refuses a result that would lie outside it (the last guard before a write).
`check_writable_folder` proves OUT can be written before any model is loaded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from vistool.errors import VistoolError

PARENT_STAND_IN = "__"  # what a ".." part becomes


def safe_name(name: str) -> str:
    """Return `name` as a relative POSIX path that stays inside any folder it is joined to.

    Takes an image name ("sub/a.jpg", "../x/a.jpg", "/abs/a.jpg", "C:\\\\a.jpg").
    Returns it with the root, drive, empty and "." parts dropped, ".." parts replaced by
    "__" and NUL characters by "_" ("x/a.jpg", "__/x/a.jpg", "abs/a.jpg"). Never empty.
    """
    text = str(name).replace("\x00", "_")
    if os.sep != "/":
        text = text.replace(os.sep, "/")
    parts = []
    for part in PurePosixPath(text).parts:
        if part in ("/", "", "."):
            continue
        if part == "..":
            part = PARENT_STAND_IN
        elif len(part) == 2 and part[1] == ":":  # a Windows drive ("C:")
            part = part[0]
        parts.append(part)
    return "/".join(parts) or "_"


def unique_safe_names(names: Iterable[str]) -> dict[str, str]:
    """Map each distinct name to its safe output name, no two the same.

    Takes image names (repeats allowed: the same image listed twice keeps one name).
    Returns {name: safe name}; where two names clean to the same text, the later one (in
    sorted order, so the choice is deterministic) gets "~2", "~3", ... before its suffix.
    """
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(set(names)):
        candidate = base = safe_name(name)
        number = 1
        while candidate in taken:
            number += 1
            path = PurePosixPath(base)
            candidate = str(path.with_name(f"{path.stem}~{number}{path.suffix}"))
        taken.add(candidate)
        mapping[name] = candidate
    return mapping


def path_inside(folder: Path, name: str) -> Path:
    """Return `folder / name`, proven to lie inside `folder`.

    Takes the output folder and a relative name (normally from `safe_name`). Returns the
    joined path. Raises VistoolError when the result, with symlinks resolved, is not
    under `folder` (an absolute name, "..", or a symlink inside `folder` leading out).
    """
    target = folder / name
    base = folder.resolve()
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise VistoolError(f"refusing to write {target}: it lies outside the output folder {folder}")
    return target


def check_writable_folder(folder: Path, files: Sequence[str] = ()) -> None:
    """Make sure `folder` is a folder this process can write into, before any work starts.

    Takes the folder (created, with its parents, when missing) and the names of files
    the run will write there. Each of those must be a regular file or absent (a folder
    in the way is refused); then a probe file is written, synced and deleted, which
    catches what mode bits do not show (a read-only mount, an immutable folder, a full
    disk). Raises VistoolError with one line naming the folder and the problem.
    """
    what = f"cannot write to the output folder {folder}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise VistoolError(f"{what}: it exists and is not a folder") from exc
    except OSError as exc:
        raise VistoolError(f"{what}: {exc.strerror or exc}") from exc
    if not folder.is_dir():
        raise VistoolError(f"{what}: it exists and is not a folder")
    for name in files:
        target = folder / name
        if target.is_dir():
            raise VistoolError(f"{what}: {target} is a folder, where the run writes a file (move it away)")
        if target.exists() and not target.is_file():
            raise VistoolError(f"{what}: {target} is not a regular file (move it away)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vistool-probe-", dir=folder)
    except OSError as exc:
        raise VistoolError(f"{what}: {exc.strerror or exc}") from exc
    try:
        os.write(fd, b"vistool")
        os.fsync(fd)
    except OSError as exc:
        raise VistoolError(f"{what}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
        try:
            os.unlink(probe)
        except OSError:
            pass
