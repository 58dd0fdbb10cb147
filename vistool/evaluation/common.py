"""Helpers shared by the evaluators: file reading, geometry, prediction alignment, tallies.

Conventions used throughout ``eval/``:

- A box is ``(x1, y1, x2, y2)`` in pixels of the ORIGINAL image (the convention of
  vistool's results). Readers convert whatever a dataset stores into this form.
- A point is ``(x, y)`` in the same pixels.
- Every sample that a reader yields has a string ``id`` and an ``image`` path; predictions
  are matched to samples by that id (or by position, when given as a plain sequence).
- A prediction that is missing or malformed is never an exception: it is scored as wrong
  and counted as a format error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

Box = tuple[float, float, float, float]
Point = tuple[float, float]
EdgeRule = Literal["inclusive", "half_open"]
BoxFormat = Literal["xyxy", "xywh"]

T = TypeVar("T")


class HasId(Protocol):
    """Anything with a string ``id``: the samples every reader yields."""

    id: str


# --------------------------------------------------------------------------- files


def read_json(path: str | Path) -> Any:
    """Read one JSON document from ``path`` (UTF-8) and return the parsed value."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file and return its objects, skipping blank lines.

    Raises ``ValueError`` naming the line number when a line is not valid JSON.
    """
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    return rows


def read_records(path: str | Path, list_key: str | None = None) -> list[dict[str, Any]]:
    """Read a list of records from a ``.jsonl`` file or a ``.json`` file.

    A ``.json`` file may hold a list, or an object whose ``list_key`` entry is the list
    (e.g. the ``details`` list of the official ScreenSpot-Pro log). Returns the records.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    data = read_json(path)
    if isinstance(data, list):
        return data
    if list_key is not None and isinstance(data, dict) and isinstance(data.get(list_key), list):
        return data[list_key]
    raise ValueError(f"{path}: expected a JSON list of records" + (f" or an object with {list_key!r}" if list_key else ""))


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented UTF-8 JSON to ``path`` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def resolve_image(name: str | Path, images_dir: str | Path) -> Path:
    """Return ``name`` as a path: unchanged when absolute, else joined onto ``images_dir``."""
    p = Path(name)
    return p if p.is_absolute() else Path(images_dir) / p


def take(items: Iterable[T], limit: int | None) -> list[T]:
    """Return the first ``limit`` items as a list (all of them when ``limit`` is None)."""
    items = list(items)
    if limit is None:
        return items
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return items[:limit]


# --------------------------------------------------------------------------- geometry


def as_number(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it is not a real number (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _numbers(value: Any, count: int) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        return None
    numbers = [as_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    return numbers  # type: ignore[return-value]


def parse_point(value: Any) -> Point | None:
    """Return ``value`` as an ``(x, y)`` point when it is a list/tuple of exactly 2 finite numbers, else None."""
    numbers = _numbers(value, 2)
    return None if numbers is None else (numbers[0], numbers[1])


def parse_box(value: Any, box_format: BoxFormat = "xyxy") -> Box | None:
    """Return ``value`` as an ``(x1, y1, x2, y2)`` box, or None when it is not 4 finite numbers.

    ``box_format`` says how ``value`` is written: ``"xyxy"`` (corners; reversed corners are
    put in order) or ``"xywh"`` (top-left corner, width, height; negative sizes are invalid).
    """
    numbers = _numbers(value, 4)
    if numbers is None:
        return None
    a, b, c, d = numbers
    if box_format == "xywh":
        if c < 0 or d < 0:
            return None
        return (a, b, a + c, b + d)
    if box_format != "xyxy":
        raise ValueError(f"unknown box format {box_format!r}")
    return (min(a, c), min(b, d), max(a, c), max(b, d))


def box_area(box: Box) -> float:
    """Return the area of an ``(x1, y1, x2, y2)`` box (0 for an empty one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: Box, b: Box) -> float:
    """Return the intersection-over-union of two ``(x1, y1, x2, y2)`` boxes (continuous coordinates, 0..1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_center(box: Box) -> Point:
    """Return the centre ``(x, y)`` of an ``(x1, y1, x2, y2)`` box."""
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def point_in_box(point: Point, box: Box, edges: EdgeRule = "inclusive") -> bool:
    """Return whether ``point`` lies inside ``box``.

    ``edges="inclusive"`` (the default and the official ScreenSpot rule):
    ``x1 <= x <= x2 and y1 <= y <= y2``, so a point on any edge counts as inside.
    ``edges="half_open"``: ``x1 <= x < x2 and y1 <= y < y2``. That is the inclusive rule
    applied to a point that was truncated to integer pixels before it was logged (an
    integer ``p`` stands for any real coordinate in ``[p, p + 1)``); use it to re-score
    logs whose predictions were stored as integers.
    """
    x, y = point
    if edges == "inclusive":
        return box[0] <= x <= box[2] and box[1] <= y <= box[3]
    if edges == "half_open":
        return box[0] <= x < box[2] and box[1] <= y < box[3]
    raise ValueError(f"unknown edge rule {edges!r}")


# --------------------------------------------------------------------------- predictions and tallies


def align_predictions(samples: Sequence[HasId], predictions: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    """Return one prediction per sample, in sample order.

    ``predictions`` is either a mapping from sample id to prediction (missing ids give
    None, scored later as format errors) or a sequence aligned with ``samples`` (it must
    have the same length).
    """
    if isinstance(predictions, Mapping):
        return [predictions.get(s.id) for s in samples]
    if isinstance(predictions, (str, bytes)) or not isinstance(predictions, Sequence):
        raise TypeError("predictions must be a mapping id -> prediction or a sequence aligned with the samples")
    if len(predictions) != len(samples):
        raise ValueError(f"{len(predictions)} predictions for {len(samples)} samples")
    return list(predictions)


def load_predictions(path: str | Path, keys: Sequence[str]) -> dict[str, Any]:
    """Read a predictions file (JSONL or a JSON list) into a mapping ``id -> prediction``.

    Each record needs an ``id``; its prediction is the value of the first of ``keys`` that
    the record has (None when it has none, which scores as a format error).
    """
    out: dict[str, Any] = {}
    for number, record in enumerate(read_records(path), start=1):
        if "id" not in record:
            raise ValueError(f"{path}: record {number} has no 'id'")
        out[str(record["id"])] = next((record[k] for k in keys if k in record), None)
    return out


def ratio(numerator: float, denominator: float) -> float | None:
    """Return ``numerator / denominator``, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


def accuracy_entry(flags: Sequence[bool]) -> dict[str, Any]:
    """Return ``{"n", "correct", "accuracy"}`` for a list of per-sample correct flags."""
    correct = sum(1 for f in flags if f)
    return {"n": len(flags), "correct": correct, "accuracy": ratio(correct, len(flags))}


def breakdown(keys: Sequence[Any], flags: Sequence[bool]) -> dict[str, dict[str, Any]]:
    """Group per-sample correct ``flags`` by ``keys`` and return ``{key: accuracy_entry}``.

    Samples whose key is None are left out; keys are turned into strings and sorted. A
    tuple key (for a cross breakdown such as group x ui_type) is joined with ``" / "``.
    """
    groups: dict[str, list[bool]] = {}
    for key, flag in zip(keys, flags, strict=True):
        if key is None or (isinstance(key, tuple) and any(k is None for k in key)):
            continue
        name = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        groups.setdefault(name, []).append(flag)
    return {name: accuracy_entry(groups[name]) for name in sorted(groups)}
