"""Duplicates and NMS do bounded work on answers with thousands of items of one label (issue 20,
item 6, on issue 14's duplicate search).

Comparing every same-label pair is quadratic: 6,000 copies of one item (a loop) took
21 s to parse and an n x n matrix of memory. The checks count the pairs compared (no
timing), compare the bounded search with every-pair references written here, and check
that `parse_many` still gives what `parse` gives.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vistool.postprocess import duplicates, fastlane, parse, parse_many
from vistool.postprocess.duplicates import DUPLICATE_WINDOW, MAX_PAIRS, find_duplicates, same_label_pairs, suppressed


def every_pair_duplicates(values: np.ndarray, labels: list, iou: float) -> list[tuple[int, int, float]]:
    """The rule itself: an item repeats the earliest kept earlier item of its label with overlap >= iou."""
    kept: list[int] = []
    found = []
    for j in range(len(values)):
        for i in kept:
            if labels[i] == labels[j]:
                value = float(duplicates.pair_overlap(values, np.array([i]), np.array([j]))[0])
                if value >= iou:
                    found.append((j, i, value))
                    break
        else:
            kept.append(j)
    return found


def every_pair_nms(boxes: np.ndarray, labels: list, scores, iou: float) -> list[tuple[int, int, float]]:
    """Class-wise NMS with the full IoU matrix (issue 14's implementation)."""
    count = len(boxes)
    order = np.arange(count) if scores is None else np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    width = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    height = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = width * height
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.where(union > 0, inter / union, 0.0)
    kept = np.zeros(count, dtype=bool)
    found = []
    for index in order.tolist():
        rivals = [j for j in np.flatnonzero(kept).tolist() if labels[j] == labels[index] and overlap[index, j] > iou]
        if rivals:
            best = max(rivals, key=lambda j: overlap[index, j])
            found.append((index, best, float(overlap[index, best])))
        else:
            kept[index] = True
    return sorted(found)


def boxes_strategy(max_size: int = 40):
    corner = st.integers(0, 20)
    box = st.tuples(corner, corner, st.integers(1, 6), st.integers(1, 6)).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
    return st.lists(st.tuples(box, st.sampled_from(["a", "b", None])), min_size=2, max_size=max_size)


@settings(max_examples=200, deadline=None)
@given(boxes_strategy(), st.sampled_from([0.3, 0.5, 0.9, 1.0]))
def test_below_the_limit_every_pair_is_compared(items, iou) -> None:
    values = np.array([box for box, _ in items], dtype=np.float64)
    labels = [label for _, label in items]
    assert find_duplicates(values, labels, iou) == every_pair_duplicates(values, labels, iou)


@settings(max_examples=200, deadline=None)
@given(boxes_strategy(), st.booleans(), st.sampled_from([0.2, 0.5, 0.8]))
def test_nms_equals_the_full_matrix_version(items, scored, iou) -> None:
    values = np.array([box for box, _ in items], dtype=np.float64)
    labels = [label for _, label in items]
    scores = np.linspace(0.1, 0.9, len(items))[::-1].copy() if scored else None
    if scores is not None:
        np.random.default_rng(len(items)).shuffle(scores)
    assert suppressed(values, labels, scores, iou) == every_pair_nms(values, labels, scores, iou)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.sampled_from([None, 1, 3]))
def test_same_label_pairs_are_every_pair_in_order(codes, window) -> None:
    codes = np.array(codes)
    first, second = same_label_pairs(codes, window)
    expected = [(i, j) for i in range(len(codes)) for j in range(i + 1, len(codes)) if codes[i] == codes[j]
                and (window is None or int((codes[i + 1 : j + 1] == codes[i]).sum()) <= window)]
    assert list(zip(first.tolist(), second.tolist())) == expected


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of pairs each duplicate search compares."""
    seen: list[int] = []
    real = duplicates.pair_overlap

    def counting(values, first, second):
        seen.append(len(first))
        return real(values, first, second)

    monkeypatch.setattr(duplicates, "pair_overlap", counting)
    monkeypatch.setattr(fastlane, "pair_overlap", counting)
    return seen


@pytest.mark.timeout(60)
def test_a_long_loop_is_searched_in_linear_work(compared: list[int]) -> None:
    count = 6_000  # 18 million same-label pairs
    item = {"box_2d": [100, 100, 200, 200], "label": "cat"}
    parsed = parse(json.dumps([item] * count), (640, 480))
    assert len(parsed) == 1 and parsed.diagnostics.reasons().count("duplicate") == count - 1
    assert sum(compared) <= count * (DUPLICATE_WINDOW + 1)
    assert any("earlier items of each label" in note for note in parsed.diagnostics.repairs)


@pytest.mark.timeout(60)
def test_past_the_limit_copies_far_apart_and_near_copies_close_by_are_found(compared: list[int]) -> None:
    spread = [{"box_2d": [(i // 40) * 20, (i % 40) * 20, (i // 40) * 20 + 10, (i % 40) * 20 + 10], "label": "cat"}
              for i in range(1_000)]  # 1,000 distinct boxes of one label: past MAX_PAIRS
    assert 1_000 * 999 // 2 > MAX_PAIRS
    near = dict(spread[-1], box_2d=[spread[-1]["box_2d"][0], spread[-1]["box_2d"][1], spread[-1]["box_2d"][2],
                                    spread[-1]["box_2d"][3] + 0.1])
    answer = spread + [spread[3], near]  # a copy of the 4th item (far back) and a near copy of the last one
    parsed = parse(json.dumps(answer), (1000, 1000))
    assert len(parsed) == 1_000 and parsed.diagnostics.reasons() == ["duplicate", "duplicate"]
    assert sum(compared) <= len(answer) * (DUPLICATE_WINDOW + 1)
    many = parse_many([json.dumps(answer), json.dumps(spread[:5])], [(1000, 1000)] * 2)
    assert many[0].to_dict() == parsed.to_dict()
    assert len(many[1]) == 5


@pytest.mark.timeout(60)
def test_a_crowded_clean_answer_leaves_the_fast_lane_without_its_pairs(compared: list[int]) -> None:
    # Distinct boxes of one label in strict JSON: the fast lane would compare all ~4.5 million pairs.
    items = [{"box_2d": [(i // 60) * 16, (i % 60) * 16, (i // 60) * 16 + 8, (i % 60) * 16 + 8], "label": "cat"}
             for i in range(3_000)]
    text = json.dumps(items)
    batch = parse_many([text, text], [(1000, 1000)] * 2)
    assert all(result.to_dict() == parse(text, (1000, 1000)).to_dict() for result in batch)
    assert len(batch[0]) == 3_000
    assert max(compared) <= len(items) * (DUPLICATE_WINDOW + 1)
