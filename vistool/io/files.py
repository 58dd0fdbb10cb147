"""Input files, checked before a byte is read: only regular files, no larger than a cap.

A path named like an image can be anything: a named pipe (opening it blocks until some
other process writes), a link to /dev/zero (endless), a 6 GB file that is not an image,
a symlink loop, a dangling link. `open_regular_file` refuses all of them with a reason
that says what the path is, and opens the rest without blocking (the type is checked
again on the open handle, so a file swapped for a pipe in between is still refused).
`sha256_of` hashes a file in chunks, never holding it whole in memory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

from vistool.errors import VistoolError

# Input files larger than this are refused before anything is read. Change it here
# (``vistool.io.files.MAX_FILE_BYTES = ...``); it is read at call time.
MAX_FILE_BYTES: int = 1 << 30

_CHUNK = 1 << 20
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileCheckError(VistoolError):
    """A path that is not a readable regular file; the message is the reason alone."""


def check_regular_file(path: str, max_bytes: int | None = None, what: str = "file") -> os.stat_result:
    """Return the status of `path` when it is a regular file of at most `max_bytes` bytes.

    Takes the path (symlinks are followed), the size cap (None: `MAX_FILE_BYTES`) and
    what the file should be, for messages ("image file"). Raises FileCheckError with the
    reason: no such file, a dangling or looping symlink, permission denied, a folder, a
    pipe, a device or a socket, or too large. Nothing is opened.
    """
    try:
        status = os.stat(path)
    except OSError as exc:
        raise FileCheckError(_stat_reason(path, exc)) from exc
    _check_status(status, max_bytes, what)
    return status


def open_regular_file(path: str, max_bytes: int | None = None, what: str = "file") -> tuple[BinaryIO, int]:
    """Open `path` for reading when `check_regular_file` accepts it; return (handle, size).

    The open never blocks (a pipe swapped in after the check opens at once and is then
    refused by the same check on the handle). Raises FileCheckError like
    `check_regular_file`; the caller closes the handle.
    """
    check_regular_file(path, max_bytes, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileCheckError(_stat_reason(path, exc)) from exc
    try:
        status = os.fstat(fd)
        _check_status(status, max_bytes, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), status.st_size
    except BaseException:
        os.close(fd)
        raise


def sha256_of(handle: BinaryIO) -> str:
    """Return the hex sha256 of everything left in `handle`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _check_status(status: os.stat_result, max_bytes: int | None, what: str) -> None:
    """Raise FileCheckError unless `status` is a regular file within the size cap."""
    if stat.S_ISDIR(status.st_mode):
        raise FileCheckError(f"is a directory, not {_article(what)}")
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
        raise FileCheckError(f"is {kind}, not a regular {what}; only regular files are read")
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if status.st_size > limit:
        raise FileCheckError(
            f"{what} is {status.st_size} bytes, over the limit of {limit} bytes (raise vistool.io.files.MAX_FILE_BYTES to allow it)"
        )


def _stat_reason(path: str, exc: OSError) -> str:
    """Say in words why `path` could not be looked at."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"broken symbolic link (it points to {target}, which does not exist)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def _article(what: str) -> str:
    """Return "an image file" / "a video file"."""
    return ("an " if what[:1] in "aeiou" else "a ") + what


__all__ = ["MAX_FILE_BYTES", "FileCheckError", "check_regular_file", "open_regular_file", "sha256_of"]
