"""Property tests: no text crashes parse, truncation loses only the cut item, boxes stay valid."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vistool.postprocess import format_answer, parse
from vistool.postprocess.diagnostics import INTERNAL_ERROR
from vistool.postprocess.extract import extract_json_items
from vistool.profiles import PROFILES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAMILIES = sorted(PROFILES)
KINDS = ["boxes", "points", "ocr_regions"]

# Text made of the pieces answers are made of, so the parser's interesting paths are hit.
PIECES = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", '"', "'", "```", "```json\n", "\n", " ", "box_2d", "bbox_2d", "point_2d", '"label"',
     "label", "1", "171", "-5", "1e999", "NaN", "null", "true", "3.5", "<|channel>", "<channel|>", "thought", "<think>",
     "</think>", "<loc0100>", "<loc_500>", "<seg012>", ";", "</s>", "\\", "é", "\x00", "}{", "[[", "]]"]
)
ANSWERISH = st.lists(PIECES, max_size=60).map("".join)


def _check_result(parsed, size) -> None:
    width, height = size
    assert INTERNAL_ERROR not in parsed.diagnostics.reasons()
    if parsed.kind == "boxes":
        xyxy = parsed.detections.xyxy
        assert np.isfinite(xyxy).all()
        assert (xyxy[:, 0] <= xyxy[:, 2]).all() and (xyxy[:, 1] <= xyxy[:, 3]).all()
        assert (xyxy >= 0).all() and (xyxy[:, [0, 2]] <= width).all() and (xyxy[:, [1, 3]] <= height).all()
    elif parsed.kind == "points":
        xy = parsed.result.xy
        assert np.isfinite(xy).all() and (xy >= 0).all() and (xy[:, 0] <= width).all() and (xy[:, 1] <= height).all()
    else:
        for region in parsed.result.regions:
            x1, y1, x2, y2 = region.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    assert len(parsed.spans) == len(parsed)
    json.loads(parsed.to_json())


@FAST
@given(text=st.one_of(st.text(max_size=300), ANSWERISH), family=st.sampled_from(FAMILIES), kind=st.sampled_from(KINDS))
def test_any_text_never_raises(text: str, family: str, kind: str) -> None:
    profile = PROFILES[family]
    if kind not in profile.kinds:
        kind = "boxes"
    size = (640, 480)
    parsed = parse(text, size, family, kind=kind, resized_size=(644, 476) if profile.needs_resized_size else None)
    _check_result(parsed, size)


BOX = st.tuples(*[st.integers(min_value=-200, max_value=1300)] * 4)
# Labels are any text except Gemma 4's channel markers: each is one special token that
# delimits the thinking channel wherever it appears, and a model cannot write it inside
# a JSON string.
LABEL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
    lambda label: "<|channel>" not in label and "<channel|>" not in label
)


@FAST
@given(boxes=st.lists(BOX, min_size=1, max_size=12), labels=st.data(), cut=st.floats(0, 1), pretty=st.booleans())
def test_any_truncation_keeps_every_complete_item(boxes, labels, cut: float, pretty: bool) -> None:
    items = [{"box_2d": list(box), "label": labels.draw(LABEL)} for box in boxes]
    pieces = [json.dumps(item, ensure_ascii=False) for item in items]
    open_, separator, close = ("[\n  ", ",\n  ", "\n]") if pretty else ("[", ", ", "]")
    answer = "```json\n" + open_ + separator.join(pieces) + close + "\n```"
    ends, position = [], len("```json\n" + open_)
    for piece in pieces:
        ends.append(position + len(piece))
        position += len(piece) + len(separator)
    cut_at = int(cut * len(answer))
    truncated = answer[:cut_at]
    complete = [item for item, end in zip(items, ends) if end <= cut_at]  # closing brace survived
    extraction = extract_json_items(truncated, ("box_2d",))
    assert extraction.items == complete  # every complete item, and nothing half-written invented
    for item, span in zip(extraction.items, extraction.spans):
        assert span is not None and json.loads(truncated[span[0] : span[1]]) == item
    parsed = parse(truncated, (300, 200))
    _check_result(parsed, (300, 200))
    assert parsed.diagnostics.found >= len(complete)


@FAST
@given(
    boxes=st.lists(st.tuples(*[st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), -float("inf")]))] * 4), max_size=10),
    width=st.integers(1, 5000),
    height=st.integers(1, 5000),
    family=st.sampled_from(["gemma4", "qwen3vl", "qwen25vl"]),
)
def test_every_mapped_box_is_inside_and_ordered(boxes, width: int, height: int, family: str) -> None:
    key = PROFILES[family].box_keys[0]
    answer = json.dumps([{key: list(box), "label": "x"} for box in boxes])
    resized = (56, 84) if PROFILES[family].needs_resized_size else None
    parsed = parse(answer, (width, height), family, resized_size=resized)
    _check_result(parsed, (width, height))
    assert parsed.diagnostics.found == len(boxes)


@FAST
@given(
    xyxy=st.lists(st.tuples(*[st.floats(0, 1)] * 4), min_size=1, max_size=8),
    width=st.integers(1, 4000),
    height=st.integers(1, 4000),
    family=st.sampled_from(FAMILIES),
)
def test_oracle_answers_round_trip_within_one_quantisation_step(xyxy, width: int, height: int, family: str) -> None:
    profile = PROFILES[family]
    corners = np.array(xyxy).reshape(-1, 2, 2) * [width, height]
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    resized = (max(28, width // 28 * 28), max(28, height // 28 * 28)) if profile.needs_resized_size else None
    answer = format_answer(family, "boxes", boxes, ["x"] * len(boxes), (width, height), resized)
    parsed = parse(answer, (width, height), family, resized_size=resized)
    _check_result(parsed, (width, height))
    scale = np.array(resized) if resized else np.array([profile.coords.scale] * 2)
    step = np.tile(np.array([width, height]) / scale, 2)
    kept = parsed.detections.xyxy
    assert len(kept) <= len(boxes)
    if len(kept) == len(boxes):  # (boxes thinner than one step may vanish, reported as zero area)
        assert (np.abs(kept - boxes) <= step + 1e-6).all()
    assert parsed.diagnostics.found == len(boxes)
