"""json_repair, with its work bounded: what an answer's broken items may cost to repair.

json_repair is the one costly step of reading an answer: 2-5 microseconds per character
on item-like text, quadratic on text full of stray quotes, and more per call the deeper
objects nest. So it only sees text that could become an item (an object that names one
of the item keys, or a list of numbers), up to MAX_REPAIR_CHARS long and
MAX_REPAIR_DEPTH brackets deep, each piece charged `repair_cost` against the answer's
`RepairBudget` (REPAIR_BUDGET_FACTOR times the answer's length, plus REPAIR_BUDGET_BASE).
Anything else is decoded strictly or not at all, and `repair_refusal` says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import json_repair

from vistool.postprocess.diagnostics import Diagnostics

MAX_REPAIR_CHARS = 4_096  # a real item is a few hundred characters
MAX_REPAIR_DEPTH = 8  # an item with a box list is 2 deep, with a list of corner points 3
REPAIR_BUDGET_FACTOR = 2
REPAIR_BUDGET_BASE = 4_096
_QUOTES = re.compile(r"[\"']")
_QUOTE_ESCAPED = re.compile(r"\\[\"']")
_QUOTE_OPENING = re.compile(r"[{\[,:][ \t\r\n]*[\"']")
_QUOTE_CLOSING = re.compile(r"[\"'][ \t\r\n]*[,:}\]]")
_NOT_A_NUMBER_LIST = re.compile(r"[^-+.0-9eE,\"' \t\r\n\[\]]")
_STRAYS_PER_PASS = 16  # one more pass over the piece per this many stray quotes
_CHARS_PER_LEVEL = 32  # what each level of object nesting adds to a piece's cost


class RepairBudget:
    """How many more characters json_repair may be charged for one answer of `answer_chars`."""

    __slots__ = ("left",)

    def __init__(self, answer_chars: int) -> None:
        self.left = REPAIR_BUDGET_FACTOR * answer_chars + REPAIR_BUDGET_BASE

    def take(self, chars: int) -> bool:
        """Spend `chars` when they are left; return whether they were."""
        if chars > self.left:
            return False
        self.left -= chars
        return True


def repair_cost(piece: str, object_depth: int = 1) -> int:
    """Return what repairing `piece` is charged, in characters.

    Its length, plus _CHARS_PER_LEVEL per level of objects nested in objects
    (`object_depth` 1: none), times one plus its stray quotes / _STRAYS_PER_PASS. A stray
    quote has no bracket, comma or colon next to it (spaces aside) and no backslash
    before it (an apostrophe, a quote inside a string, junk): json_repair looks ahead
    for the real end of a string at each one.
    """
    base = len(piece) + _CHARS_PER_LEVEL * max(0, object_depth - 1)
    quotes = len(_QUOTES.findall(piece))
    if not quotes:
        return base
    placed = len(_QUOTE_ESCAPED.findall(piece)) + len(_QUOTE_OPENING.findall(piece)) + len(_QUOTE_CLOSING.findall(piece))
    return base + base * max(0, quotes - placed) // _STRAYS_PER_PASS


def repair_refusal(
    piece: str, opening: str, depth: int, object_depth: int, keys: Sequence[str], budget: RepairBudget
) -> str | None:
    """Say why `piece` is not given to json_repair, or None when it may be.

    Takes the piece, its opening bracket ("{" or "["), how deep brackets nest in it (all
    kinds, and objects only) and the item keys.
    """
    if len(piece) > MAX_REPAIR_CHARS:
        return f"too long to repair ({len(piece)} characters; items of at most {MAX_REPAIR_CHARS} are repaired)"
    if opening == "{" and keys and not any(key in piece for key in keys):
        return f"it names none of the item keys ({', '.join(keys)})"
    if opening == "[" and _NOT_A_NUMBER_LIST.search(piece):
        return "it is not a list of numbers"
    if depth > MAX_REPAIR_DEPTH:
        return f"nested too deep to repair (more than {MAX_REPAIR_DEPTH} brackets)"
    if repair_cost(piece, object_depth) > budget.left:
        return "the answer's repair budget is spent (too much text that is not JSON)"
    return None


def loads_or_repair(
    piece: str, diagnostics: Diagnostics, budget: RepairBudget, opening: str, depth: int, object_depth: int,
    keys: Sequence[str],
) -> Any:
    """Decode one item's text: strict JSON first, json_repair when that fails; None if neither.

    json_repair runs only when `repair_refusal` allows it, and spends `repair_cost`.
    """
    try:
        return json.loads(piece)
    except (ValueError, RecursionError):
        pass
    if repair_refusal(piece, opening, depth, object_depth, keys, budget) is not None:
        return None
    budget.take(repair_cost(piece, object_depth))
    try:
        value = json_repair.loads(piece)
    except Exception:  # json_repair is a third-party heuristic; never let it crash a parse
        return None
    diagnostics.repair("json_repair")
    return value


__all__ = ["MAX_REPAIR_CHARS", "MAX_REPAIR_DEPTH", "REPAIR_BUDGET_BASE", "REPAIR_BUDGET_FACTOR", "RepairBudget",
           "loads_or_repair", "repair_cost", "repair_refusal"]
