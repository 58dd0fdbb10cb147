"""The slow path of `extract_json_items`: salvage items from malformed or truncated JSON.

A small quote-aware bracket scanner finds the structure of the value and the span of
every item (`_scan_tree`, linear even on a line full of escaped quotes); lists and
wrapper objects are opened (`_collect`); each closed item is decoded on its own, by
`json.loads` or, within the bounds of `vistool.postprocess.repair`, by json_repair. An
item the text never closes was cut off: it is dropped and reported, never "completed"
into made-up coordinates. An object is opened as a wrapper without decoding it when
none of the item keys appears in its own text (outside its children).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from vistool.postprocess.diagnostics import NOT_AN_ITEM, TRUNCATED, UNPARSEABLE, Diagnostics, snippet
from vistool.postprocess.repair import MAX_REPAIR_DEPTH, RepairBudget, loads_or_repair, repair_refusal

Span = tuple[int, int]

_DIGIT = re.compile(r"\d")
_MAX_DEPTH = 64  # real answers nest 2-4 deep; this bounds the recursion on junk
# Strings in either quote, brackets, and a lone double quote (an unterminated string).
# The third alternative matches only where the second fails: a single quote that opens no
# string on its line (see `_tokens`).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|(?P<open_single>\'(?:[^\'\\\n]|\\.)*)|[\[\]{}"]', re.S)
_TOKEN_NO_SINGLE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}"]', re.S)


def has_item_key(value: dict[str, Any], keys: Sequence[str]) -> bool:
    """True when the dict holds one of `keys` (or when no keys are asked for)."""
    if not keys:
        return True
    for key in keys:
        if key in value:
            return True
    return False


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
    return not (isinstance(value, dict) and has_item_key(value, keys))


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


def salvage_value(
    text: str,
    begin: int,
    end: int,
    keys: Sequence[str],
    items: list[Any],
    spans: list[Span | None],
    diagnostics: Diagnostics,
    budget: RepairBudget,
) -> int:
    """Salvage the items of the (possibly malformed or truncated) JSON value at `begin`.

    Takes the answer, where the value begins and where its region ends, the item keys,
    the lists the items and their spans are appended to, the diagnostics (drops and
    repairs are reported there) and the answer's repair budget. Returns the position
    after the value. Linear in the value's length; never raises on any text.
    """
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
        items.append(value)
        spans.append(span)
    return stop if stop > begin else begin + 1


__all__ = ["has_item_key", "salvage_value"]
