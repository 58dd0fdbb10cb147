"""The linear per-item confidence gives exactly the numbers of the original per-token scan."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vistool.runtime.logprob_columns import TokenLogprobs
from vistool.runtime.types import TokenLogprob
from vistool.tasks.confidence import item_confidences, value_mask

_KEY = re.compile(r'"[^"\n]*"\s*:|\'[^\'\n]*\'\s*:')
_VALUE_CHAR = re.compile(r"[0-9A-Za-z\u00C0-\uFFFF]")


def reference_confidences(answer, spans, logprobs):
    """item_confidences as it was before issue 19 (every span scans every token)."""
    if not logprobs:
        return [None] * len(spans)
    mask = [bool(_VALUE_CHAR.match(char)) for char in answer]
    for match in _KEY.finditer(answer):
        for index in range(match.start(), match.end()):
            mask[index] = False
    ordered = sorted((lp for lp in logprobs if lp.offset >= 0), key=lambda lp: lp.offset)
    out = []
    for span in spans:
        if span is None:
            out.append(None)
            continue
        start, end = span
        values = [
            lp.logprob
            for lp in ordered
            if start <= lp.offset < end
            and any(mask[i] for i in range(lp.offset, min(lp.offset + max(len(lp.token), 1), end, len(mask))))
        ]
        out.append(math.exp(sum(values) / len(values)) if values else None)
    return out


ALPHABET = st.sampled_from(list('[]{}":, 0123456789abcXYZé猫🐈\n\'') + ['"box_2d": ', '"label": '])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_linear_confidences_equal_the_token_scan(data):
    answer = "".join(data.draw(st.lists(ALPHABET, max_size=60)))
    size = len(answer)
    tokens = data.draw(
        st.lists(
            st.tuples(st.integers(-1, size + 2), st.text(max_size=4), st.floats(-20, 0, allow_nan=False)), max_size=40
        )
    )
    logprobs = [TokenLogprob(token=text, logprob=value, offset=offset) for offset, text, value in tokens]
    span = st.tuples(st.integers(0, size + 2), st.integers(0, size + 2)).map(sorted).map(tuple)
    spans = data.draw(st.lists(st.one_of(st.none(), span), max_size=8))
    expected = reference_confidences(answer, spans, logprobs)
    assert item_confidences(answer, spans, logprobs) == expected
    assert item_confidences(answer, spans, TokenLogprobs.from_items(logprobs)) == expected  # the columnar form
    assert value_mask(answer) == reference_mask(answer)


def reference_mask(answer):
    mask = [bool(_VALUE_CHAR.match(char)) for char in answer]
    for match in _KEY.finditer(answer):
        for index in range(match.start(), match.end()):
            mask[index] = False
    return mask
