"""Oracle round trips: ground truth -> each family's native answer -> parse -> COCO mAP.

Answers are quantised exactly as each model would emit them (Florence-2's quantiser is
checked against its processor in test_postprocess_parse.py; Qwen2.5-VL's resized size
comes from transformers' smart_resize). Real photos come from ../shared/data/coco8.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
import supervision as sv
from PIL import Image, ImageOps

from tests.postprocess_helpers import COCO8_DIR, needs_coco8, qwen_resized
from vistool.postprocess import format_answer, parse
from vistool.postprocess.geometry import exif_transform_boxes
from vistool.postprocess.oracle import OracleImage, coco_map, coco_stats, extreme_images, load_yolo_dataset, round_trip_map
from vistool.profiles import PROFILES

FAMILIES = sorted(PROFILES)
EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def coco8() -> list[OracleImage]:
    return load_yolo_dataset(COCO8_DIR)


@pytest.mark.parametrize("family", FAMILIES)
def test_extreme_shapes_round_trip(family: str) -> None:
    assert round_trip_map(family, extreme_images(), qwen_resized) >= 0.99


@needs_coco8
@pytest.mark.parametrize("family", FAMILIES)
def test_coco8_photos_round_trip(family: str, coco8: list[OracleImage]) -> None:
    assert len(coco8) == 8 and sum(len(image.labels) for image in coco8) > 20
    assert round_trip_map(family, coco8, qwen_resized) >= 0.99


def test_the_oracle_can_fail() -> None:
    """A family's answers read with another family's convention score near zero."""
    truth = extreme_images()[:2]
    classes = sorted({label for image in truth for label in image.labels})
    predictions = []
    for image in truth:
        answer = format_answer("qwen3vl", "boxes", image.xyxy, image.labels, image.size)  # x first
        predictions.append(parse(answer.replace("bbox_2d", "box_2d"), image.size, "gemma4", classes=classes).detections)
    assert coco_map(truth, predictions, classes) < 0.5


def test_coco_stats_are_pycocotools_summary_in_its_order() -> None:
    """Boxes shifted by a third of their size keep AP@.5 for large boxes but lose mAP@[.5:.95];
    coco_map is stats[0]; no detection at all scores 0 everywhere."""
    image = OracleImage(1, (1000, 1000), np.array([[100, 100, 400, 400], [500, 500, 900, 900]], dtype=np.float64), ["a", "b"])
    shifted = image.xyxy + np.array([30, 30, 30, 30])  # IoU ~0.67 and ~0.74
    found = sv.Detections(xyxy=shifted, class_id=np.array([0, 1]), confidence=np.array([0.9, 0.8]), data={"class_name": np.array(["a", "b"])})
    predictions = [found]
    stats = coco_stats([image], predictions, ["a", "b"])
    assert len(stats) == 12 and stats[1] == pytest.approx(1.0) and stats[0] < 0.6
    assert coco_map([image], predictions, ["a", "b"]) == stats[0]
    assert coco_stats([image], [sv.Detections.empty()], ["a", "b"]) == [0.0] * 12


@lru_cache(maxsize=None)
def _with_orientation(path: str, orientation: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """Re-save a photo's stored pixels as JPEG with an EXIF orientation tag and re-open it.

    Returns (the tag read back, the stored size, the size after exif_transpose: what
    vistool.io loads and the model sees). Cached: every family uses the same files.
    """
    with Image.open(path) as original:
        exif = original.getexif()
        exif[EXIF_ORIENTATION] = orientation
        buffer = io.BytesIO()
        original.convert("RGB").save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as stored:
        return stored.getexif().get(EXIF_ORIENTATION), stored.size, ImageOps.exif_transpose(stored).size


@needs_coco8
@pytest.mark.parametrize("family", FAMILIES)
def test_exif_orientations_come_back_as_displayed(family: str, coco8: list[OracleImage]) -> None:
    baseline = round_trip_map(family, coco8, qwen_resized)
    for orientation in range(2, 9):
        displayed_truth, raw_size_predictions = [], []
        classes = sorted({label for image in coco8 for label in image.labels})
        for image in coco8:
            tag, stored_size, displayed_size = _with_orientation(image.name, orientation)
            assert tag == orientation
            boxes = exif_transform_boxes(image.xyxy, orientation, stored_size)
            displayed_truth.append(OracleImage(image.image_id, displayed_size, boxes, image.labels, image.name))
            # Negative control: mapping with the stored (un-rotated) size.
            resized = qwen_resized(displayed_size) if PROFILES[family].needs_resized_size else None
            answer = format_answer(family, "boxes", boxes, image.labels, displayed_size, resized)
            raw_size_predictions.append(parse(answer, stored_size, family, classes=classes, resized_size=resized).detections)
        score = round_trip_map(family, displayed_truth, qwen_resized)
        assert score >= 0.99, (orientation, score)
        assert abs(score - baseline) < 0.01, (orientation, score, baseline)
        if orientation >= 5:  # width and height swap: the stored size gives wrong boxes
            assert coco_map(displayed_truth, raw_size_predictions, classes) < 0.9


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transform_boxes_matches_pil_pixels(orientation: int) -> None:
    """The box transform agrees with PIL's exif_transpose, pixel for pixel."""
    stored = np.zeros((40, 60, 3), dtype=np.uint8)
    box = np.array([[7, 5, 19, 31]], dtype=np.float64)  # x1, y1, x2, y2 (exclusive ends)
    stored[5:31, 7:19] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif.tobytes())
    displayed = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    ys, xs = np.nonzero(displayed[..., 0] > 127)
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    np.testing.assert_array_equal(exif_transform_boxes(box, orientation, (60, 40))[0], expected)


@pytest.mark.parametrize("family", ["gemma4", "gemini", "qwen3vl", "qwen25vl"])
def test_points_round_trip(family: str) -> None:
    rng = np.random.default_rng(11)
    for size in [(640, 480), (3000, 40), (40, 3000), (7, 7)]:
        xy = rng.uniform(0, 1, (20, 2)) * size
        resized = qwen_resized(size) if PROFILES[family].needs_resized_size else None
        answer = format_answer(family, "points", xy, ["p"] * 20, size, resized)
        back = parse(answer, size, family, kind="points", resized_size=resized).result.xy
        step = np.array(size) / (np.array(resized) if resized else 1000.0)
        assert (np.abs(back - xy) <= step / 2 + 1e-9).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_ocr_regions_round_trip(family: str) -> None:
    size = (1200, 900)
    quads = np.array([[[100, 100], [500, 100], [500, 160], [100, 160]], [[600, 700], [1100, 700], [1100, 800], [600, 800]]], float)
    resized = qwen_resized(size) if PROFILES[family].needs_resized_size else None
    answer = format_answer(family, "ocr_regions", quads, ["Invoice 42", "Total: $9.99"], size, resized)
    result = parse(answer, size, family, kind="ocr_regions", resized_size=resized).result
    assert result.texts == ["Invoice 42", "Total: $9.99"]
    np.testing.assert_allclose(np.array([region.quad for region in result.regions]), quads, atol=2.0)
