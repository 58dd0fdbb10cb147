"""The JSON-close stop is on for tasks whose answer is one JSON value, and a list task never stops at a bare object."""

from __future__ import annotations

import pytest

from vistool.profiles import get_profile
from vistool.runtime import speed
from vistool.tasks import TASKS, RunSettings, build_request


def _closes_at(text: str, start: int) -> int | None:
    """Index of the character after which the automaton reports DONE (None: never)."""
    state = start
    for index, char in enumerate(text):
        state = speed.advance_json_state(state, char)
        if state == speed.DONE:
            return index
    return None


def test_arrays_only_reads_through_bare_objects():
    bare = 'Sure: {"box_2d": [1, 2, 3, 4], "label": "a]"}\n{"box_2d": [5, 6, 7, 8], "label": "b"}\n```'
    assert _closes_at(bare, speed.START) == bare.index("}")  # any value: the first object ends it
    assert _closes_at(bare, speed.START_ARRAYS) is None  # a list task keeps generating
    listed = '```json\n[{"box_2d": [1, 2, 3, 4], "label": "x [y]"}]\n```'
    assert _closes_at(listed, speed.START_ARRAYS) == _closes_at(listed, speed.START) == listed.rindex("]")
    after_object = '{"note": "[not it]"} then [1, [2]] and more'
    assert _closes_at(after_object, speed.START_ARRAYS) == after_object.index("]] and") + 1


def test_the_table_follows_the_automaton_from_both_starts(tiny_backend):
    table = tiny_backend._json_stop_table().cpu().numpy()
    tokenizer = tiny_backend.tokenizer
    text = 'ok {"a": "}"} [{"box_2d": [1, 2, 3, 4], "label": "c\\"at"}]\n```'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for start in (speed.START, speed.START_ARRAYS):
        state = expected = start
        for token_id in ids:
            state = int(table[token_id, state])
            expected = speed.advance_json_state(expected, tokenizer.decode([token_id]))
            assert state == expected


@pytest.mark.parametrize(
    "task, options, rule",
    [
        ("detect", {"classes": ["cat"]}, "array"),
        ("ground", {"expression": "the cat"}, "array"),
        ("point", {"description": "cat"}, "array"),
        ("ocr_regions", {"granularity": "line"}, "array"),
        ("gui_elements", {}, "array"),
        ("gui_ground", {"instruction": "open"}, "array"),
        ("caption", {"length": "short"}, False),
        ("ocr", {}, False),
        ("vqa", {"question": "why?"}, False),
    ],
)
def test_json_tasks_ask_for_the_stop(task, options, rule):
    request = build_request(TASKS[task], get_profile("gemma4"), options, RunSettings())
    assert request.stop_when_json_closes == rule
    assert request.settings().get("stop_when_json_closes", False) == rule


def test_location_token_families_never_stop_on_json():
    request = build_request(TASKS["detect"], get_profile("paligemma2"), {"classes": ["cat"]}, RunSettings())
    assert request.stop_when_json_closes is False
    assert TASKS["video_locate"].stop_rule(get_profile("gemma4")) is True
