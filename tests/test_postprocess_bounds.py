"""Parsing hostile answers does bounded work (issue 20, item 6).

The work is checked, not timed: the string scanner yields exactly what the old regex
did (so the linear rewrite changes nothing), json_repair only ever sees what the bounds
allow, and the pathological corpus parses under a pytest-timeout (a regression back to
quadratic time fails instead of stalling CI). Speed itself is measured by
`python -m eval.bench_parse_hostile`.
"""

from __future__ import annotations

import functools
import json
import random
import re

import json_repair
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vistool.postprocess import parse, parse_many, repair, salvage
from vistool.postprocess.extract import MAX_ANSWER_CHARS, extract_json_items
from vistool.postprocess.repair import MAX_REPAIR_CHARS, REPAIR_BUDGET_BASE, REPAIR_BUDGET_FACTOR

# The tokenizer before issue 20: the same language, found with one finditer (quadratic
# on a line full of escaped single quotes).
_OLD_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[\[\]{}"]', re.S)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="'\"\\[]{}\nab ,:", max_size=80))
def test_linear_tokenizer_finds_what_the_regex_found(text: str) -> None:
    old = [(m.start(), m.end()) for m in _OLD_TOKEN.finditer(text, 0, len(text))]
    new = [(m.start(), m.end()) for m in salvage._tokens(text, 0, len(text))]
    assert new == old


@functools.lru_cache(maxsize=1)
def hostile_answers() -> dict[str, str]:
    """The probe's pathological answers (seeded)."""
    rng = random.Random(0)
    return {
        "single-quoted label full of escaped quotes, 32 KB": '[{"box_2d": [1, 2, 3, 4], \'label\': \'' + "it\\'s " * 5500,
        "1 MB of random bytes": rng.randbytes(1 << 20).decode("latin-1"),
        "random punctuation, 128 KB": "".join(rng.choice("[]{}\"',:\\ \n0123456789ab") for _ in range(1 << 17)),
        "items full of stray quotes": "[" + ("{'box_2d': [1, 2, 3, 4], 'label': '" + '"a' * 40 + "'}, ") * 400 + "]",
        "empty objects 8 deep": "[" + ("{" * 8 + "}" * 8 + ", ") * 3000 + "]",
    }


@pytest.fixture
def repair_pieces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every piece handed to json_repair while the test runs."""
    seen: list[int] = []
    real = json_repair.loads

    def counting(piece: str, *args, **kwargs):
        seen.append(len(piece))
        return real(piece, *args, **kwargs)

    monkeypatch.setattr(repair.json_repair, "loads", counting)
    return seen


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(hostile_answers()))
def test_hostile_answer_parses_within_the_repair_bounds(name: str, repair_pieces: list[int]) -> None:
    text = hostile_answers()[name]
    seen = repair_pieces
    result = parse(text, (640, 480))
    assert len(result) <= text.count("{") + text.count("[")  # never more items than brackets
    assert all(length <= MAX_REPAIR_CHARS for length in seen)
    assert sum(seen) <= REPAIR_BUDGET_FACTOR * min(len(text), MAX_ANSWER_CHARS) + REPAIR_BUDGET_BASE


def test_an_answer_past_the_size_cap_is_read_up_to_it() -> None:
    item = '{"box_2d": [100, 100, 200, 200], "label": "' + "a" * 1000 + '"}, '
    text = "[" + item * (MAX_ANSWER_CHARS // len(item) + 100) + "]"
    found = extract_json_items(text, ("box_2d",))
    assert 0 < len(found.items) <= MAX_ANSWER_CHARS // len(item)
    assert found.diagnostics.truncated
    assert "only the first" in found.diagnostics.dropped[-1].detail


@pytest.mark.timeout(60)
def test_parse_many_keeps_the_bounds_of_parse(repair_pieces: list[int]) -> None:
    # The batch entry point (Vistool.run, the batch runner) must read no further and
    # repair no more than `parse`: the hostile corpus and a clean list past the size cap
    # (strict JSON the fast lane could decode whole) give what `parse` gives, item for item.
    items = [{"box_2d": [index % 900, 10, index % 900 + 50, 60], "label": f"item {index} " + "a" * 1000}
             for index in range(MAX_ANSWER_CHARS // 1000 + 100)]
    over_cap = json.dumps(items)
    texts = [*hostile_answers().values(), over_cap, json.dumps(items[:3])]
    seen = repair_pieces
    batch = parse_many(texts, [(1000, 1000)] * len(texts))
    assert all(length <= MAX_REPAIR_CHARS for length in seen)
    assert sum(seen) <= sum(REPAIR_BUDGET_FACTOR * min(len(text), MAX_ANSWER_CHARS) + REPAIR_BUDGET_BASE for text in texts)
    for text, result in zip(texts, batch):
        assert result.to_dict() == parse(text, (1000, 1000)).to_dict()
    assert batch[-2].diagnostics.truncated and len(batch[-2]) < len(items)
    assert len(batch[-1]) == 3


def test_junk_is_not_repaired_into_made_up_items() -> None:
    # json_repair turns "{ 959, 257 }" into a list of two numbers: a made-up point.
    result = parse('Points: { 959, 257 } and {0 89}', (640, 480), kind="points")
    assert len(result) == 0
    assert {item.reason for item in result.diagnostics.dropped} == {"unparseable"}
    assert "names none of the item keys" in result.diagnostics.dropped[0].detail


def test_broken_but_real_items_are_still_repaired() -> None:
    items = ", ".join(f"{{'box_2d': [{i}, 10, {i + 50}, 60], 'label': 'it\\'s {i}',}}" for i in range(300))
    result = parse('{"boxes": [' + items + ",]}", (1000, 1000))
    assert len(result) == 300  # every item, though each needs json_repair
    assert "json_repair" in result.diagnostics.repairs
