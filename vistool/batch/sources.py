"""Where a batch's images come from: a folder, a glob pattern, or a text file of paths.

`collect_images(src)` turns any of the three into a sorted, de-duplicated list of image
paths plus the folder they are named relative to (`ImageSource.root`), which exports use
for file names (so `a/img.jpg` and `b/img.jpg` never collide).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vistool.errors import VistoolError
from vistool.io.files import FileCheckError, check_regular_file

# Extensions picked up when walking a folder or expanding a glob (case-insensitive).
# Every one of them is read by both Pillow (annotation; the first frame of a GIF) and
# OpenCV >= 4.12 (supervision's exporters).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ImageSource:
    """The images of a batch: `paths` (sorted by their name relative to `root`) and `root`."""

    paths: list[Path]
    root: Path

    def relative(self, path: Path) -> str:
        """Return `path` relative to `root`, with forward slashes (the name exports use)."""
        return relative_name(path, self.root)


def relative_name(path: Path, root: Path) -> str:
    """Return `path` relative to `root` with "/" separators (the absolute path when outside root)."""
    try:
        return Path(os.path.relpath(path, root)).as_posix() if _inside(path, root) else Path(path).resolve().as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_posix()


def _inside(path: Path, root: Path) -> bool:
    """True when `path` lies under `root` (compared as absolute paths)."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return absolute == base or base in absolute.parents


def is_image_name(path: str | Path) -> bool:
    """True when the file name ends with one of `IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def collect_images(
    src: str | Path | Sequence[str | Path], limit: int | None = None, exclude: str | Path | None = None
) -> ImageSource:
    """Turn a source into the list of images to process.

    Takes a folder (walked recursively; files with an image extension, hidden entries
    skipped), a glob pattern (`**` allowed; matches filtered by extension), a text file
    with one path per line (relative paths are relative to that file's folder; blank
    lines and `#` comments skipped; every listed file is kept, whatever its extension,
    so a missing or bad one is reported as a failure), or a list of paths. Anything
    named like an image that is not a regular file (a pipe, a device, a broken or
    looping symlink) is kept too, and fails as one item with its reason. `limit` keeps
    the first N after sorting; files under `exclude` (e.g. the output folder, when it
    lies inside the source folder) are left out. Returns an `ImageSource` sorted by
    relative name.
    Raises VistoolError when the source does not exist or holds no image.
    """
    if isinstance(src, (list, tuple)):
        paths = [Path(item) for item in src]
        root = _common_root(paths)
        what = "the list of paths"
    else:
        text = os.fspath(src)
        path = Path(text)
        if path.is_dir():
            paths, root, what = _walk(path), path, f"folder {text}"
        elif path.is_file() and not is_image_name(path):
            paths = _read_list(path)
            root, what = _common_root(paths), f"list file {text}"
        elif path.is_file() or (is_image_name(path) and os.path.lexists(text)):
            paths, root, what = [path], path.parent, f"file {text}"
        elif _GLOB_CHARS & set(text):
            paths = sorted(Path(match) for match in glob.glob(text, recursive=True) if is_image_name(match) and not os.path.isdir(match))
            root, what = _glob_root(text), f"pattern {text}"
        else:
            raise VistoolError(_not_a_source(text))
    unique = list({os.path.normpath(p): Path(os.path.normpath(p)) for p in paths}.values())
    if exclude is not None:
        unique = [p for p in unique if not _inside(p, Path(exclude))]
    root = _covering_root(root, unique)
    unique.sort(key=lambda p: relative_name(p, root))
    if limit is not None:
        if limit < 0:
            raise VistoolError(f"--limit must be >= 0 (got {limit})")
        unique = unique[:limit]
    if not unique:
        raise VistoolError(f"no images found in {what} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return ImageSource(unique, root)


def _not_a_source(text: str) -> str:
    """Say why `text` is neither a folder, a file nor a pattern (a symlink loop is not "no such file")."""
    if os.path.lexists(text):
        try:
            check_regular_file(text)
        except FileCheckError as exc:
            return f"cannot read {text}: {exc}"
    return f"no such folder, file or pattern: {text}"


def _walk(folder: Path) -> list[Path]:
    """Return the image files under `folder`, recursively, skipping hidden files and folders."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(folder, followlinks=False):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        found.extend(Path(directory) / name for name in sorted(files) if not name.startswith(".") and is_image_name(name))
    return found


def _read_list(list_file: Path) -> list[Path]:
    """Return the paths listed in a text file (relative ones taken from the file's folder)."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VistoolError(f"cannot read list file {list_file}: {exc}") from exc
    paths = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry).expanduser()
            paths.append(path if path.is_absolute() else list_file.parent / path)
    return paths


def _glob_root(pattern: str) -> Path:
    """Return the folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _covering_root(root: Path, paths: Sequence[Path]) -> Path:
    """Return `root` when every path lies under it, else the deepest folder above `root`
    and all the paths (a glob such as "a*/../../b/*.jpg" matches files outside its fixed
    prefix; naming them relative to the covering folder keeps ".." out of every name)."""
    if all(_inside(path, root) for path in paths):
        return root
    try:
        return Path(os.path.commonpath([os.path.abspath(root), *(os.path.abspath(p.parent) for p in paths)]))
    except ValueError:  # different drives: names fall back to absolute paths, made safe by the exporters
        return root


def _common_root(paths: Sequence[Path]) -> Path:
    """Return the deepest folder holding every path (the current folder for none)."""
    if not paths:
        return Path(".")
    try:
        return Path(os.path.commonpath([os.path.abspath(p.parent) for p in paths]))
    except ValueError:  # different drives
        return Path(".")
