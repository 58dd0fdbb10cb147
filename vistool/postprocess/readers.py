"""Answer readers: text -> raw items in the model's own coordinates.

Two readers serve every family; a profile picks one per kind and configures it with
its keys or its location-token syntax:
  - `read_json`: JSON answers (Gemma 4, Gemini, Qwen3-VL, Qwen2.5-VL), via
    `extract_json_items`; items that lack the family's own keys are read through the
    variants its profile declares (vistool.profiles.variants: other keys, a label ->
    box dict, several points under one key, OCR quads), never the other way round;
  - `read_loc_tokens`: location-token answers (PaliGemma 2, Florence-2).
Readers never map coordinates (vistool.postprocess.geometry does) and never raise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import chain, repeat
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any

import numpy as np

from vistool.postprocess.diagnostics import (
    BAD_COORDINATES,
    INCOMPLETE_TOKENS,
    MISSING_COORDINATES,
    NOT_AN_ITEM,
    TRUNCATED,
    Diagnostics,
    snippet,
)
from vistool.postprocess.extract import Span, answer_regions, extract_json_items

if TYPE_CHECKING:
    from vistool.profiles.base import ModelProfile
    from vistool.profiles.variants import AnswerVariants



def coords_per_item(profile: "ModelProfile", kind: str) -> int:
    """How many numbers one item of `kind` carries: 2 (point), 4 (box) or 8 (quad)."""
    if kind == "points":
        return 2
    return 8 if kind == "ocr_regions" and profile.ocr_quads else 4
_SPLIT_NUMBERS = re.compile(r"[\s,;\[\]()]+")
_CUT_TAIL = re.compile(r"\s*(<[^>]*)?")  # nothing, or a token cut in half: the answer was truncated


@dataclass
class RawItems:
    """Items read from an answer, before mapping to pixels.

    coords: float array (n, k), numbers as the model wrote them (its order and scale);
    k is 2 (point), 4 (box) or 8 (quad). labels: label or OCR text per item (None when
    absent). confidence: a score the model wrote per item (None when absent).
    spans: (start, end) of each item in the original text, or None.
    diagnostics: drops and repairs so far.
    """

    coords: np.ndarray
    labels: list[str | None] = field(default_factory=list)
    confidence: list[float | None] = field(default_factory=list)
    spans: list[Span | None] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def _numbers(value: Any, count: int) -> list[float] | None:
    """Return `value` as `count` floats, or None.

    Accepts a list of numbers or numeric strings, a list of pairs ([[y1, x1], [y2, x2]]),
    or one string of numbers ("171, 75, 245, 308"). Booleans count as 0/1, as in Python
    and numpy (the fast path converts whole answers with numpy).
    """
    if isinstance(value, str):
        value = [part for part in _SPLIT_NUMBERS.split(value) if part]
    if not isinstance(value, (list, tuple)):
        return None
    if len(value) != count and all(isinstance(part, (list, tuple)) for part in value):
        value = [number for part in value for number in part]
    if len(value) != count:
        return None
    numbers: list[float] = []
    for number in value:
        if not isinstance(number, (int, float, str)):
            return None
        try:
            numbers.append(float(number))
        except (ValueError, OverflowError):  # not a number, or an integer beyond any float
            return None
    return numbers


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """Return the value of the first of `keys` present in `item`, or None."""
    for key in keys:
        value = item.get(key)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    """Return a label as a stripped string (None when missing or empty)."""
    if value is None:
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None


def _score(value: Any) -> float | None:
    """Return a model-written score as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if math.isfinite(score) else None


def _answer_keys(profile: "ModelProfile", kind: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Return (own coordinate keys, variant coordinate keys, label keys, variant label keys) for `kind`."""
    variants = profile.variants
    if kind == "points":
        own, extra = profile.point_keys, variants.point_keys
    elif kind == "ocr_regions":
        own, extra = profile.box_keys, variants.box_keys + variants.quad_keys
    else:
        own, extra = profile.box_keys, variants.box_keys
    labels, extra_labels = (profile.text_keys, variants.text_keys) if kind == "ocr_regions" else (profile.label_keys, variants.label_keys)
    return own, tuple(k for k in extra if k not in own), labels, tuple(k for k in extra_labels if k not in labels)


def read_json(text: str, profile: "ModelProfile", kind: str) -> RawItems:
    """Read a JSON answer of `kind` ("boxes", "points", "ocr_regions").

    Takes the answer text and the family's profile (keys, variants, thinking markers).
    Returns the items as `RawItems`: coordinates are the numbers under the profile's box
    or point key (or a bare list of numbers), labels come from its label keys (text keys
    for OCR). Items written another way are read through the profile's declared
    variants (vistool.profiles.variants), only where the family's own keys are absent.
    """
    coord_keys, variant_keys, label_keys, variant_labels = _answer_keys(profile, kind)
    variants = profile.variants
    all_labels = label_keys + variant_labels
    extraction = extract_json_items(text, coord_keys, profile.thought_markers)
    items, diagnostics = extraction.items, extraction.diagnostics
    if set(map(type, items)) == {dict} and all(map(dict.__contains__, items, repeat(coord_keys[0]))):
        rows, labels, scores = _read_uniform(items, coord_keys[0], all_labels, profile.confidence_keys, text)
        spans = list(extraction.spans)
    else:
        rows, labels, scores, spans = [], [], [], []
        for item, span in zip(items, extraction.spans):
            if type(item) is dict:
                coords = _first(item, coord_keys)
                if coords is None and variant_keys:
                    coords = _first(item, variant_keys)
                if coords is None:
                    expanded = _label_dict(item, text, span, 2 if kind == "points" else 4) if variants.label_dict else None
                    if expanded:
                        for label, box, sub_span in expanded:
                            rows.append(box)
                            labels.append(label)
                            scores.append(None)
                            spans.append(sub_span)
                        continue
                    diagnostics.drop(MISSING_COORDINATES, f"no {' or '.join(coord_keys)}", _item_text(text, span), span)
                    continue
                label, score = _text(_first(item, all_labels)), _score(_first(item, profile.confidence_keys))
            elif type(item) is list:
                coords, label, score = item, None, None
            else:
                diagnostics.drop(NOT_AN_ITEM, "not an object or a coordinate list", _item_text(text, span), span)
                continue
            rows.append(coords)
            labels.append(label)
            scores.append(score)
            spans.append(span)
    count = coords_per_item(profile, kind)
    if kind == "points" and variants.point_lists:
        _expand_point_lists(rows, labels, scores, spans)
    if kind == "ocr_regions" and count == 4 and variants.json_quads and _has_quads(rows):
        rows, count = [_as_quad(row, profile) for row in rows], 8
    coords_array = _to_array(rows, count, labels, scores, spans, text, diagnostics)
    return RawItems(coords_array, labels, scores, spans, diagnostics)


def _is_numbers(value: Any, count: int) -> bool:
    """True when `value` is a list of `count` numbers (not booleans)."""
    return (
        type(value) is list
        and len(value) == count
        and all(isinstance(number, (int, float)) and not isinstance(number, bool) for number in value)
    )


def _label_dict(item: dict[str, Any], text: str, span: Span | None, count: int) -> list[tuple[str, list[Any], Span | None]] | None:
    """Read `{"cat": [y1, x1, y2, x2], "dog": [[...], [...]]}`: one (label, coordinates, span) per box.

    Returns None unless every value is one list of `count` numbers or a list of such
    lists (then the object is not a label -> box dict). Each box's span runs from its
    label's opening quote to the end of its value, found in the item's text.
    """
    found: list[tuple[str, list[Any], Span | None]] = []
    if not item:
        return None
    cursor = span[0] if span else 0
    stop = span[1] if span else 0
    for key, value in item.items():
        if _is_numbers(value, count):
            boxes = [value]
        elif type(value) is list and value and all(_is_numbers(part, count) for part in value):
            boxes = value
        else:
            boxes = None
        label = _text(key)
        if boxes is None or label is None:
            return None
        sub_span: Span | None = None
        if span is not None:
            quoted = json_quote(key)
            start = text.find(quoted, cursor, stop)
            if start >= 0:
                end = _value_end(text, start + len(quoted), stop)
                sub_span, cursor = (start, end), end
        found.extend((label, box, sub_span) for box in boxes)
    return found


def json_quote(key: str) -> str:
    """Return `key` as a JSON string literal (how the model wrote it in the common case)."""
    return json.dumps(key, ensure_ascii=False)


def _value_end(text: str, start: int, stop: int) -> int:
    """Return the end of the bracketed value after position `start` (a key's closing quote)."""
    depth = 0
    for position in range(start, stop):
        char = text[position]
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return position + 1
    return stop


def _expand_point_lists(rows: list[Any], labels: list[str | None], scores: list[float | None], spans: list[Span | None]) -> None:
    """Give one item per point to every row that holds several points ([[y, x], [y, x], ...]), in place."""
    if not any(type(row) is list and len(row) > 1 and all(_is_numbers(part, 2) for part in row) for row in rows):
        return
    new: tuple[list[Any], list[str | None], list[float | None], list[Span | None]] = ([], [], [], [])
    for row, label, score, span in zip(rows, labels, scores, spans):
        parts = row if type(row) is list and len(row) > 1 and all(_is_numbers(part, 2) for part in row) else [row]
        for part in parts:
            for column, value in zip(new, (part, label, score, span)):
                column.append(value)
    rows[:], labels[:], scores[:], spans[:] = new


def _has_quads(rows: list[Any]) -> bool:
    """True when some row is an 8-number quadrilateral (flat, or 4 pairs)."""
    return any(_numbers(row, 8) is not None for row in rows)


def _as_quad(row: Any, profile: "ModelProfile") -> Any:
    """Return a box row as the 8 numbers of its corners in the family's order (a quad row unchanged).

    The corners go top-left, top-right, bottom-right, bottom-left, as
    `geometry.boxes_to_quads` lays them out once in pixels.
    """
    box = _numbers(row, 4)
    if box is None:
        return row
    a, b, c, d = box
    if profile.coords.order == "yx":  # [y1, x1, y2, x2] -> (y1, x1) (y1, x2) (y2, x2) (y2, x1)
        return [a, b, a, d, c, d, c, b]
    return [a, b, c, b, c, d, a, d]  # [x1, y1, x2, y2] -> (x1, y1) (x2, y1) (x2, y2) (x1, y2)


def _read_uniform(
    items: list[dict[str, Any]], coord_key: str, label_keys: tuple[str, ...], score_keys: tuple[str, ...], text: str
) -> tuple[list[Any], list[str | None], list[float | None]]:
    """Read items that all hold `coord_key` (the common case), with C-speed map calls.

    Returns (coordinate rows, labels, scores), one per item.
    """
    rows = list(map(itemgetter(coord_key), items))
    labels = list(map(methodcaller("get", label_keys[0]), items)) if label_keys else [None] * len(items)
    if None in labels and len(label_keys) > 1:
        labels = [_first(item, label_keys) for item in items]
    if set(map(type, labels)) == {str}:
        labels = list(map(str.strip, labels))
        if "" in labels:
            labels = [label or None for label in labels]
    else:
        labels = list(map(_text, labels))
    scores: list[float | None] = [None] * len(items)
    if any(key in text for key in score_keys):  # a cheap test before looking in every item
        scores = [_score(_first(item, score_keys)) for item in items]
    return rows, labels, scores


def _item_text(text: str, span: Span | None) -> str:
    """Return an excerpt of an item for a report."""
    return snippet(text, span[0], span[1]) if span else ""


def _to_array(
    rows: list[Any],
    count: int,
    labels: list[str | None],
    scores: list[float | None],
    spans: list[Span | None],
    text: str,
    diagnostics: Diagnostics,
) -> np.ndarray:
    """Turn coordinate rows into a float array (n, count), dropping rows that are not numbers.

    The common case (every row a list of `count` numbers) is one numpy call; otherwise
    rows are checked one by one, and `labels`, `scores` and `spans` are filtered in step.
    """
    if not rows:
        return np.empty((0, count), dtype=np.float64)
    try:
        if set(map(type, rows)) == {list} and set(map(len, rows)) == {count}:  # one flat pass: every row `count` numbers
            flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=count * len(rows))
            return flat.reshape(len(rows), count)
    except (ValueError, TypeError, OverflowError):
        pass
    kept: list[list[float]] = []
    keep_index: list[int] = []
    for index, row in enumerate(rows):
        numbers = _numbers(row, count)
        if numbers is None:
            diagnostics.drop(
                BAD_COORDINATES, f"expected {count} numbers, got {str(row)[:40]}", _item_text(text, spans[index]), spans[index]
            )
            continue
        kept.append(numbers)
        keep_index.append(index)
    labels[:] = [labels[i] for i in keep_index]
    scores[:] = [scores[i] for i in keep_index]
    spans[:] = [spans[i] for i in keep_index]
    return np.array(kept, dtype=np.float64).reshape(len(kept), count)


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    """Compile a regex once."""
    return re.compile(pattern)


def _clean_label(piece: str, profile: "ModelProfile") -> str | None:
    """Remove special and skipped tokens and separators from a label; None when empty."""
    fmt = profile.loc_format
    if fmt is not None and fmt.skip:
        piece = _compiled(fmt.skip).sub("", piece)
    for token in profile.strip_tokens:
        piece = piece.replace(token, "")
    if fmt is not None and fmt.separator:
        piece = piece.replace(fmt.separator, " ")
    return _text(piece)


def read_loc_tokens(text: str, profile: "ModelProfile", kind: str) -> RawItems:
    """Read a location-token answer: runs of tokens, a group per item, with a label.

    Takes the answer text, the profile (its `loc_format` says the token syntax and on
    which side the label sits) and the kind (it fixes the tokens per item: 4 for a box,
    8 for a quad, 2 for a point).
    A run of tokens holding several groups gives several items with the same label
    (Florence-2 writes `car<box><box>`); a run that is not a whole number of groups
    loses its incomplete group, reported as dropped.
    """
    fmt = profile.loc_format
    group = coords_per_item(profile, kind)
    diagnostics = Diagnostics()
    rows: list[list[float]] = []
    labels: list[str | None] = []
    spans: list[Span | None] = []
    if fmt is None:
        return RawItems(np.empty((0, group)), diagnostics=diagnostics)
    token = _compiled(fmt.token)
    for region_start, region_end in answer_regions(text, profile.thought_markers, diagnostics):
        runs: list[list[re.Match[str]]] = []
        for match in token.finditer(text, region_start, region_end):
            if runs and runs[-1][-1].end() == match.start():
                runs[-1].append(match)
            else:
                runs.append([match])
        for index, run in enumerate(runs):
            if fmt.label_side == "before":
                label_start = runs[index - 1][-1].end() if index else region_start
                label_end = run[0].start()
            else:
                label_start = run[-1].end()
                label_end = runs[index + 1][0].start() if index + 1 < len(runs) else region_end
                if fmt.separator:
                    cut = text.find(fmt.separator, label_start, label_end)
                    label_end = cut if cut >= 0 else label_end
            label = _clean_label(text[label_start:label_end], profile)
            whole = len(run) - len(run) % group
            for first in range(0, whole, group):
                tokens = run[first : first + group]
                start, end = tokens[0].start(), tokens[-1].end()
                if fmt.label_side == "before" and first == 0:
                    start = label_start
                elif fmt.label_side == "after" and first + group == whole:
                    end = label_end
                rows.append([float(t.group(1)) for t in tokens])
                labels.append(label)
                spans.append((start, end))
            if whole < len(run):
                start, end = run[whole].start(), run[-1].end()
                at_end = _CUT_TAIL.fullmatch(text, end, region_end) is not None
                if at_end:
                    diagnostics.truncated = True
                diagnostics.drop(
                    TRUNCATED if at_end else INCOMPLETE_TOKENS,
                    f"{len(run) - whole} location tokens where {group} make an item",
                    snippet(text, start, end),
                    (start, end),
                )
    coords = np.array(rows, dtype=np.float64).reshape(len(rows), group)
    return RawItems(coords, labels, [None] * len(rows), spans, diagnostics)


# Reader tables shared by the profiles: kind -> function(text, profile).
JSON_READERS = {kind: partial(read_json, kind=kind) for kind in ("boxes", "points", "ocr_regions")}
LOC_READERS = {kind: partial(read_loc_tokens, kind=kind) for kind in ("boxes", "ocr_regions")}
