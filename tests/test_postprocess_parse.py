"""parse(): every family, kind and repair, checked against exact pixel values and supervision."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import supervision as sv

from tests.postprocess_helpers import PUBLISHED_GEMMA4, qwen_resized
from vistool.errors import VistoolError
from vistool.postprocess import OCRResult, ParseResult, PointsResult, format_answer, parse
from vistool.postprocess.diagnostics import (
    BAD_COORDINATES,
    INCOMPLETE_TOKENS,
    MISSING_COORDINATES,
    NON_FINITE,
    OUTSIDE_IMAGE,
    TRUNCATED,
    ZERO_AREA,
)


@pytest.mark.parametrize("size", [(1000, 1000), (640, 480), (480, 640), (3000, 40), (7, 7)])
def test_published_gemma4_answer(size: tuple[int, int]) -> None:
    width, height = size
    parsed = parse(PUBLISHED_GEMMA4, image_size=size, profile="gemma4", kind="boxes")
    detections = parsed.detections
    assert isinstance(detections, sv.Detections)
    np.testing.assert_allclose(
        detections.xyxy[0], [75 / 1000 * width, 171 / 1000 * height, 308 / 1000 * width, 245 / 1000 * height]
    )
    assert detections.data["class_name"].tolist() == ["view recipe element"]
    assert detections.class_id.tolist() == [0]
    assert detections.confidence is None
    start, end = parsed.spans[0]
    assert json.loads(PUBLISHED_GEMMA4[start:end])["label"] == "view recipe element"
    assert parsed.diagnostics.found == parsed.diagnostics.kept == 1 and parsed.diagnostics.dropped == []


# --- supervision parses these families correctly on clean answers: vistool must agree ----


def _boxes(rng: np.random.Generator, size: tuple[int, int], count: int = 6) -> np.ndarray:
    width, height = size
    corners = rng.uniform(0, 1, (count, 2, 2)) * [width, height]
    return np.concatenate([corners.min(axis=1), corners.max(axis=1) + 2], axis=1).clip(0, [width, height, width, height])


@pytest.mark.parametrize("size", [(640, 480), (333, 1000)])
@pytest.mark.parametrize(
    ("profile", "vlm"),
    [("gemma4", "gemini_2_0"), ("gemini", "gemini_2_5"), ("qwen3vl", "qwen_3_vl"), ("qwen25vl", "qwen_2_5_vl"), ("paligemma2", "paligemma")],
)
def test_agrees_with_supervision_on_clean_answers(profile: str, vlm: str, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    labels = ["cat", "dog", "traffic light", "cat", "person", "dog"]
    resized = qwen_resized(size) if profile == "qwen25vl" else None
    answer = format_answer(profile, "boxes", _boxes(rng, size), labels, size, resized)
    ours = parse(answer, size, profile, resized_size=resized).detections
    kwargs = {"input_wh": resized} if profile == "qwen25vl" else {}
    theirs = sv.Detections.from_vlm(vlm, answer, resolution_wh=size, **kwargs)
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-9)
    assert ours.data["class_name"].tolist() == theirs.data["class_name"].tolist()


def test_florence2_agrees_with_its_own_processor_and_supervision() -> None:
    from transformers.models.florence2.processing_florence2 import Florence2PostProcessor

    size = (640, 480)
    processor = Florence2PostProcessor(None, SimpleNamespace(all_special_tokens=[]))
    boxes = _boxes(np.random.default_rng(3), size)
    labels = ["car", "car", "person", "dog", "car", "tree"]
    answer = "</s><s>" + format_answer("florence2", "boxes", boxes, labels, size) + "</s>"
    ours = parse(answer, size, "florence2").detections
    reference = processor.parse_description_with_bboxes_from_text_and_spans(answer, image_size=size)
    # Florence-2's processor decodes bin centres, then truncates them to whole pixels;
    # vistool keeps the centre itself.
    np.testing.assert_array_equal(np.floor(ours.xyxy), [item["bbox"] for item in reference])
    assert ours.data["class_name"].tolist() == [item["cat_name"] for item in reference] == labels
    result = {"<OD>": {"bboxes": [item["bbox"] for item in reference], "labels": [item["cat_name"] for item in reference]}}
    theirs = sv.Detections.from_vlm("florence_2", result, resolution_wh=size)
    np.testing.assert_array_equal(np.floor(ours.xyxy), theirs.xyxy)
    # The oracle's quantiser is Florence-2's own: re-quantising gives the same bins.
    import torch

    bins = processor.quantize(torch.tensor(boxes), size).tolist()
    assert answer.count("<loc_") == 4 * len(bins)
    assert all(f"<loc_{b[0]}><loc_{b[1]}><loc_{b[2]}><loc_{b[3]}>" in answer for b in bins)


def test_florence2_ocr_quads_agree_with_its_processor() -> None:
    from transformers.models.florence2.processing_florence2 import Florence2PostProcessor

    size = (800, 600)
    processor = Florence2PostProcessor(None, SimpleNamespace(all_special_tokens=[]))
    quads = np.array([[[10, 10], [200, 14], [198, 60], [8, 55]], [[300, 300], [700, 300], [700, 400], [300, 400]]], float)
    answer = "</s>" + format_answer("florence2", "ocr_regions", quads, ["Hello world", "TOTAL 12.50"], size) + "</s>"
    ours = parse(answer, size, "florence2", kind="ocr_regions").result
    reference = processor.parse_ocr_from_text_and_spans(answer, None, size)
    assert isinstance(ours, OCRResult)
    assert ours.texts == [item["text"] for item in reference] == ["Hello world", "TOTAL 12.50"]
    for region, item in zip(ours.regions, reference):
        np.testing.assert_array_equal(np.floor(np.array(region.quad).reshape(-1)), item["quad_box"])
        np.testing.assert_allclose(region.box, [*np.min(region.quad, axis=0), *np.max(region.quad, axis=0)])


# --- where supervision goes wrong, vistool does not -------------------------------------


def test_malformed_items_are_reported_not_raised() -> None:
    # supervision's Gemini and Qwen parsers raise IndexError / ValueError on the 3-number box.
    answer = '[{"box_2d": [171, 75, 245], "label": "short"}, {"box_2d": [171, 75, 245, 308], "label": "ok"}, {"label": "no box"}]'
    parsed = parse(answer, (100, 100))
    assert parsed.detections.data["class_name"].tolist() == ["ok"]
    assert sorted(parsed.diagnostics.reasons()) == sorted([BAD_COORDINATES, MISSING_COORDINATES])
    assert parsed.diagnostics.found == 3


def test_paligemma_labels_with_punctuation_segmentation_tokens_and_missing_space() -> None:
    answer = "<loc0100><loc0200><loc0300><loc0400><seg012><seg055> person's hat ; <loc0000><loc0000><loc1023><loc1023>cat<eos>"
    parsed = parse(answer, (1024, 1024), "paligemma2")
    assert parsed.detections.data["class_name"].tolist() == ["person's hat", "cat"]
    np.testing.assert_allclose(parsed.detections.xyxy, [[200, 100, 400, 300], [0, 0, 1023, 1023]])


def test_paligemma_incomplete_tokens_are_reported() -> None:
    answer = "<loc0100><loc0200><loc0300> cat ; <loc0100><loc0200><loc0300><loc0400> dog ; <loc0100><loc02"
    parsed = parse(answer, (1024, 1024), "paligemma2")
    assert parsed.detections.data["class_name"].tolist() == ["dog"]
    assert parsed.diagnostics.reasons() == [INCOMPLETE_TOKENS, TRUNCATED]
    assert parsed.diagnostics.truncated


def test_qwen3_thinking_block_is_skipped() -> None:
    answer = '<think>The cat is at [1, 2]. {"bbox_2d": [0, 0, 1, 1]}</think>```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "cat"}]\n```'
    parsed = parse(answer, (1000, 1000), "qwen3vl")
    np.testing.assert_allclose(parsed.detections.xyxy, [[100, 200, 300, 400]])
    assert "cat is at" in (parsed.diagnostics.thought or "")


# --- arguments ------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(VistoolError, match="resized_size"):
        parse("[]", (640, 480), "qwen25vl")
    with pytest.raises(VistoolError, match="image_size"):
        parse("[]", (0, 480))
    with pytest.raises(VistoolError, match="image_size"):
        parse("[]", (640.5, 480))  # type: ignore[arg-type]
    with pytest.raises(VistoolError, match="kind"):
        parse("[]", (640, 480), kind="masks")
    with pytest.raises(VistoolError, match="unknown model profile"):
        parse("[]", (640, 480), "llava")
    with pytest.raises(VistoolError, match="string"):
        parse(None, (640, 480))  # type: ignore[arg-type]


# --- geometry clean-up as seen through parse ---------------------------------------------


def test_reversed_corners_clipping_and_drops_are_reported() -> None:
    items = [
        {"box_2d": [500, 600, 100, 200], "label": "reversed"},  # y2 < y1, x2 < x1
        {"box_2d": [-50, 900, 200, 1100], "label": "crossing"},
        {"box_2d": [100, 100, 100, 300], "label": "flat"},
        {"box_2d": [1100, 100, 1200, 300], "label": "outside"},
        {"box_2d": ["NaN", 1, 2, 3], "label": "nan"},
    ]
    parsed = parse(json.dumps(items), (1000, 500))
    detections = parsed.detections
    assert detections.data["class_name"].tolist() == ["reversed", "crossing"]
    np.testing.assert_allclose(detections.xyxy, [[200, 50, 600, 250], [900, 0, 1000, 100]])
    assert parsed.diagnostics.reordered == 1 and parsed.diagnostics.clipped == 1
    assert sorted(parsed.diagnostics.reasons()) == sorted([ZERO_AREA, OUTSIDE_IMAGE, NON_FINITE])
    # spans stay aligned with the kept items
    assert [json.loads(json.dumps(items))[i]["label"] for i in (0, 1)] == detections.data["class_name"].tolist()
    for span, label in zip(parsed.spans, ["reversed", "crossing"]):
        assert label in json.dumps(items)[span[0] : span[1]]


def test_numbers_as_strings_floats_pairs_and_one_string() -> None:
    items = [
        {"box_2d": ["171", "75", "245", "308"], "label": "strings"},
        {"box_2d": [171.0, 75.5, 245.25, 308], "label": "floats"},
        {"box_2d": [[171, 75], [245, 308]], "label": "pairs"},
        {"box_2d": "171, 75, 245, 308", "label": "one string"},
    ]
    parsed = parse(json.dumps(items), (1000, 1000))
    np.testing.assert_allclose(
        parsed.detections.xyxy, [[75, 171, 308, 245], [75.5, 171, 308, 245.25], [75, 171, 308, 245], [75, 171, 308, 245]]
    )


def test_truncated_answer_keeps_complete_items() -> None:
    full = format_answer("gemma4", "boxes", np.array([[10, 10, 50, 50], [60, 60, 90, 90], [1, 1, 5, 5.0]]), ["a", "b", "c"], (100, 100))
    cut = full[: full.rindex("box_2d") + 12]
    parsed = parse(cut, (100, 100))
    assert parsed.detections.data["class_name"].tolist() == ["a", "b"]
    assert parsed.diagnostics.truncated and parsed.diagnostics.reasons() == [TRUNCATED]


# --- classes and confidence -------------------------------------------------------------


def test_class_ids_follow_the_requested_order_and_unasked_labels_come_after() -> None:
    items = [
        {"box_2d": [0, 0, 10, 10], "label": "Dog"},
        {"box_2d": [0, 0, 10, 10], "label": "bird"},
        {"box_2d": [0, 0, 10, 10], "label": "cat"},
        {"box_2d": [0, 0, 10, 10], "label": "zebra"},
        {"box_2d": [0, 0, 10, 10], "label": "bird"},
    ]
    # The same box on purpose (this test is about class ids): keep the repeated "bird".
    parsed = parse(json.dumps(items), (100, 100), classes=["cat", "dog", "horse"], duplicate_iou=None)
    detections = parsed.detections
    assert detections.class_id.tolist() == [1, 3, 0, 4, 3]
    assert detections.data["class_name"].tolist() == ["dog", "bird", "cat", "zebra", "bird"]
    assert parsed.diagnostics.unknown_labels == ["bird", "zebra"]


def test_single_requested_class_names_unlabelled_items() -> None:
    parsed = parse("[[10, 10, 50, 50]]", (100, 100), classes=["button"])
    assert parsed.detections.data["class_name"].tolist() == ["button"]
    assert parse("[[10, 10, 50, 50]]", (100, 100)).detections.data["class_name"].tolist() == ["object"]


def test_confidence_from_the_model_from_the_caller_or_none() -> None:
    with_scores = '[{"box_2d": [0, 0, 10, 10], "label": "a", "confidence": 0.9}, {"box_2d": [0, 0, 20, 20], "label": "b", "score": "0.5"}]'
    np.testing.assert_allclose(parse(with_scores, (100, 100)).detections.confidence, [0.9, 0.5])
    partial = '[{"box_2d": [0, 0, 10, 10], "label": "a", "confidence": 0.9}, {"box_2d": [0, 0, 20, 20], "label": "b"}]'
    assert parse(partial, (100, 100)).detections.confidence is None
    given = parse(partial, (100, 100), confidence=[0.3, 0.7])
    np.testing.assert_allclose(given.detections.confidence, [0.3, 0.7])
    given.set_confidence(None)
    assert given.detections.confidence is None
    with pytest.raises(VistoolError):
        given.set_confidence([0.1])


# --- points and OCR regions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "answer", "resized"),
    [
        ("gemma4", '[{"point_2d": [250, 100], "label": "eye"}]', None),
        ("qwen3vl", '[{"point_2d": [100, 250], "label": "eye"}]', None),
        ("qwen25vl", '[{"point_2d": [28, 140], "label": "eye"}]', (280, 560)),
    ],
)
def test_points_per_family(profile: str, answer: str, resized: tuple[int, int] | None) -> None:
    parsed = parse(answer, (1000, 2000), profile, kind="points", resized_size=resized)
    points = parsed.result
    assert isinstance(points, PointsResult)
    np.testing.assert_allclose(points.xy, [[100, 500]])
    keypoints = points.to_keypoints()
    assert isinstance(keypoints, sv.KeyPoints)
    np.testing.assert_allclose(keypoints.xy, [[[100, 500]]])
    assert keypoints.data["class_name"].tolist() == ["eye"]


def test_points_outside_the_image_are_clipped() -> None:
    parsed = parse('[{"point_2d": [1200, -5], "label": "p"}, {"point_2d": [500, 500], "label": "q"}]', (100, 100), kind="points")
    np.testing.assert_allclose(parsed.result.xy, [[0, 100], [50, 50]])
    assert parsed.diagnostics.clipped == 1


def test_gemma_ocr_regions_from_boxes_and_paligemma_ocr() -> None:
    answer = '```json\n[{"box_2d": [100, 50, 200, 450], "text": "Hello"}, {"box_2d": [300, 50, 400, 300], "label": "World"}]\n```'
    result = parse(answer, (1000, 1000), kind="ocr_regions").result
    assert isinstance(result, OCRResult)
    assert result.texts == ["Hello", "World"]
    assert result.regions[0].quad == ((50.0, 100.0), (450.0, 100.0), (450.0, 200.0), (50.0, 200.0))
    assert result.regions[0].box == (50.0, 100.0, 450.0, 200.0)
    detections = result.to_detections()
    assert detections.data["xyxyxyxy"].shape == (2, 4, 2)
    pali = parse("<loc0100><loc0050><loc0200><loc0450> Hello ; <loc0300><loc0050><loc0400><loc0300> World", (1024, 1024), "paligemma2", kind="ocr_regions")
    assert pali.result.texts == ["Hello", "World"]


def test_reversed_quad_is_put_clockwise_from_top_left() -> None:
    # counter-clockwise, starting bottom-right
    quad = np.array([[[200, 60], [200, 14], [10, 10], [8, 55]]], float)
    answer = format_answer("florence2", "ocr_regions", quad, ["x"], (1000, 1000))
    region = parse(answer, (1000, 1000), "florence2", kind="ocr_regions").result.regions[0]
    xs, ys = zip(*region.quad)
    assert region.quad[0] == min(region.quad, key=lambda v: v[0] + v[1])
    signed = sum(xs[i] * ys[(i + 1) % 4] - xs[(i + 1) % 4] * ys[i] for i in range(4))
    assert signed > 0  # clockwise as displayed (y down)


# --- serialisation --------------------------------------------------------------------------


def _same(a: ParseResult, b: ParseResult) -> None:
    assert a.to_dict() == b.to_dict()
    assert a.kind == b.kind and a.profile == b.profile and a.image_size == b.image_size


@pytest.mark.parametrize(
    ("answer", "kind", "profile"),
    [
        ('[{"box_2d": [171, 75, 245, 308], "label": "a", "confidence": 0.123456789}, {"box_2d": [1, 2, 3, 4], "label": "b"', "boxes", "gemma4"),
        ('[{"point_2d": [171, 75], "label": "a"}, {"point_2d": [1, 2]}]', "points", "gemma4"),
        ("</s>Hi<loc_1><loc_2><loc_300><loc_2><loc_300><loc_40><loc_1><loc_40></s>", "ocr_regions", "florence2"),
    ],
)
def test_every_result_survives_json(answer: str, kind: str, profile: str) -> None:
    parsed = parse(answer, (641, 479), profile, kind=kind, classes=["a"])
    again = ParseResult.from_json(parsed.to_json())
    _same(parsed, again)
    if kind == "boxes":
        for field in ("xyxy", "class_id", "confidence"):
            np.testing.assert_array_equal(getattr(parsed.detections, field), getattr(again.detections, field))
        assert again.detections.xyxy.dtype == parsed.detections.xyxy.dtype
        assert again.spans == parsed.spans
    assert again.diagnostics == parsed.diagnostics


def test_detections_json_keeps_masks_tracker_ids_and_metadata() -> None:
    from vistool.postprocess import detections_from_dict, detections_to_dict

    mask = np.zeros((2, 5, 7), dtype=bool)
    mask[0, 1:3, 2:6] = True
    detections = sv.Detections(
        xyxy=np.array([[0.1, 0.2, 3.3, 4.4], [1, 1, 2, 2]], dtype=np.float32),
        mask=mask,
        confidence=np.array([0.5, 0.25]),
        class_id=np.array([3, 1]),
        tracker_id=np.array([7, 8]),
        data={"class_name": np.array(["a", "b"])},
        metadata={"model": "x"},
    )
    again = detections_from_dict(json.loads(json.dumps(detections_to_dict(detections))))
    for field in ("xyxy", "mask", "confidence", "class_id", "tracker_id"):
        np.testing.assert_array_equal(getattr(again, field), getattr(detections, field))
        assert getattr(again, field).dtype == getattr(detections, field).dtype
    assert again.data["class_name"].tolist() == ["a", "b"] and again.metadata == {"model": "x"}


def test_oracle_writes_empty_answers_that_parse_to_nothing() -> None:
    for family in ["gemma4", "qwen25vl", "paligemma2", "florence2"]:
        resized = (280, 224) if family == "qwen25vl" else None
        answer = format_answer(family, "boxes", np.empty((0, 4)), [], (640, 480), resized)
        parsed = parse(answer, (640, 480), family, resized_size=resized)
        assert len(parsed) == 0 and parsed.diagnostics.dropped == []


def test_deeply_nested_junk_is_reported_not_a_crash() -> None:
    from vistool.postprocess.diagnostics import INTERNAL_ERROR

    for junk in ["[" * 100_000, "[1," * 30_000, '[{"box_2d": [1, 2, 3, 4], "label": "a"' * 2_000, "{" * 50_000]:
        parsed = parse(junk, (100, 100))
        assert len(parsed) == 0
        assert INTERNAL_ERROR not in parsed.diagnostics.reasons()
