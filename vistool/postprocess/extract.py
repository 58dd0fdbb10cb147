"""Answer text -> JSON items, each with its character span in the original text.

Models wrap their JSON in every way imaginable: ```json fences (one or several), prose
before and after, a thinking channel, trailing commas, single quotes, a bare object, a
`{"boxes": [...]}` wrapper, or a list cut off by the token limit. `extract_json_items`
salvages every complete item and never raises.

Design: the answer regions are found first (outside thinking channels, inside fences
when there are any). In each region a fast path decodes a JSON list element by element
with the standard library's C scanner, which also yields each element's span. When that
fails, the slow path (`vistool.postprocess.salvage`) scans the brackets (quote-aware) for
the structure and the span of every item; each closed item is decoded on its own, by
`json.loads` or, when that fails, by the json_repair library. An item the text never
closes was cut off: it is dropped and reported, never "completed" into made-up
coordinates.

Bounded work: every step is linear in the answer's length, so hostile text (random
bytes, a label full of escaped quotes, deep nesting) costs about as much per kilobyte
as a real answer. Only the first MAX_ANSWER_CHARS characters are read; json_repair runs
within the bounds of `vistool.postprocess.repair` (an item it may not repair is dropped
as unparseable, with the reason).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

try:  # optional: a faster decoder for the common case (strict JSON filling its fence)
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_loads = None

from vistool.postprocess.diagnostics import TRUNCATED, Diagnostics, snippet
from vistool.postprocess.repair import RepairBudget
from vistool.postprocess.salvage import has_item_key, salvage_value

Span = tuple[int, int]

_scan_once = json.JSONDecoder().scan_once
_strict_loads = _orjson_loads if _orjson_loads is not None else json.loads
_ws_end = re.compile(r"[ \t\n\r]*").match
_OPEN = re.compile(r"[\[{]")
_FENCE = "```"
_FENCE_TAG = re.compile(r"[A-Za-z0-9_+\-]*[ \t]*\r?\n?")
_CHANNEL_NAME = re.compile(r"^\s*thought\s*\n?")
_WHOLE_TRIES = 3  # values per region decoded as "the value fills the region" (one slice of the region each)

MAX_ANSWER_CHARS = 1_000_000  # a real answer is at most a few tens of KB


@dataclass
class Extraction:
    """The JSON items found in an answer.

    items: decoded values (dicts, or lists for bare coordinate lists), in text order;
    spans: for each item, (start, end) character offsets in the ORIGINAL text, or None
    when unknown; diagnostics: what was dropped and repaired.
    """

    items: list[Any] = field(default_factory=list)
    spans: list[Span | None] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def answer_regions(text: str, thought_markers: Sequence[tuple[str, str]], diagnostics: Diagnostics) -> list[Span]:
    """Return the (start, end) regions of `text` outside thinking channels.

    Takes the text and (open, close) marker pairs. A channel left open by the token limit
    runs to the end of the text; a close marker with no open marker ends a channel that
    started at the text's beginning. Markers are special tokens, so they delimit channels
    wherever they appear. The thought itself goes to `diagnostics.thought`.
    """
    excluded: list[Span] = []
    thoughts: list[str] = []
    for open_marker, close_marker in thought_markers:
        pos = 0
        while pos < len(text):
            start = text.find(open_marker, pos)
            close = text.find(close_marker, pos)
            if start < 0 and close < 0:
                break
            if start < 0 or 0 <= close < start:  # a close marker without its open marker
                excluded.append((pos, close + len(close_marker)))
                thoughts.append(text[pos:close])
                pos = close + len(close_marker)
                continue
            close = text.find(close_marker, start + len(open_marker))
            if close < 0:
                excluded.append((start, len(text)))
                thoughts.append(text[start + len(open_marker):])
                diagnostics.repair("thinking channel not closed: the answer was cut off while thinking")
                diagnostics.truncated = True
                break
            excluded.append((start, close + len(close_marker)))
            thoughts.append(text[start + len(open_marker):close])
            pos = close + len(close_marker)
    if not excluded:
        return [(0, len(text))]
    thought = "\n".join(_CHANNEL_NAME.sub("", part, count=1) for part in thoughts).strip()
    diagnostics.thought = thought or None
    diagnostics.repair("removed thinking channel")
    regions: list[Span] = []
    pos = 0
    for start, end in sorted(excluded):
        if start > pos:
            regions.append((pos, start))
        pos = max(pos, end)
    if pos < len(text):
        regions.append((pos, len(text)))
    return regions


def _fence_mark(text: str, pos: int, start: int, end: int) -> tuple[int, int] | None:
    """Find the next ``` that opens its line (after spaces) in text[pos:end]; return its (start, end).

    The region's `start` counts as a line start (a fence may follow a thinking channel).
    """
    while True:
        found = text.find(_FENCE, pos, end)
        if found < 0:
            return None
        line_start = max(text.rfind("\n", start, found) + 1, start)
        if not text[line_start:found].strip(" \t"):
            return found, found + 3
        pos = found + 3


def fenced_regions(text: str, start: int, end: int) -> list[Span] | None:
    """Return the contents of the ``` fences in text[start:end], or None when there are none.

    A fence mark counts only at the start of a line (after spaces), so "```" inside a JSON
    string never ends a fence. The language tag (```json) is skipped; a fence left open
    runs to `end`.
    """
    opening = _fence_mark(text, start, start, end)
    if opening is None:
        return None
    regions: list[Span] = []
    while opening is not None:
        tag = _FENCE_TAG.match(text, opening[1], end)
        content_start = tag.end() if tag else opening[1]
        closing = _fence_mark(text, content_start, start, end)
        if closing is None:
            regions.append((content_start, end))
            break
        regions.append((content_start, closing[0]))
        opening = _fence_mark(text, closing[1], start, end)
    return regions


def extract_json_items(
    text: str,
    item_keys: Collection[str] = (),
    thought_markers: Sequence[tuple[str, str]] = (),
) -> Extraction:
    """Find every JSON item in a model answer.

    Takes the raw answer, the keys that mark an object as an item (e.g. {"box_2d"}; an
    object without any of them that holds a list of objects is a wrapper and is opened),
    and the thinking-channel markers to skip. Returns an `Extraction`: the items with
    their spans in `text`, plus diagnostics. Never raises on any string. Reads at most
    MAX_ANSWER_CHARS characters (the rest is reported as one truncated drop).
    """
    found = Extraction()
    keys = tuple(item_keys)
    limit = min(len(text), MAX_ANSWER_CHARS)
    budget = RepairBudget(limit)
    for start, end in answer_regions(text, thought_markers, found.diagnostics):
        end = min(end, limit)
        if start >= end:
            continue
        fences = fenced_regions(text, start, end)
        if fences is not None:
            before = len(found.items) + len(found.diagnostics.dropped)
            for fence_start, fence_end in fences:
                _scan_region(text, fence_start, fence_end, keys, found, budget)
            if len(found.items) + len(found.diagnostics.dropped) > before:
                continue  # the fences held the answer; prose around them is ignored
        _scan_region(text, start, end, keys, found, budget)
    if limit < len(text):
        found.diagnostics.truncated = True
        found.diagnostics.drop(
            TRUNCATED, f"the answer is {len(text)} characters long; only the first {limit} are read",
            snippet(text, limit, len(text)), (limit, len(text)),
        )
    return found


def _scan_region(text: str, start: int, end: int, keys: Sequence[str], found: Extraction, budget: RepairBudget) -> None:
    """Add every item of every JSON value in text[start:end] to `found`."""
    pos = start
    whole_tries = _WHOLE_TRIES
    while pos < end:
        match = _OPEN.search(text, pos, end)
        if match is None:
            return
        begin = match.start()
        fast = _fast_value(text, begin, end, keys, whole=whole_tries > 0)
        whole_tries -= 1
        if fast is not None:
            values, spans, pos = fast
            found.items.extend(values)
            found.spans.extend(spans)
            continue
        pos = salvage_value(text, begin, end, keys, found.items, found.spans, found.diagnostics, budget)


def _fast_value(
    text: str, begin: int, end: int, keys: Sequence[str], whole: bool = True
) -> tuple[list[Any], list[Span], int] | None:
    """Decode strict JSON at `begin`: a list of items, or one item object.

    Returns (items, spans, end of the value), or None when the text is not strict JSON
    of that shape (the slow path then takes over). The whole value is decoded at C speed
    (`whole`: first as the value filling the region, see `_decode_at`); item spans are
    the brace pairs when every brace in the value belongs to a flat item object, else
    they come from decoding the elements one by one.
    """
    value, stop = _decode_at(text, begin, end, whole)
    if value is None or stop > end:
        return None
    if type(value) is dict:
        return ([value], [(begin, stop)], stop) if has_item_key(value, keys) else None
    if type(value) is not list:
        return None
    types = set(map(type, value))
    if types == {dict}:
        objects = len(value)
        if keys and not all(map(dict.__contains__, value, repeat(keys[0]))):
            if not all(has_item_key(item, keys) for item in value):
                return None
    elif types <= {dict, list}:
        objects = 0
        for item in value:
            if type(item) is dict:
                if not has_item_key(item, keys):
                    return None
                objects += 1
            elif item and type(item[0]) in (list, dict):
                return None
    else:
        return None
    count = len(value)
    flat = brace_spans(text, begin, stop, count) if objects == count else None
    spans = list(map(tuple, flat.tolist())) if flat is not None else _element_spans(text, begin, count)
    return (value, spans, stop) if spans is not None else None


def brace_spans(text: str, begin: int, stop: int, count: int) -> np.ndarray | None:
    """Return the spans (count, 2) of `count` flat objects, when every brace in text[begin:stop] is theirs.

    Returns None when text[begin:stop] holds any other number of "{" or "}" (a brace
    inside a string, a nested object).
    """
    spans, flat = brace_spans_many([text], [begin], [stop], [count])
    return spans if flat[0] else None


def brace_spans_many(
    texts: Sequence[str], begins: Sequence[int], stops: Sequence[int], counts: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Find the item spans of several JSON lists of flat objects at once, from their braces.

    Takes, per list, its text, where the list begins and stops in it, and its item
    count. Returns (spans, flat): spans is an int array (total items, 2) of (start, end)
    in each list's own text; flat is a bool per list, True when it holds exactly one "{"
    and one "}" per item (flat objects, no brace inside a string), the only case where
    its spans are right (the rows of other lists are -1). The lists are joined and
    scanned as one array of code points (a byte each when the text is ASCII).
    """
    pieces = [text[begin:stop] for text, begin, stop in zip(texts, begins, stops)]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    piece_starts = np.cumsum(lengths) - lengths
    joined = "".join(pieces)
    if joined.isascii():
        chars = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        chars = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    opens, closes = np.flatnonzero(chars == ord("{")), np.flatnonzero(chars == ord("}"))
    expected = np.array(counts, dtype=np.int64)
    edges = np.append(piece_starts, len(chars))
    flat = (np.diff(np.searchsorted(opens, edges)) == expected) & (np.diff(np.searchsorted(closes, edges)) == expected)
    shift = np.repeat(np.array(begins, dtype=np.int64) - piece_starts, expected)
    if flat.all():
        return np.stack([opens + shift, closes + 1 + shift], axis=1), flat
    spans = np.full((int(expected.sum()), 2), -1, dtype=np.int64)
    rows_flat = np.repeat(flat, expected)
    open_owner = np.searchsorted(edges, opens, side="right") - 1
    close_owner = np.searchsorted(edges, closes, side="right") - 1
    spans[rows_flat, 0] = opens[flat[open_owner]] + shift[rows_flat]
    spans[rows_flat, 1] = closes[flat[close_owner]] + 1 + shift[rows_flat]
    return spans, flat


def loads_strict(text: str, start: int, end: int) -> tuple[Any, int, int]:
    """Decode text[start:end] when it is one strict JSON list (spaces around allowed).

    Returns (value, begin, stop): the list and where it starts and ends in `text`, or
    (None, start, start) when the region is anything else (prose, repairs needed, more
    than one value).
    """
    begin = _ws_end(text, start, end).end()
    if not text.startswith("[", begin, end):
        return None, start, start
    stop = end
    while stop > begin and text[stop - 1] in " \t\r\n":
        stop -= 1
    try:
        return _strict_loads(text[begin:stop]), begin, stop
    except (ValueError, RecursionError):  # orjson's and json's decode errors are ValueErrors
        return None, start, start


def _decode_at(text: str, begin: int, end: int, whole: bool = True) -> tuple[Any, int]:
    """Decode the strict JSON value at `begin`; return (value, end of value), or (None, begin).

    With `whole`, when the value fills the region up to `end` (the usual fenced answer),
    orjson decodes it when installed (several times faster); otherwise the standard
    library's scanner finds where the value ends. (Trying the whole rest of the region
    costs a copy of it, so a region tries it for its first few values only.)
    """
    if whole and _orjson_loads is not None:
        stop = end
        while stop > begin and text[stop - 1] in " \t\r\n":
            stop -= 1
        try:
            return _orjson_loads(text[begin:stop]), stop
        except ValueError:
            pass
    try:
        return _scan_once(text, begin)
    except (StopIteration, ValueError, RecursionError):
        return None, begin


def _element_spans(text: str, begin: int, count: int) -> list[Span] | None:
    """Return the spans of the `count` elements of the valid JSON list at `begin`."""
    spans: list[Span] = []
    i = _ws_end(text, begin + 1).end()
    try:
        for _ in range(count):
            _, stop = _scan_once(text, i)
            spans.append((i, stop))
            i = _ws_end(text, stop).end()
            if text.startswith(",", i):
                i = _ws_end(text, i + 1).end()
    except (StopIteration, ValueError, RecursionError):
        return None
    return spans
