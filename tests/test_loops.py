"""Duplicates and loops: the parser drops repeated items, the local backend stops a looping
answer early, a server's looping answer has its repeated tail cut, NMS is an option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from eval.bench_structured import LOOP_ITEM, LoopingBackend, looping_backend
from vistool.api import Vistool
from vistool.postprocess import parse, parse_many
from vistool.runtime.repetition import repeated_tail
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationRequest, GenerationResponse, TokenLogprob

LOOP = "[" + LOOP_ITEM * 200 + '{"box_2d": [100, 2'  # one item 200 times, then cut by the token limit


@pytest.mark.parametrize("family", ["gemma4", "gemini", "qwen3vl", "qwen25vl"])
def test_looping_answer_gives_one_item_and_says_so(family: str) -> None:
    text = LOOP.replace("box_2d", "bbox_2d") if family.startswith("qwen") else LOOP
    resized = (1000, 1000) if family == "qwen25vl" else None
    one = parse(text, (1000, 1000), family, resized_size=resized)
    many = parse_many([text, LOOP], [(1000, 1000)] * 2, family, resized_sizes=[resized, resized])[0]
    assert one.to_dict() == many.to_dict()
    assert len(one) == 1 and one.detections.data["class_name"].tolist() == ["cat"]
    reasons = one.diagnostics.reasons()
    assert reasons.count("duplicate") == 199 and reasons.count("truncated") == 1
    assert one.diagnostics.found == 201 and one.diagnostics.truncated
    assert "IoU 1.00" in one.diagnostics.dropped[-1].detail or "IoU 1.00" in one.diagnostics.dropped[0].detail


def test_near_duplicates_follow_the_threshold_and_can_be_kept() -> None:
    items = [
        {"box_2d": [100, 100, 500, 500], "label": "cat"},
        {"box_2d": [102, 101, 502, 500], "label": "cat"},  # IoU ~0.98 with the first
        {"box_2d": [100, 100, 500, 500], "label": "dog"},  # same box, another label: kept
        {"box_2d": [100, 100, 300, 500], "label": "cat"},  # IoU 0.5: kept
    ]
    answer = json.dumps(items)
    for parsed in (parse(answer, (1000, 1000)), parse_many([answer], [(1000, 1000)])[0]):
        assert parsed.detections.data["class_name"].tolist() == ["cat", "dog", "cat"]
        assert parsed.diagnostics.reasons() == ["duplicate"]
    assert len(parse(answer, (1000, 1000), duplicate_iou=0.4)) == 2
    assert len(parse(answer, (1000, 1000), duplicate_iou=None)) == 4


def test_duplicate_points_and_ocr_lines() -> None:
    points = parse('[{"point_2d": [10, 20], "label": "a"}, {"point_2d": [10, 20], "label": "a"}, {"point_2d": [10, 21], "label": "a"}]',
                   (100, 100), kind="points")
    assert len(points) == 2 and points.diagnostics.reasons() == ["duplicate"]
    ocr = parse('[{"box_2d": [0, 0, 100, 500], "text": "TOTAL"}, {"box_2d": [0, 0, 100, 500], "text": "TOTAL"}, '
                '{"box_2d": [0, 0, 100, 500], "text": "12.40"}]', (100, 100), kind="ocr_regions")
    assert ocr.result.texts == ["TOTAL", "12.40"]


def test_class_wise_nms_is_an_option_ranked_by_confidence() -> None:
    answer = json.dumps([
        {"box_2d": [100, 100, 500, 500], "label": "cat"},
        {"box_2d": [150, 120, 520, 500], "label": "cat"},  # IoU ~0.8 with the first
        {"box_2d": [150, 120, 520, 500], "label": "dog"},
    ])

    def response(request: GenerationRequest) -> GenerationResponse:
        # The second cat's digits are the more probable: NMS keeps it.
        starts = [answer.index("[100"), answer.index("[150"), answer.rindex("[150")]
        logprobs = [TokenLogprob(token=answer[i : i + 3], logprob=value, offset=i) for i, value in zip(starts, (-2.0, -0.1, -0.5))]
        return GenerationResponse(text=answer, raw_text=answer, logprobs=logprobs, settings=request.settings())

    image = Image.new("RGB", (1000, 1000))
    plain = Vistool(ReplayBackend(response)).detect(image, ["cat", "dog"])
    assert len(plain.detections) == 3  # off by default
    nms = Vistool(ReplayBackend(response), nms_iou=0.5).detect(image, ["cat", "dog"])
    assert nms.detections.data["class_name"].tolist() == ["cat", "dog"]
    np.testing.assert_allclose(nms.detections.xyxy[0], [120, 150, 500, 520])
    assert nms.parsed.diagnostics.reasons() == ["suppressed"] and nms.parsed.diagnostics.kept == 2
    by_order = Vistool(ReplayBackend([answer]), nms_iou=0.5).detect(image, ["cat", "dog"])  # no scores: the first wins
    np.testing.assert_allclose(by_order.detections.xyxy[0], [100, 100, 500, 500])


def test_repeated_tail_of_a_server_answer_keeps_one_copy() -> None:
    first = '[{"box_2d": [1, 2, 3, 4], "label": "a"}, '
    text = first + LOOP_ITEM * 40 + '{"box_2d": [1'
    cut = repeated_tail(text)
    assert cut is not None
    kept = text[:cut]
    assert kept == first + LOOP_ITEM.rstrip(", ")  # everything before the loop and one copy of the item
    assert repeated_tail(first + LOOP_ITEM * 2 + "]") is None  # two copies and a closed list: no loop
    assert repeated_tail("1111111111111111111111111111111111111") is None  # no item end: no loop
    parsed = parse(kept, (1000, 1000))
    assert parsed.detections.data["class_name"].tolist() == ["a", "cat"]


# --------------------------------------------------------------------------- the stopping criterion
@pytest.fixture(scope="module")
def looping(tiny_model_dir) -> LoopingBackend:
    return looping_backend(str(tiny_model_dir))


def _request(stop: bool, limit: int = 400) -> GenerationRequest:
    return GenerationRequest(prompt="Detect cat.", images=[Image.new("RGB", (96, 64))], budget=70, max_new_tokens=limit,
                             return_logprobs=True, stop_on_repeat=stop)


def test_stopping_criterion_ends_a_looping_answer_early(looping) -> None:
    free, stopped = looping.generate([_request(False), _request(True)])  # one batch: rows stop on their own
    assert free.finish_reason == "length" and free.generated_tokens == 400
    assert stopped.finish_reason == "repetition" and stopped.settings["stop_on_repeat"] is True
    item_tokens = len(looping.tokenizer(LOOP_ITEM, add_special_tokens=False)["input_ids"])
    assert stopped.generated_tokens <= 1 + 3 * item_tokens + 1  # "[", three copies, at most the token that closed it
    free_ids = [entry.token_id for entry in free.logprobs]
    assert [entry.token_id for entry in stopped.logprobs] == free_ids[: stopped.generated_tokens]  # a prefix
    parsed = parse(stopped.text, (96, 64))
    assert len(parsed) == 1 and "duplicate" in parsed.diagnostics.reasons()
    print(f"\nloop stop: {stopped.generated_tokens} tokens instead of {free.generated_tokens}")


class _DistinctItems(LoopingBackend):
    """The tiny model made to write a list of distinct items (no loop)."""


def test_stopping_criterion_leaves_distinct_items_alone(tiny_model_dir) -> None:
    backend = _DistinctItems(str(tiny_model_dir), device="cpu", dtype="float32")
    items = [{"box_2d": [10 * i, 20, 30 + i, 40], "label": "cat"} for i in range(12)]
    script = backend.tokenizer(json.dumps(items), add_special_tokens=False)["input_ids"]
    _DistinctItems.loop = script * 2
    response = backend.generate([_request(True, limit=len(script))])[0]
    assert response.finish_reason == "length" and response.generated_tokens == len(script)


def test_thinking_rows_are_watched_only_once_the_answer_starts() -> None:
    from vistool.runtime.repetition import RepeatStop

    item_end = torch.zeros(16, dtype=torch.bool)
    item_end[3] = True
    stop = RepeatStop(item_end, torch.tensor([True, True]), prompt_length=1, thinking=torch.tensor([True, False]),
                      channel_open=14, channel_close=15, min_tokens=4)
    thinking_row = [14] + [1, 2, 3] * 6  # a thought that repeats itself (token 3 closes an "item")
    answer_row = [1, 2, 3] * 7  # the same loop in an answer
    done = torch.tensor([False, False])
    for step in range(1, len(thinking_row) + 1):
        ids = torch.tensor([[0] + thinking_row[:step], [0] + answer_row[:step]])
        done = done | stop(ids, None)
    assert not bool(done[0]) and bool(done[1])  # the thinking row is still in its thought
