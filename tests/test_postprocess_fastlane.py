"""The batch entry point `parse_many` and its fast lane give exactly what the general path gives.

The fast lane (vistool.postprocess.fastlane) takes clean JSON box answers and does the
numeric work once per batch; everything else goes the general way. The reference here
is the general path run on each answer alone: the whole parse (boxes, class ids,
names, spans, diagnostics) must be identical, whichever lane an answer took.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vistool.errors import VistoolError
from vistool.postprocess import parse, parse_many
from vistool.postprocess.fastlane import map_simple, read_simple
from vistool.profiles import get_profile

parse_module = importlib.import_module("vistool.postprocess.parse")


def general(text: str, size: tuple[int, int], family: str = "gemma4", classes=None, resized=None) -> dict:
    """The general path's parse of one answer, as a dict."""
    profile = get_profile(family)
    reader = profile.reader("boxes")
    return parse_module._parse_one(text, reader, profile, "boxes", size, resized, classes).to_dict()


def fenced(items: list[dict], indent: int | None = None) -> str:
    return "```json\n" + json.dumps(items, indent=indent, ensure_ascii=False) + "\n```"


CLEAN = [{"box_2d": [171, 75, 245, 308], "label": "view recipe element"}, {"box_2d": [10, 20, 500, 900], "label": "cat"}]

# Answers of every shape the lane must take, or must hand back to the general path.
ANSWERS = [
    fenced(CLEAN),
    fenced(CLEAN, indent=2),
    json.dumps(CLEAN),  # a bare list
    "Here they are:\n" + fenced(CLEAN) + "\nDone.",  # prose around the fence
    "Voilà — résumé:\n" + fenced([{"box_2d": [1, 2, 3, 4], "label": "🙂 smile"}]),  # non-ASCII before and inside
    fenced([{"box_2d": [1, 2, 300, 400], "label": "a {brace} in a label"}]),  # braces inside a string
    fenced([{"box_2d": [1, 2, 300, 400], "label": "cat", "score": 0.9}]),  # a score the model wrote
    fenced([{"box_2d": [1, 2, 300, 400], "label": "cat", "text": "Submit"}]),  # an extra key
    fenced([{"box_2d": [1, 2, 300, 400], "label": "  "}]),  # an empty label
    fenced([{"box_2d": [1, 2, 300, 400], "label": 7}]),  # a label that is not a string
    fenced([{"box_2d": [1, 2, 300, 400]}]),  # no label
    fenced([{"box_2d": "1, 2, 300, 400", "label": "cat"}]),  # numbers in a string
    fenced([{"box_2d": "1234", "label": "cat"}]),  # a four-character string is not four numbers
    fenced([{"box_2d": ["1", "2", "300", "400"], "label": "cat"}]),  # numbers as strings
    fenced([{"box_2d": [1, 2, 300], "label": "cat"}]),  # three numbers
    fenced([{"box_2d": [[1, 2], [300, 400]], "label": "cat"}]),  # pairs
    fenced([{"box_2d": [300, 400, 1, 2], "label": "cat"}]),  # reversed corners
    fenced([{"box_2d": [1, 2, 1300, 400], "label": "cat"}]),  # beyond the image
    fenced([{"box_2d": [5, 5, 5, 400], "label": "cat"}]),  # zero height
    fenced([{"box_2d": [1, 2, 300, 400], "label": "cat"}, [5, 6, 7, 8]]),  # a bare box among objects
    fenced([{"box_2d": [1, 2, 300, 400], "label": "cat", "sub": {"x": 1}}]),  # a nested object
    "<|channel>thought\nlooking<channel|>" + fenced(CLEAN),  # a thinking channel
    fenced(CLEAN[:1]) + "\n" + fenced(CLEAN[1:]),  # two fences
    fenced(CLEAN)[:-20],  # cut off
    '```json\n[{"box_2d": [1, 2, 300, 400], "label": "cat",}]\n```',  # a trailing comma
    "```json\n[]\n```",
    "",
    "no boxes here",
    json.dumps({"boxes": CLEAN}),  # a wrapper
    fenced([{"box_2d": [1, 2, 300, 400], "label": "Car"}, {"box_2d": [5, 6, 700, 800], "label": "cars"}]),  # one class
    fenced([{"box_2d": [1, 2, 300, 400], "label": "cat"}, {"box_2d": [1, 2, 3, 10**400], "label": "dog"}]),  # too big
    fenced([{"box_2d": [1, 2, 300, True], "label": "cat"}]),  # a boolean
    fenced([{"box_2d": 5, "label": "cat"}]),  # one number
    fenced([{"box_2d": {"a": 1, "b": 2, "c": 3, "d": 4}, "label": "cat"}]),  # an object of four
]
SIZES = [(640, 480), (1920, 1080), (7, 7), (3000, 40)]


@pytest.mark.parametrize("classes", [None, ["cat"], ["car", "view recipe element"]])
def test_a_mixed_batch_parses_exactly_as_each_answer_alone(classes) -> None:
    sizes = [SIZES[index % len(SIZES)] for index in range(len(ANSWERS))]
    batch = parse_many(ANSWERS, sizes, classes=classes)
    for text, size, result in zip(ANSWERS, sizes, batch):
        assert result.to_dict() == general(text, size, classes=classes), text
        assert parse(text, size, classes=classes).to_dict() == result.to_dict()


def test_the_lane_takes_clean_answers_and_hands_back_the_rest() -> None:
    profile = get_profile("gemma4")
    simple = [read_simple(text, profile) for text in ANSWERS]
    mapped = map_simple(simple, [(640, 480)] * len(ANSWERS), profile, [None] * len(ANSWERS))
    taken = [text for text, bounds in zip(ANSWERS, mapped.bounds) if bounds is not None]
    assert taken[:5] == ANSWERS[:5]  # clean, indented, bare, with prose, non-ASCII
    assert ANSWERS[5] not in taken  # a brace in a label would give wrong spans
    assert ANSWERS[6] not in taken  # a score the model wrote: the general path reads it
    assert ANSWERS[7] in taken  # other extra keys do not matter to boxes
    assert ANSWERS[16] not in taken and ANSWERS[17] not in taken  # boxes to reorder or clip


def test_a_number_beyond_any_float_drops_its_item_only() -> None:
    result = parse_many([ANSWERS[-4]], [(640, 480)])[0]
    assert result.detections.data["class_name"].tolist() == ["cat"]
    assert result.diagnostics.reasons() == ["bad_coordinates"]


def test_spans_point_at_each_item_in_the_original_text() -> None:
    text = "Résumé 🙂:\n" + fenced(CLEAN, indent=2)
    result = parse_many([text, text], [(100, 100), (100, 100)])[1]
    pieces = [json.loads(text[start:end]) for start, end in result.spans]
    assert pieces == CLEAN


@pytest.mark.parametrize("family", ["gemini", "qwen3vl", "qwen25vl"])
def test_other_json_families_agree_with_the_general_path(family: str) -> None:
    key = get_profile(family).box_keys[0]
    answers = [fenced([{key: [10, 20, 300, 400], "label": "cat"}, {key: [50, 60, 70, 80], "label": "dog"}]), fenced([{key: [1, 2, 3], "label": "x"}])]
    sizes, resized = [(640, 480), (320, 200)], [(644, 476), (336, 196)]
    batch = parse_many(answers, sizes, family, resized_sizes=resized)
    for text, size, size_resized, result in zip(answers, sizes, resized, batch):
        expected = general(text, size, family, resized=size_resized)
        assert result.to_dict() == expected


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(VistoolError, match="2 answers, 1 image sizes"):
        parse_many(["[]", "[]"], [(10, 10)])
    with pytest.raises(VistoolError, match="must be a string"):
        parse_many(["[]", None], [(10, 10), (10, 10)])  # type: ignore[list-item]
    with pytest.raises(VistoolError, match="resized"):
        parse_many(["[]"], [(10, 10)], "qwen25vl")
    assert parse_many([], []) == []


LABEL = st.text(alphabet=st.sampled_from(list('ab {}"\\é🙂,:[]')), max_size=8)
COORD = st.one_of(st.integers(-50, 1100), st.floats(-10, 1010, allow_nan=False))
ITEM = st.fixed_dictionaries({"box_2d": st.lists(COORD, min_size=4, max_size=4), "label": LABEL})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answers=st.lists(st.tuples(st.lists(ITEM, max_size=6), st.sampled_from([None, 2]), st.booleans()), min_size=1, max_size=6),
    size=st.sampled_from(SIZES),
)
def test_any_batch_of_json_answers_matches_the_general_path(answers, size) -> None:
    texts = [fenced(items, indent) if with_fence else json.dumps(items, indent=indent) for items, indent, with_fence in answers]
    batch = parse_many(texts, [size] * len(texts))
    for text, result in zip(texts, batch):
        assert result.to_dict() == general(text, size)
    assert all(np.all(result.detections.xyxy[:, :2] <= result.detections.xyxy[:, 2:]) for result in batch)
