"""Drawing with supervision annotators, and COCO conversion both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.postprocess_helpers import DATA_DIR
from vistool.postprocess import (
    coco_categories,
    coco_to_detections,
    detections_to_coco,
    draw,
    parse,
)
from vistool.postprocess.draw import PALETTE, class_color_index

COCO_GT = DATA_DIR / "coco-val2014-100" / "instances_val2014_100.json"


def _color(name: str) -> tuple[int, int, int]:
    return PALETTE.by_idx(class_color_index(name)).as_rgb()


def test_draw_boxes_with_a_stable_colour_per_class_name() -> None:
    image = Image.new("RGB", (200, 100), "white")
    first = parse('[{"box_2d": [200, 100, 800, 400], "label": "cat"}]', (200, 100), classes=["dog", "cat"])
    second = parse('[{"box_2d": [200, 100, 800, 400], "label": "cat"}]', (200, 100))
    assert first.detections.class_id.tolist() != second.detections.class_id.tolist()
    drawn_first, drawn_second = draw(image, first, labels=False), draw(image, second, labels=False)
    assert isinstance(drawn_first, Image.Image) and drawn_first.size == image.size
    assert np.asarray(image).min() == 255  # the input is not modified
    # The box's left edge is at x = 20, y from 20 to 80: drawn in the class colour.
    assert tuple(np.asarray(drawn_first)[50, 20]) == _color("cat")
    np.testing.assert_array_equal(np.asarray(drawn_first), np.asarray(drawn_second))


def test_draw_labels_points_and_ocr_quads_on_arrays() -> None:
    scene = np.full((100, 200, 3), 255, dtype=np.uint8)
    boxes = draw(scene, parse('[{"box_2d": [200, 100, 800, 400], "label": "cat"}]', (200, 100)))
    assert isinstance(boxes, np.ndarray) and boxes.shape == scene.shape
    assert tuple(boxes[50, 20]) == _color("cat")  # arrays are RGB, as vistool loads images
    assert (boxes[:20, 20:80] != 255).any()  # the label box sits above the rectangle
    points = draw(scene, parse('[{"point_2d": [500, 500], "label": "eye"}]', (200, 100), kind="points"), labels=False)
    assert tuple(points[50, 100]) == _color("eye")
    quads = draw(scene, parse('[{"box_2d": [200, 100, 800, 900], "text": "Hi"}]', (200, 100), kind="ocr_regions"), labels=False)
    assert (quads[20:81, 20] != 255).any() and (quads[50, 24:177] == 255).all()
    assert (scene == 255).all()


def test_draw_nothing_returns_a_copy() -> None:
    image = Image.new("RGB", (20, 10), "white")
    drawn = draw(image, parse("no boxes here", (20, 10)))
    assert drawn is not image and np.asarray(drawn).min() == 255


def test_detections_to_coco() -> None:
    detections = parse(
        '[{"box_2d": [100, 100, 300, 500], "label": "cat", "confidence": 0.8}, {"box_2d": [0, 0, 10, 10], "label": "ufo", "confidence": 0.4}]',
        (1000, 1000),
    ).detections
    categories = coco_categories(["dog", "cat"])
    assert categories == [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    results = detections_to_coco(detections, 42, categories)
    assert results == [{"image_id": 42, "category_id": 2, "bbox": [100.0, 100.0, 400.0, 200.0], "score": 0.8}]
    no_score = parse('[{"box_2d": [100, 100, 300, 500], "label": "cat"}]', (1000, 1000)).detections
    assert detections_to_coco(no_score, 1, {"cat": 17})[0]["score"] == 1.0
    with pytest.raises(Exception, match="ufo"):
        detections_to_coco(detections, 42, categories, skip_unknown=False)


def test_coco_ground_truth_to_detections_on_a_made_dataset() -> None:
    dataset = {
        "images": [{"id": 5, "width": 640, "height": 480, "file_name": "a.jpg"}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 17, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 18, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 1},
            {"id": 3, "image_id": 6, "category_id": 18, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
        ],
    }
    detections = coco_to_detections(dataset, 5)
    np.testing.assert_array_equal(detections.xyxy, [[10, 20, 40, 60], [0, 0, 5, 5]])
    assert detections.class_id.tolist() == [17, 18]
    assert detections.data["class_name"].tolist() == ["cat", "dog"]
    assert detections.data["iscrowd"].tolist() == [0, 1]
    assert detections.metadata["width"] == 640
    by_prompt = coco_to_detections(dataset, 5, classes=["dog", "cat"])
    assert by_prompt.class_id.tolist() == [1, 0]
    assert detections_to_coco(detections, 5, dataset["categories"])[0]["bbox"] == [10.0, 20.0, 30.0, 40.0]


@pytest.mark.skipif(not COCO_GT.is_file(), reason=f"COCO ground truth not available: {COCO_GT} is absent")
def test_real_coco_ground_truth_round_trips_to_a_perfect_score() -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground = COCO(str(COCO_GT))
    results = []
    for image_id in ground.getImgIds():
        detections = coco_to_detections(ground, image_id)
        assert len(detections) == len(ground.getAnnIds(imgIds=image_id))
        keep = detections.data["iscrowd"] == 0
        results.extend(detections_to_coco(detections[keep], image_id, ground.dataset["categories"]))
    assert sum(1 for ann in ground.dataset["annotations"] if not ann.get("iscrowd")) == len(results)
    evaluation = COCOeval(ground, ground.loadRes(json.loads(json.dumps(results))), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
