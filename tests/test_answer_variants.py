"""The answer variants real models write, read per family, identically by `parse` and `parse_many`.

Each JSON family (Gemma 4, Gemini, Qwen3-VL, Qwen2.5-VL) declares the variants it reads
(vistool.profiles.variants); every variant below goes through both entry points, which
must agree exactly. A property test checks that no variant rule changes what the
existing test corpus parses to: parsed with and without the family's variants, every
corpus answer gives the same result.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.test_postprocess_fastlane import ANSWERS as FASTLANE_ANSWERS
from tests.test_postprocess_properties import ANSWERISH, LABEL
from vistool.api import Vistool
from vistool.postprocess import format_answer, parse, parse_many
from vistool.profiles import PROFILES, get_profile
from vistool.profiles.variants import NO_VARIANTS
from vistool.runtime.replay import ReplayBackend

JSON_FAMILIES = ["gemma4", "gemini", "qwen3vl", "qwen25vl"]
SIZE = (2000, 1000)  # wider than 1000 px, so pixel answers are recognisable
RESIZED = (1988, 1008)  # Qwen2.5-VL answers in pixels of this (processor-resized) size


def both(text: str, family: str, kind: str = "boxes", size=SIZE, **options):
    """Parse with `parse` and `parse_many`; assert they agree; return the parse."""
    resized = RESIZED if get_profile(family).needs_resized_size else None
    one = parse(text, size, family, kind, resized_size=resized, **options)
    many = parse_many([text, text], [size, size], family, kind, resized_sizes=[resized, resized], **options)
    assert one.to_dict() == many[0].to_dict() == many[1].to_dict()
    return one


def native(family: str, y1: float, x1: float, y2: float, x2: float) -> list[float]:
    """A box in the family's order and scale, from fractions of the image."""
    profile = get_profile(family)
    width, height = RESIZED if profile.needs_resized_size else (1000, 1000)
    ys, xs = (y1 * height, y2 * height), (x1 * width, x2 * width)
    if profile.coords.order == "yx":
        return [round(ys[0]), round(xs[0]), round(ys[1]), round(xs[1])]
    return [round(xs[0]), round(ys[0]), round(xs[1]), round(ys[1])]


def expected_pixels(y1: float, x1: float, y2: float, x2: float) -> list[float]:
    return [x1 * SIZE[0], y1 * SIZE[1], x2 * SIZE[0], y2 * SIZE[1]]


CAT = (0.1, 0.2, 0.3, 0.4)
DOG = (0.5, 0.5, 0.6, 0.7)


@pytest.mark.parametrize("family", JSON_FAMILIES)
@pytest.mark.parametrize("key", ["bbox_2d", "box_2d", "bbox", "box"])
@pytest.mark.parametrize("label_key", ["label", "name", "type", "category"])
def test_alternative_box_and_label_keys(family: str, key: str, label_key: str) -> None:
    answer = json.dumps([{key: native(family, *CAT), label_key: "cat"}, {key: native(family, *DOG), label_key: "dog"}])
    parsed = both(answer, family)
    np.testing.assert_allclose(parsed.detections.xyxy, [expected_pixels(*CAT), expected_pixels(*DOG)], atol=2.5)
    assert parsed.detections.data["class_name"].tolist() == ["cat", "dog"]
    assert parsed.diagnostics.dropped == []


@pytest.mark.parametrize("family", JSON_FAMILIES)
def test_label_to_box_dict(family: str) -> None:
    answer = json.dumps({"cat": native(family, *CAT), "dog": [native(family, *DOG), native(family, 0.7, 0.1, 0.9, 0.3)]})
    parsed = both(answer, family)
    assert parsed.detections.data["class_name"].tolist() == ["cat", "dog", "dog"]
    np.testing.assert_allclose(parsed.detections.xyxy[:2], [expected_pixels(*CAT), expected_pixels(*DOG)], atol=2.5)
    spans = parsed.spans
    assert all(span is not None and answer[span[0] : span[1]].startswith('"') for span in spans)
    assert answer[spans[0][0] : spans[0][1]].startswith('"cat"')


@pytest.mark.parametrize("family", JSON_FAMILIES)
@pytest.mark.parametrize("wrapper", ["objects", "detections", "results"])
def test_list_nested_under_one_key(family: str, wrapper: str) -> None:
    key = get_profile(family).box_keys[0]
    answer = json.dumps({wrapper: [{key: native(family, *CAT), "label": "cat"}]})
    parsed = both(answer, family)
    np.testing.assert_allclose(parsed.detections.xyxy, [expected_pixels(*CAT)], atol=2.5)


@pytest.mark.parametrize("family", JSON_FAMILIES)
def test_json_lines_without_brackets(family: str) -> None:
    key = get_profile(family).box_keys[0]
    lines = [json.dumps({key: native(family, *box), "label": name}) for box, name in ((CAT, "cat"), (DOG, "dog"))]
    parsed = both("\n".join(lines), family)
    assert parsed.detections.data["class_name"].tolist() == ["cat", "dog"]


@pytest.mark.parametrize("family", JSON_FAMILIES)
def test_unit_scale_is_recognised_mapped_and_flagged(family: str) -> None:
    profile = get_profile(family)
    y1, x1, y2, x2 = CAT
    box = [y1, x1, y2, x2] if profile.coords.order == "yx" else [x1, y1, x2, y2]
    parsed = both(json.dumps([{profile.box_keys[0]: box, "label": "cat"}]), family)
    np.testing.assert_allclose(parsed.detections.xyxy, [expected_pixels(*CAT)])
    assert parsed.diagnostics.coordinate_scale == "unit"
    assert any("0-1 scale" in note for note in parsed.diagnostics.repairs)


def test_zeros_and_ones_are_not_taken_for_a_unit_scale() -> None:
    parsed = both(json.dumps([{"box_2d": [0, 0, 1, 1], "label": "dot"}]), "gemma4")
    np.testing.assert_allclose(parsed.detections.xyxy, [[0, 0, 2, 1]])  # 0..1000 as written
    assert parsed.diagnostics.coordinate_scale is None


@pytest.mark.parametrize("family", ["gemma4", "gemini", "qwen3vl"])
def test_pixels_are_recognised_only_when_unambiguous(family: str) -> None:
    profile = get_profile(family)
    box = [100, 400, 300, 1600] if profile.coords.order == "yx" else [400, 100, 1600, 300]  # x up to 1600 px
    parsed = both(json.dumps([{profile.box_keys[0]: box, "label": "bus"}]), family)
    np.testing.assert_allclose(parsed.detections.xyxy, [[400, 100, 1600, 300]])
    assert parsed.diagnostics.coordinate_scale == "pixels"
    beyond = [100, 400, 1300, 600] if profile.coords.order == "yx" else [400, 100, 600, 1300]  # y 1300 > 1000 px height
    clipped = both(json.dumps([{profile.box_keys[0]: beyond, "label": "bus"}]), family)
    assert clipped.diagnostics.coordinate_scale is None and clipped.diagnostics.clipped == 1
    small = both(json.dumps([{profile.box_keys[0]: box, "label": "bus"}]), family, size=(640, 480))
    assert small.diagnostics.coordinate_scale is None  # does not fit a small image: not pixels


@pytest.mark.parametrize("family", JSON_FAMILIES)
@pytest.mark.parametrize("key", ["point_2d", "point", "coordinates"])
def test_alternative_point_keys_and_several_points_under_one_key(family: str, key: str) -> None:
    box = native(family, *CAT)
    answer = json.dumps([{key: box[:2], "label": "a"}, {"points": [box[:2], box[2:]], "label": "b"}])
    parsed = both(answer, family, kind="points")
    assert parsed.result.class_name == ["a", "b", "b"]
    np.testing.assert_allclose(parsed.result.xy, [[0.2 * SIZE[0], 0.1 * SIZE[1]]] * 2 + [[0.4 * SIZE[0], 0.3 * SIZE[1]]], atol=2.5)


@pytest.mark.parametrize("family", JSON_FAMILIES)
def test_eight_number_ocr_quad_is_kept_as_a_quad(family: str) -> None:
    profile = get_profile(family)
    top_left, top_right, bottom_right, bottom_left = (0.1, 0.2), (0.15, 0.6), (0.3, 0.6), (0.25, 0.2)  # (y, x) fractions
    scale = RESIZED if profile.needs_resized_size else (1000, 1000)
    quad: list[float] = []
    for y, x in (top_left, top_right, bottom_right, bottom_left):
        pair = [round(y * scale[1]), round(x * scale[0])]
        quad.extend(pair if profile.coords.order == "yx" else pair[::-1])
    key = profile.box_keys[0]
    answer = json.dumps([
        {key: quad, profile.text_keys[0]: "tilted"},
        {"quad": quad, "content": "again"},
        {key: native(family, *DOG), profile.text_keys[0]: "box"},
    ])
    parsed = both(answer, family, kind="ocr_regions")
    regions = parsed.result.regions
    assert [region.text for region in regions] == ["tilted", "again", "box"]
    np.testing.assert_allclose(
        regions[0].quad, [(0.2 * SIZE[0], 0.1 * SIZE[1]), (0.6 * SIZE[0], 0.15 * SIZE[1]), (0.6 * SIZE[0], 0.3 * SIZE[1]),
                          (0.2 * SIZE[0], 0.25 * SIZE[1])], atol=2.5,
    )
    np.testing.assert_allclose(regions[2].box, expected_pixels(*DOG), atol=2.5)  # the box stays a box (as 4 corners)


@pytest.mark.parametrize("family", ["gemma4", "qwen3vl"])
def test_point_only_answer_to_gui_grounding_gives_the_click(family: str) -> None:
    profile = get_profile(family)
    point = [500, 250] if profile.coords.order == "yx" else [250, 500]
    vt = Vistool(ReplayBackend([json.dumps([{"point_2d": point, "label": "Submit"}])], profile_name=family))
    from PIL import Image

    result = vt.gui_ground(Image.new("RGB", (800, 600)), "click Submit")
    assert result.extras["click"] == [200.0, 300.0] and result.extras["box"] is None
    assert result.extras["label"] == "Submit"


def test_a_family_without_variants_reads_only_its_own_format() -> None:
    plain = dataclasses.replace(get_profile("gemma4"), name="plain", variants=NO_VARIANTS)
    answer = json.dumps([{"bbox": [100, 200, 300, 400], "name": "cat"}])
    assert len(parse(answer, SIZE, get_profile("gemma4"))) == 1
    parsed = parse(answer, SIZE, plain)
    assert len(parsed) == 0 and parsed.diagnostics.reasons() == ["missing_coordinates"]
    for family in ("paligemma2", "florence2"):
        assert PROFILES[family].variants == NO_VARIANTS  # location-token families declare none


# --------------------------------------------------------------------------- no change to the corpus
def _without_variants(family: str):
    return dataclasses.replace(get_profile(family), variants=NO_VARIANTS)


def _same_with_and_without_variants(text: str, family: str, kind: str = "boxes", size=(640, 480)) -> None:
    profile = get_profile(family)
    resized = (644, 476) if profile.needs_resized_size else None
    with_variants = parse(text, size, profile, kind, resized_size=resized).to_dict()
    without = parse(text, size, _without_variants(family), kind, resized_size=resized).to_dict()
    assert with_variants == without, text


def _unread_objects(text: str, family: str, kind: str) -> bool:
    """True when the family's own format leaves an object unread (what variant rules exist for)."""
    profile = get_profile(family)
    resized = (644, 476) if profile.needs_resized_size else None
    plain = parse(text, (640, 480), _without_variants(family), kind, resized_size=resized)
    return "missing_coordinates" in plain.diagnostics.reasons()


@pytest.mark.parametrize("answer", FASTLANE_ANSWERS)
@pytest.mark.parametrize("family", ["gemma4", "qwen3vl"])
def test_variants_leave_the_fast_lane_corpus_as_it_was(answer: str, family: str) -> None:
    _same_with_and_without_variants(answer.replace("box_2d", get_profile(family).box_keys[0]), family)


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOX = st.tuples(*[st.integers(min_value=-200, max_value=1300)] * 4)


@FAST
@given(text=ANSWERISH, family=st.sampled_from(JSON_FAMILIES), kind=st.sampled_from(["boxes", "points", "ocr_regions"]))
def test_variants_leave_corpus_like_text_as_it_was(text: str, family: str, kind: str) -> None:
    # The generator's pieces are the corpus's (box_2d, bbox_2d, point_2d, "label", brackets, markers...);
    # an answer that uses a key of another family is a variant by design, so those keys are swapped
    # for the family's own before the comparison.
    profile = get_profile(family)
    own = profile.point_keys[0] if kind == "points" else profile.box_keys[0]
    for other in ("box_2d", "bbox_2d", "point_2d"):
        text = text.replace(other, own)
    assume(not _unread_objects(text, family, kind))  # e.g. {"171": [1, 1, 1, 1]}: a label -> box dict, a variant
    _same_with_and_without_variants(text, family, kind)


@FAST
@given(boxes=st.lists(BOX, min_size=1, max_size=10), labels=st.data(), family=st.sampled_from(JSON_FAMILIES), cut=st.floats(0, 1))
def test_variants_leave_canonical_and_truncated_answers_as_they_were(boxes, labels, family: str, cut: float) -> None:
    key = get_profile(family).box_keys[0]
    answer = "```json\n" + json.dumps([{key: list(box), "label": labels.draw(LABEL)} for box in boxes]) + "\n```"
    _same_with_and_without_variants(answer[: max(1, int(cut * len(answer)))], family)


@FAST
@given(
    xyxy=st.lists(st.tuples(*[st.floats(0, 1)] * 4), min_size=1, max_size=6),
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    family=st.sampled_from(sorted(PROFILES)),
)
def test_variants_leave_oracle_answers_as_they_were(xyxy, width: int, height: int, family: str) -> None:
    profile = PROFILES[family]
    corners = np.array(xyxy).reshape(-1, 2, 2) * [width, height]
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    resized = (max(28, width // 28 * 28), max(28, height // 28 * 28)) if profile.needs_resized_size else None
    answer = format_answer(family, "boxes", boxes, ["x"] * len(boxes), (width, height), resized)
    with_variants = parse(answer, (width, height), profile, resized_size=resized).to_dict()
    without = parse(answer, (width, height), _without_variants(family), resized_size=resized).to_dict()
    assert with_variants == without
