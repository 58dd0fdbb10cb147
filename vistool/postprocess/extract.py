"""Answer text -> JSON items, each with its character span in the original text.

Models wrap their JSON in every way imaginable: ```json fences (one or several), prose
before and after, a thinking channel, trailing commas, single quotes, a bare object, a
`{"boxes": [...]}` wrapper, or a list cut off by the token limit. `extract_json_items`
salvages every complete item and never raises.

Design: the answer regions are found first (outside thinking channels, inside fences
when there are any). In each region a fast path decodes a JSON list element by element
with the standard library's C scanner, which also yields each element's span. When that
fails, a small bracket scanner (quote-aware) finds the structure and the span of every
item; each closed item is decoded on its own, by `json.loads` or, when that fails, by the
json_repair library. An item the text never closes was cut off: it is dropped and
reported, never "completed" into made-up coordinates.

Bounded work: every step is linear in the answer's length, so hostile text (random
bytes, a label full of escaped quotes, deep nesting) costs about as much per kilobyte
as a real answer. Only the first MAX_ANSWER_CHARS characters are read; json_repair runs
within the bounds of `vistool.postprocess.repair` (an item it may not repair is dropped
as unparseable, with the reason); an object is opened as a wrapper without decoding it
when none of the item keys appears in its own text (outside its children).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

try:  # optional: a faster decoder for the common case (strict JSON filling its fence)
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_loads = None

from vistool.postprocess.diagnostics import NOT_AN_ITEM, TRUNCATED, UNPARSEABLE, Diagnostics, snippet
from vistool.postprocess.repair import MAX_REPAIR_DEPTH, RepairBudget, loads_or_repair, repair_refusal

Span = tuple[int, int]

_scan_once = json.JSONDecoder().scan_once
_strict_loads = _orjson_loads if _orjson_loads is not None else json.loads
_ws_end = re.compile(r"[ \t\n\r]*").match
_OPEN = re.compile(r"[\[{]")
_DIGIT = re.compile(r"\d")
_FENCE = "```"
_FENCE_TAG = re.compile(r"[A-Za-z0-9_+\-]*[ \t]*\r?\n?")
_CHANNEL_NAME = re.compile(r"^\s*thought\s*\n?")
# Strings in either quote, brackets, and a lone double quote (an unterminated string).
_MAX_DEPTH = 64  # real answers nest 2-4 deep; this bounds the recursion on junk
# The third alternative matches only where the second fails: a single quote that opens no
# string on its line (see `_tokens`).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|(?P<open_single>\'(?:[^\'\\\n]|\\.)*)|[\[\]{}"]', re.S)
_TOKEN_NO_SINGLE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}"]', re.S)
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


def _has_key(value: dict[str, Any], keys: Sequence[str]) -> bool:
    """True when the dict holds one of `keys` (or when no keys are asked for)."""
    if not keys:
        return True
    for key in keys:
        if key in value:
            return True
    return False


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
        pos = _slow_value(text, begin, end, keys, found, budget)


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
        return ([value], [(begin, stop)], stop) if _has_key(value, keys) else None
    if type(value) is not list:
        return None
    types = set(map(type, value))
    if types == {dict}:
        objects = len(value)
        if keys and not all(map(dict.__contains__, value, repeat(keys[0]))):
            if not all(_has_key(item, keys) for item in value):
                return None
    elif types <= {dict, list}:
        objects = 0
        for item in value:
            if type(item) is dict:
                if not _has_key(item, keys):
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


class _Node:
    """A bracket pair found by the scanner: `open` is "[" or "{"; `end` is None when unclosed."""

    __slots__ = ("open", "start", "end", "children", "broken", "wrapper")

    def __init__(self, open_char: str, start: int) -> None:
        self.open = open_char
        self.start = start
        self.end: int | None = None
        self.children: list[_Node] = []
        self.broken = False  # closed by a mismatched bracket
        self.wrapper: bool | None = None  # `_is_wrapper`, once decided


def _tokens(text: str, begin: int, end: int) -> Iterator[re.Match[str]]:
    """Yield the strings and brackets of text[begin:end] (what `_TOKEN` matches there), in linear time.

    A single quote that opens no string before its line ends is a plain character (an
    apostrophe); so is every single quote the failed attempt passed over, because a
    string started at any of them would end the same way (each was the escaped half of
    a backslash pair). Those stretches are scanned for brackets and double-quoted
    strings only, so a line full of `\\'` costs one pass instead of one per quote.
    """
    pos = begin
    quiet = -1  # single quotes before this position cannot open a string
    while pos < end:
        if pos < quiet:
            match = _TOKEN_NO_SINGLE.search(text, pos, end)
            if match is None:
                return
            if match.start() >= quiet:  # past the stretch: single quotes count again
                pos, quiet = quiet, -1
                continue
        else:
            match = _TOKEN.search(text, pos, end)
            if match is None:
                return
            if match.lastgroup == "open_single":
                pos, quiet = match.start() + 1, match.end()
                continue
        yield match
        pos = match.end()


def _scan_tree(text: str, begin: int, end: int) -> tuple[_Node, int]:
    """Scan the bracket structure of the value at `begin`, skipping strings.

    Returns the root node and the position where scanning stopped (after the root's
    closing bracket, or `end`). A mismatched closer closes the brackets opened after its
    partner (they are marked `broken`); a closer with no partner is ignored. Nesting
    deeper than _MAX_DEPTH ends the scan, leaving the open brackets unclosed.
    """
    root = _Node(text[begin], begin)
    stack = [root]
    for match in _tokens(text, begin + 1, end):
        pos = match.start()
        char = text[pos]
        if char == '"' or char == "'":
            if match.end() - pos == 1:  # unterminated string: the rest of the text is inside it
                return root, end
            continue
        if char == "[" or char == "{":
            if len(stack) >= _MAX_DEPTH:  # no answer nests this deep: stop here, as if cut off
                return root, end
            node = _Node(char, pos)
            stack[-1].children.append(node)
            stack.append(node)
            continue
        want = "[" if char == "]" else "{"
        k = len(stack) - 1
        while k >= 0 and stack[k].open != want:
            k -= 1
        if k < 0:
            continue
        for node in stack[k + 1 :]:
            node.end = pos
            node.broken = True
        stack[k].end = match.end()
        del stack[k:]
        if not stack:
            return root, match.end()
    return root, end


def _depth(node: "_Node", limit: int, opens: str) -> int:
    """How deep brackets of the kinds in `opens` nest from `node` (itself counted when it is one), up to `limit`."""
    own = 1 if node.open in opens else 0
    if limit <= own or not node.children:
        return own
    return own + max(_depth(child, limit - own, opens) for child in node.children)


def _repair_refusal(piece: str, node: _Node, keys: Sequence[str], budget: RepairBudget) -> str | None:
    """`repair.repair_refusal` for the text of `node`."""
    return repair_refusal(piece, node.open, _depth(node, MAX_REPAIR_DEPTH + 1, "[{"), _depth(node, MAX_REPAIR_DEPTH, "{"),
                          keys, budget)


def _loads(piece: str, diagnostics: Diagnostics, budget: RepairBudget, node: _Node, keys: Sequence[str]) -> Any:
    """`repair.loads_or_repair` for the text of `node`."""
    return loads_or_repair(piece, diagnostics, budget, node.open, _depth(node, MAX_REPAIR_DEPTH + 1, "[{"),
                           _depth(node, MAX_REPAIR_DEPTH, "{"), keys)


def _holds_items(node: _Node, text: str, keys: Sequence[str], diagnostics: Diagnostics, budget: RepairBudget) -> bool:
    """True for a list of objects, or for an object that wraps one."""
    if node.open == "[":
        return any(child.open == "{" for child in node.children)
    return bool(node.children) and _is_wrapper(node, text, keys, diagnostics, budget)


def _is_wrapper(node: _Node, text: str, keys: Sequence[str], diagnostics: Diagnostics, budget: RepairBudget) -> bool:
    """True when an object node holds a list of objects (or such a wrapper) and is not itself an item.

    Decided once per node (a wrapper's children are asked again while it is opened).
    """
    if node.wrapper is None:
        node.wrapper = _decide_wrapper(node, text, keys, diagnostics, budget)
    return node.wrapper


def _decide_wrapper(node: _Node, text: str, keys: Sequence[str], diagnostics: Diagnostics, budget: RepairBudget) -> bool:
    """`_is_wrapper`, computed."""
    holds_items = any(_holds_items(child, text, keys, diagnostics, budget) for child in node.children)
    if not holds_items:
        return False
    if node.end is None or not keys or not _names_a_key(node, text, keys):
        return True
    value = _loads(text[node.start : node.end], diagnostics, budget, node, keys)
    return not (isinstance(value, dict) and _has_key(value, keys))


def _names_a_key(node: _Node, text: str, keys: Sequence[str]) -> bool:
    """True when one of `keys` appears in the node's own text (outside its children's brackets)."""
    assert node.end is not None
    pos = node.start + 1
    for child in node.children:
        if any(text.find(key, pos, child.start) >= 0 for key in keys):
            return True
        if child.end is None:
            return False
        pos = child.end
    return any(text.find(key, pos, node.end) >= 0 for key in keys)


def _collect(
    node: _Node, text: str, keys: Sequence[str], leaves: list[_Node], diagnostics: Diagnostics, budget: RepairBudget
) -> None:
    """Append the item nodes under `node` to `leaves`, opening lists and wrappers."""
    if node.open == "[":
        if not node.children:
            leaves.append(node)
        for child in node.children:
            _collect(child, text, keys, leaves, diagnostics, budget)
    elif _is_wrapper(node, text, keys, diagnostics, budget):
        diagnostics.repair("unwrapped an object holding the item list")
        for child in node.children:
            if _holds_items(child, text, keys, diagnostics, budget):
                _collect(child, text, keys, leaves, diagnostics, budget)
    else:
        leaves.append(node)


def _slow_value(text: str, begin: int, end: int, keys: Sequence[str], found: Extraction, budget: RepairBudget) -> int:
    """Salvage the items of the (possibly malformed or truncated) value at `begin`.

    Adds items and drops to `found`; returns the position after the value.
    """
    diagnostics = found.diagnostics
    root, stop = _scan_tree(text, begin, end)
    leaves: list[_Node] = []
    _collect(root, text, keys, leaves, diagnostics, budget)
    if root.end is None and (root.children or _DIGIT.search(text, begin, stop)):
        diagnostics.truncated = True
    for node in leaves:
        if node.end is None:
            if node.open == "{" or _DIGIT.search(text, node.start, stop):
                diagnostics.truncated = True
                diagnostics.drop(
                    TRUNCATED, "the answer ends inside this item", snippet(text, node.start, stop), (node.start, stop)
                )
            continue
        if node is root and not _DIGIT.search(text, node.start, node.end):
            continue  # prose in brackets, not inside a list of items: nothing to report
        piece = text[node.start : node.end]
        refusal = _repair_refusal(piece, node, keys, budget)
        value = _loads(piece, diagnostics, budget, node, keys)
        span = (node.start, node.end)
        if not isinstance(value, (dict, list)) or not value:
            reason = UNPARSEABLE if not isinstance(value, (dict, list)) else NOT_AN_ITEM
            detail = "not a JSON object or list, even after repair"
            if refusal is not None and reason == UNPARSEABLE:
                detail = f"not valid JSON, and {refusal}"
            diagnostics.drop(reason, detail, snippet(piece, 0), span)
            continue
        if node.broken:
            diagnostics.repair("closed a bracket the model left open")
        found.items.append(value)
        found.spans.append(span)
    return stop if stop > begin else begin + 1
