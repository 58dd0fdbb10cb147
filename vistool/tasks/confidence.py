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
from itertools import compress
from collections.abc import Sequence

import numpy as np

from vistool.runtime.logprob_columns import TokenLogprob, TokenLogprobs

_KEY = re.compile(r'"[^"\n]*"\s*:|\'[^\'\n]*\'\s*:')


def value_mask(text: str) -> list[bool]:
    """Return, per character of `text`, whether it belongs to a value (not a key or punctuation)."""
    return _value_flags(text).tolist()


def _value_flags(text: str) -> np.ndarray:
    """`value_mask` as a numpy bool array: the character class on code points, then key names cleared."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    flags = (
        ((codes >= 0x30) & (codes <= 0x39))  # 0-9
        | ((codes >= 0x41) & (codes <= 0x5A))  # A-Z
        | ((codes >= 0x61) & (codes <= 0x7A))  # a-z
        | ((codes >= 0xC0) & (codes <= 0xFFFF))  # \u00C0-\uFFFF
    )
    for match in _KEY.finditer(text):
        flags[match.start() : match.end()] = False
    return flags


def item_confidences(
    answer: str,
    spans: Sequence[tuple[int, int] | None],
    logprobs: Sequence[TokenLogprob] | None,
) -> list[float | None]:
    """Return one confidence per item span (None where it cannot be computed).

    Takes the answer text, each item's (start, end) span in it, and the answer's token
    log-probs (with character offsets into the same text). See the module docstring for
    the formula. Linear in the answer: tokens are sorted by offset once, spans find their
    tokens by binary search, and "does this token cover a value character" is a
    difference of prefix counts, for every (span, token) pair at once; each mean is
    summed in token order, as a per-token loop would.
    """
    if not logprobs:
        return [None] * len(spans)
    flags = _value_flags(answer)
    size = len(flags)
    before = np.zeros(size + 1, dtype=np.int64)  # before[i]: value characters in answer[:i]
    np.cumsum(flags, out=before[1:])
    if isinstance(logprobs, TokenLogprobs):  # columns: no per-token objects
        offsets = np.asarray(logprobs.offsets, dtype=np.int64)
        lengths = np.fromiter(map(len, logprobs.tokens), dtype=np.int64, count=len(logprobs))
        values = logprobs.values
    else:
        offsets = np.array([lp.offset for lp in logprobs], dtype=np.int64)
        lengths = np.array([len(lp.token) for lp in logprobs], dtype=np.int64)
        values = [lp.logprob for lp in logprobs]
    valid = np.flatnonzero(offsets >= 0)
    order = valid[np.argsort(offsets[valid], kind="stable")]
    token_start = offsets[order]
    token_end = token_start + np.maximum(lengths[order], 1)
    ordered_values = [values[index] for index in order.tolist()]
    present = [index for index, span in enumerate(spans) if span is not None]
    confidences: list[float | None] = [None] * len(spans)
    if not present:
        return confidences
    starts = np.array([spans[index][0] for index in present], dtype=np.int64)  # type: ignore[index]
    ends = np.array([spans[index][1] for index in present], dtype=np.int64)  # type: ignore[index]
    low = np.searchsorted(token_start, starts, side="left")
    high = np.maximum(np.searchsorted(token_start, ends, side="left"), low)
    counts = high - low
    # Every (span, token) pair, flattened: the token's index and the span's limit.
    pair_token = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts - low, counts)
    pair_limit = np.repeat(np.minimum(ends, size), counts)
    first = token_start[pair_token]
    stop = np.minimum(token_end[pair_token], pair_limit)
    covered = ((stop > first) & (before[stop] > before[np.minimum(first, size)])).tolist()
    cursor = 0
    for index, start, count in zip(present, low.tolist(), counts.tolist()):
        chosen = list(compress(ordered_values[start : start + count], covered[cursor : cursor + count]))
        cursor += count
        if chosen:
            confidences[index] = math.exp(sum(chosen) / len(chosen))
    return confidences
