"""The batch runner interprets answers a batch at a time (`BatchRunner.outcomes`, one
`interpret_many` per task), with the same outcomes as one answer at a time, and a bad answer
failing alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vistool.batch.runner as runner_module
from vistool.api import Vistool
from vistool.batch.cache import AnswerCache
from vistool.batch.runner import BatchRunner, WorkItem
from vistool.runtime.replay import ReplayBackend


def _answer(request) -> str:
    """An answer in the task's format (point, text, boxes that depend on the prompt), with a thought."""
    seed = len(request.prompt) % 7
    if "point_2d" in request.prompt:
        return '[{"point_2d": [500, 250], "label": "the cat"}]'
    if "box_2d" not in request.prompt:
        return "A cat on a mat."
    return f'<|channel>thought\nlooking<channel|>```json\n[{{"box_2d": [{10 + seed}, 20, 300, 400], "label": "cat"}}]\n```'


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(5)
    paths = []
    for index in range(7):
        path = tmp_path / f"img{index}.png"
        Image.fromarray(rng.integers(0, 255, (60 + index, 80, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _items(images: list[Path]) -> list[WorkItem]:
    items = [WorkItem(path, "detect", {"classes": ["cat"] if index % 2 else ["cat", "dog"]}) for index, path in enumerate(images)]
    return items + [WorkItem(images[0], "point", {"description": "the cat"}), WorkItem(images[1], "caption", {})]


def _summary(report) -> list[tuple]:
    rows = []
    for outcome in report.outcomes:
        result = outcome.result
        boxes = None if result is None or result.parsed is None else result.detections.xyxy.tolist()
        rows.append((outcome.status, outcome.stage, outcome.key, None if result is None else result.text, boxes))
    return rows


def test_batched_interpretation_equals_one_at_a_time(images, tmp_path, monkeypatch):
    items = _items(images)
    calls: list[int] = []
    real = runner_module.interpret_many

    def counting(spec, profile, options, *rest):
        calls.append(len(options))
        return real(spec, profile, options, *rest)

    monkeypatch.setattr(runner_module, "interpret_many", counting)
    cache = tmp_path / "answers.jsonl"
    fresh = BatchRunner(Vistool(ReplayBackend(_answer)), AnswerCache(cache), batch_size=4, workers=0, progress=False).run(items)
    assert max(calls) > 1  # answers of one task interpreted together
    calls.clear()
    cached = BatchRunner(Vistool(ReplayBackend(_answer)), AnswerCache(cache), batch_size=4, workers=0, progress=False).run(items)
    assert cached.model_calls == 0 and cached.count("cached") == len(items)
    assert calls and max(calls) == 4  # cached answers too, batch_size at a time
    one = BatchRunner(Vistool(ReplayBackend(_answer)), None, batch_size=1, workers=0, progress=False).run(items)
    assert max(calls[-len(items):]) == 1
    assert [row[:1] + row[2:] for row in _summary(fresh)] == [row[:1] + row[2:] for row in _summary(one)]
    assert [row[2:] for row in _summary(cached)] == [row[2:] for row in _summary(fresh)]


def test_a_bad_record_fails_alone_in_its_batch(images, tmp_path, monkeypatch):
    items = _items(images)[:4]
    cache_path = tmp_path / "answers.jsonl"
    BatchRunner(Vistool(ReplayBackend(_answer)), AnswerCache(cache_path), batch_size=4, workers=0, progress=False).run(items)
    lines = cache_path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["image_size"] = "not a size"  # a damaged record (issue 20, item 8): absent, so its image is asked again
    cache_path.write_text("\n".join([lines[0], json.dumps(broken), *lines[2:]]) + "\n")
    report = BatchRunner(Vistool(ReplayBackend(_answer)), AnswerCache(cache_path), batch_size=4, workers=0,
                         progress=False).run(items)
    assert [o.status for o in report.outcomes] == ["cached", "done", "cached", "cached"]
    assert report.model_calls == 1 and report.unreadable_records == 1
    # A record that reads back but that interpretation still chokes on fails alone: the
    # batch is interpreted again one answer at a time.
    real = runner_module.interpret_many

    def choking(spec, profile, options, requests, responses, sizes, sources, *rest):
        if str(items[1].image) in sources:
            raise RuntimeError("a parser bug")
        return real(spec, profile, options, requests, responses, sizes, sources, *rest)

    monkeypatch.setattr(runner_module, "interpret_many", choking)
    runner = BatchRunner(Vistool(ReplayBackend(_answer)), AnswerCache(cache_path), batch_size=4, workers=0, progress=False)
    report = runner.run(items)
    assert [o.status for o in report.outcomes] == ["cached", "failed", "cached", "cached"]
    assert report.outcomes[1].stage == "answer" and "cannot interpret the answer" in report.outcomes[1].reason
    monkeypatch.undo()
    # The public step: error texts (a failed request) and records in one call, in order.
    prepared = [runner.load(runner.plan(index, item)) for index, item in enumerate(items)]
    record = AnswerCache(cache_path).get(prepared[0].key)
    outcomes = runner.outcomes([(prepared[0], record), (prepared[2], "server gone"), (prepared[0], record)], "cached")
    assert [o.status for o in outcomes] == ["cached", "failed", "cached"]
    assert outcomes[1].stage == "model" and outcomes[1].reason == "model error: server gone"
    assert runner.outcome(prepared[0], record, "cached").result.text == outcomes[0].result.text
