"""Read and check a benchmark's input files before any model loads.

A wrong file (JSON lines where a JSON list is expected, a predictions file given as
annotations, a folder of the wrong images) is refused here, in one line naming the file,
what was wrong and the format expected, instead of after minutes of model loading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vistool.errors import VistoolError

# What each benchmark's data file must look like (said when it does not).
FORMATS: dict[str, str] = {
    "coco": "a COCO instances JSON: an object with 'images' (id, file_name, width, height), "
            "'annotations' (image_id, category_id, bbox [x, y, w, h]) and 'categories' (id, name)",
    "screenspot": "ScreenSpot annotations: a JSON list (or a folder of JSON lists, as ScreenSpot-Pro's "
                  "annotations/) of entries with 'img_filename', 'instruction' and 'bbox'",
    "ocr": "a JSONL file, one {\"image\": FILE, \"text\": REFERENCE} object per line",
    "refexp": "a JSONL file, one {\"image\": FILE, \"expression\" (or \"sentences\"): TEXT, "
              "\"bbox\": [x, y, w, h]} object per line",
}


def read_input(benchmark: str, flag: str, path: str | Path, read: Callable[[], Any]) -> Any:
    """Run `read()` (a benchmark reader) and return what it returns; turn any failure into a
    VistoolError naming `flag`, the file, what went wrong and the expected format.

    Also refuses a missing file and a file with no samples.
    """
    path = Path(path)
    if not path.exists():
        raise VistoolError(f"{flag} {path}: no such file or folder")
    try:
        data = read()
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
        detail = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
        hint = ""
        if path.suffix == ".jsonl" and benchmark in ("coco", "screenspot"):
            hint = " (this looks like a JSON-lines file)"
        raise VistoolError(f"{flag} {path}: not {FORMATS[benchmark]}{hint}; {detail}") from exc
    if len(data) == 0:
        raise VistoolError(f"{flag} {path}: holds no samples (expected {FORMATS[benchmark]})")
    return data


def check_images(images: Sequence[Path], flag: str = "--images", folder: str | Path | None = None) -> int:
    """Refuse a run in which none of the images exist (a wrong --images folder); return how
    many are missing (those fail one by one as unreadable)."""
    unique = list(dict.fromkeys(Path(image) for image in images))
    missing = [image for image in unique if not image.is_file()]
    if unique and len(missing) == len(unique):
        where = f"{flag} {folder}" if folder is not None else "the data file's folder"
        raise VistoolError(
            f"none of the {len(unique)} images exist (e.g. {missing[0]}): check {where}"
            + ("" if folder is not None else f" or give {flag} FOLDER")
        )
    return len(missing)
