"""Per-item confidence from the log-probabilities of the tokens that wrote the item.

Formula (documented in the README): for an item whose text spans [start, end) in the
answer, take the generated tokens whose first character lies in that span and that
carry part of a VALUE: a digit of a coordinate or a letter/digit of the label, i.e.
not JSON punctuation, whitespace or a key name such as `"box_2d":`. The confidence is
the exponential of their mean log-probability (the geometric mean of their
probabilities), a number in (0, 1]. Key names and punctuation are left out because the
format forces them: they are near-certain for every item and would pull all scores
toward 1. Items with no such token, or answers without log-probs, get None.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from itertools import accumulate
from collections.abc import Sequence

from vistool.runtime.types import TokenLogprob

_KEY = re.compile(r'"[^"\n]*"\s*:|\'[^\'\n]*\'\s*:')
_VALUE_RUN = re.compile(r"[0-9A-Za-z\u00C0-\uFFFF]+")


def value_mask(text: str) -> list[bool]:
    """Return, per character of `text`, whether it belongs to a value (not a key or punctuation)."""
    return [bool(flag) for flag in _value_flags(text)]


def _value_flags(text: str) -> bytearray:
    """`value_mask` as bytes (1: value character), built run by run rather than character by character."""
    flags = bytearray(len(text))
    for match in _VALUE_RUN.finditer(text):
        flags[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
    for match in _KEY.finditer(text):
        flags[match.start() : match.end()] = bytes(match.end() - match.start())
    return flags


def item_confidences(
    answer: str,
    spans: Sequence[tuple[int, int] | None],
    logprobs: Sequence[TokenLogprob] | None,
) -> list[float | None]:
    """Return one confidence per item span (None where it cannot be computed).

    Takes the answer text, each item's (start, end) span in it, and the answer's token
    log-probs (with character offsets into the same text). See the module docstring for
    the formula. Linear in the answer: tokens are sorted by offset once, each span finds
    its tokens by bisection, and "does this token cover a value character" is one
    difference of prefix counts.
    """
    if not logprobs:
        return [None] * len(spans)
    flags = _value_flags(answer)
    before = [0, *accumulate(flags)]  # before[i]: value characters in answer[:i]
    size = len(flags)
    ordered = sorted((lp for lp in logprobs if lp.offset >= 0), key=lambda lp: lp.offset)
    offsets = [lp.offset for lp in ordered]
    confidences: list[float | None] = []
    for span in spans:
        if span is None:
            confidences.append(None)
            continue
        start, end = span
        limit = min(end, size)
        values = []
        for lp in ordered[bisect_left(offsets, start) : bisect_left(offsets, end)]:
            stop = min(lp.offset + max(len(lp.token), 1), limit)
            if stop > lp.offset and before[stop] > before[lp.offset]:
                values.append(lp.logprob)
        confidences.append(math.exp(sum(values) / len(values)) if values else None)
    return confidences
