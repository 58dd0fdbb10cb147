"""The JSON-close stop is on for tasks whose answer is one JSON value, a list task never stops at a
bare object, gui_mark stops at its object, and the stop is no part of the answer cache's keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.batch.cache import AnswerCache
from vistool.batch.runner import BatchRunner, WorkItem
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


# ------------------------------------------------------------- gui_mark, and the cache
def _scripted(tiny_backend, answer: str):
    """The tiny backend made to answer `answer` on every row (tests/test_runtime_speed.py's ScriptedBackend)."""
    from tests.test_runtime_speed import ScriptedBackend, variant

    ScriptedBackend.script = tiny_backend.tokenizer(answer, add_special_tokens=False)["input_ids"]
    return variant(tiny_backend, cls=ScriptedBackend, batch_size=4), len(ScriptedBackend.script)


def _noise_pngs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for index in range(count):
        path = folder / f"img{index}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_gui_mark_stops_when_its_object_closes(tiny_backend, tmp_path):
    for family in ("gemma4", "qwen25vl", "qwen3vl"):
        assert TASKS["gui_mark"].stop_rule(get_profile(family)) is True
    answer = '```json\n{"mark": 2}\n```\nMark 2 is the OK button, not mark 1.'
    backend, length = _scripted(tiny_backend, answer)
    elements = [{"box": [10, 10, 60, 40], "type": "button"}, {"box": [70, 50, 120, 90], "type": "button", "text": "OK"}]
    image = Image.open(_noise_pngs(tmp_path, 1)[0])
    result = Vistool(backend, budget=70).run("gui_mark", image, {"instruction": "click OK", "elements": elements},
                                             max_new_tokens=length)
    assert result.text == '```json\n{"mark": 2}'  # nothing generated after the object closed
    assert result.provenance["stop_when_json_closes"] is True and result.provenance["generated_tokens"] < length
    assert result.extras["mark"] == 2 and result.extras["box"] == [70.0, 50.0, 120.0, 90.0]


def test_a_cache_written_without_the_stop_is_hit_by_a_run_with_it(tiny_backend, tmp_path, monkeypatch):
    """The stop is kept out of cache keys (it changes no parsed item), and recorded in provenance."""
    answer = '```json\n[{"box_2d": [100, 200, 300, 400], "label": "cat"}, {"box_2d": [5, 6, 70, 80], "label": "cat"}]\n```\nTwo cats.'
    backend, length = _scripted(tiny_backend, answer)
    items = [WorkItem(path, "detect", {"classes": ["cat"]}) for path in _noise_pngs(tmp_path, 3)]
    vt = Vistool(backend, budget=70, max_new_tokens=length)
    with monkeypatch.context() as patch:  # a run as before the stop: detect without it
        patch.setitem(TASKS, "detect", replace(TASKS["detect"], json_stop=False))
        first = BatchRunner(vt, AnswerCache(tmp_path / "answers.jsonl"), workers=0, progress=False).run(items)
    assert first.count("done") == 3 and first.model_calls == 3
    assert all("stop_when_json_closes" not in outcome.result.provenance for outcome in first.outcomes)
    assert first.outcomes[0].result.text.endswith("Two cats.")

    again = BatchRunner(vt, AnswerCache(tmp_path / "answers.jsonl"), workers=0, progress=False).run(items)  # the stop is on
    assert again.count("cached") == 3 and again.model_calls == 0
    assert [o.key for o in again.outcomes] == [o.key for o in first.outcomes]

    fresh = BatchRunner(vt, None, workers=0, progress=False).run(items)  # the stop, generated now: the same items
    assert fresh.count("done") == 3 and fresh.outcomes[0].result.provenance["stop_when_json_closes"] == "array"
    assert fresh.outcomes[0].result.text.endswith("}]")
    for made, cached in zip(fresh.outcomes, again.outcomes):
        assert made.key == cached.key
        assert np.array_equal(made.result.detections.xyxy, cached.result.detections.xyxy)
        assert list(made.result.detections.data["class_name"]) == list(cached.result.detections.data["class_name"])
