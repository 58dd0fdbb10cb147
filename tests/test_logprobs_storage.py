"""Token log-probs: columns read like a list, the cache stores them packed (exactly), old caches still read,
and interpreting a batch of answers gives what interpreting each one gives."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from vistool.batch.cache import AnswerCache, make_record
from vistool.profiles import get_profile
from vistool.runtime.logprob_columns import TokenLogprob, TokenLogprobs, read_logprobs
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks import TASKS, interpret, interpret_many


def _columns(count: int, seed: int = 0, ids: bool = True) -> TokenLogprobs:
    rng = random.Random(seed)
    tokens = [rng.choice(["[", '{"', "box", "_2d", "é", "猫", "\ufffd", "", " 12", "🐈"]) for _ in range(count)]
    values = [float(np.float32(-rng.random() * 9)) for _ in range(count)]
    offsets = sorted(rng.randrange(-1, 3000) for _ in range(count))
    return TokenLogprobs(tokens, values, offsets, [rng.randrange(262144) for _ in range(count)] if ids else None)


def test_columns_read_like_a_list_of_token_logprobs():
    columns = _columns(5)
    items = list(columns)
    assert columns == items and items == columns and len(columns) == 5
    assert columns[2] == TokenLogprob(columns.tokens[2], columns.values[2], columns.offsets[2], columns.token_ids[2])
    assert columns[1:3] == items[1:3]
    assert TokenLogprobs.from_items(items) == columns


@pytest.mark.parametrize("ids", [True, False])
def test_packed_form_is_exact_and_compact(ids):
    columns = _columns(900, ids=ids)
    packed = columns.pack()
    assert read_logprobs(json.loads(json.dumps(packed))) == columns
    listed = json.dumps(columns.to_list(), ensure_ascii=False)
    assert len(json.dumps(packed, ensure_ascii=False)) < len(listed) / 3
    # A value that is not a float32 (e.g. a server's float64) is kept as float64, still exactly.
    wide = TokenLogprobs(["a", "b"], [-0.1, -1e-300], [0, 1], None)
    assert wide.pack()["dtype"] == "<f8" and TokenLogprobs.unpack(wide.pack()) == wide


def test_cache_stores_packed_log_probs_and_reads_old_records(tmp_path):
    columns = _columns(50)
    response = GenerationResponse(text="[]", logprobs=columns)
    fields = {"image_sha256": "0" * 64, "task": "detect", "prompt": "p", "system": None, "model": "m", "settings": {}}
    old = make_record(fields, response.to_dict(), (10, 10), "a.png")
    assert old["response"]["logprobs"]["packed"] == 1  # a per-token list handed in is packed too
    legacy = {**old, "key": "legacy", "response": {**response.to_dict(), "logprobs": columns.to_list()}}
    cache = AnswerCache(tmp_path / "answers.jsonl")
    cache.append([make_record(fields, response.to_dict(packed_logprobs=True), (10, 10), "a.png"), legacy])
    reopened = AnswerCache(tmp_path / "answers.jsonl")
    for key in (old["key"], "legacy"):
        assert GenerationResponse.from_dict(reopened.get(key)["response"]).logprobs == columns


def test_interpret_many_equals_interpret_one_by_one():
    spec, profile = TASKS["detect"], get_profile("gemma4")
    answers = [
        '```json\n[{"box_2d": [10, 20, 300, 400], "label": "cat"}, {"box_2d": [1, 2, 3, 4], "label": "dog"}]\n```',
        'Here: [{"box_2d": [100, 100, 200, 200], "label": "cat",}]',  # repaired
        "no json at all",
        '[{"box_2d": [5, 5, 900, 900], "label": "bird"}]',
    ]
    responses = []
    for index, text in enumerate(answers):
        tokens = [text[i : i + 3] for i in range(0, len(text), 3)]
        logprobs = TokenLogprobs(tokens, [-0.1 * (i % 7) for i in range(len(tokens))], list(range(0, len(text), 3)))
        responses.append(GenerationResponse(text=text, logprobs=logprobs if index != 3 else None))
    responses.append(GenerationResponse.failure("boom"))
    request = GenerationRequest("Detect.", return_logprobs=True)
    options = [{"classes": ["cat", "dog"]}] * 3 + [{"classes": ["bird"]}, {"classes": ["cat"]}]
    sizes = [(640, 480), (100, 50), (10, 10), (300, 300), (5, 5)]
    batch = interpret_many(spec, profile, options, [request] * 5, responses, sizes, ["a", "b", "c", "d", "e"])
    single = [interpret(spec, profile, o, request, r, s, n) for o, r, s, n in zip(options, responses, sizes, "abcde")]
    assert [result.to_dict() for result in batch] == [result.to_dict() for result in single]
    assert batch[0].detections.confidence is not None and batch[4].error == "boom"


def _record_with_logprobs() -> dict:
    response = GenerationResponse(text='[{"box_2d": [1, 2, 3, 4], "label": "cat"}]', logprobs=_columns(40))
    record = make_record({"image_sha256": "0" * 64}, response.to_dict(packed_logprobs=True), (640, 480), "a.jpg")
    return json.loads(json.dumps(record))


def _damage_values(record):
    record["response"]["logprobs"]["logprob"] = record["response"]["logprobs"]["logprob"][:-8]  # values cut short


def _damage_ints(record):
    record["response"]["logprobs"]["ints"] = "bm90IHpsaWI="  # base64, but not a zlib stream


def _damage_old_form(record):
    record["response"]["logprobs"] = [{"token": "[", "logprob": "high", "offset": 0}]  # a per-token list with a string


def _damage_count(record):
    record["response"]["logprobs"]["count"] = 41


@pytest.mark.parametrize("damage", [_damage_values, _damage_ints, _damage_old_form, _damage_count])
def test_a_damaged_packed_record_is_unreadable(damage):
    # A cache record whose log-probs cannot be read back counts as absent (issue 20, item 8):
    # the batch runner asks the model again instead of failing the image on every run.
    from vistool.batch.items import record_problem

    record = _record_with_logprobs()
    assert record_problem(record) is None
    damage(record)
    assert record_problem(record) is not None
