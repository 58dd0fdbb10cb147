"""Label Studio pre-annotations: the tasks JSON, validated and converted by label-studio-sdk
(when installed) against the labeling config written beside it."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.integrations.labelstudio import labeling_config, local_files_url, to_task, write_labelstudio
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse, TokenLogprob

W, H = 640, 480
IMAGE = Image.new("RGB", (W, H), (90, 120, 150))
DETECT_ANSWER = json.dumps([
    {"box_2d": [100, 50, 500, 250], "label": "cat"},
    {"box_2d": [200, 600, 900, 950], "label": "dog"},
])
OCR_ANSWER = json.dumps([{"box_2d": [100, 100, 200, 600], "text": "Hello world"}, {"box_2d": [300, 100, 400, 400], "text": "Total: 4"}])


def _scored(text: str) -> GenerationResponse:
    """A response whose every character is one token with log-prob log(0.8) (so boxes get a confidence)."""
    return GenerationResponse(text=text, logprobs=[TokenLogprob(char, math.log(0.8), i) for i, char in enumerate(text)])


def _results():
    vt = Vistool(ReplayBackend([_scored(DETECT_ANSWER), OCR_ANSWER, GenerationResponse(text="", choice_logprobs=[-2.0, -0.2])]))
    return vt.detect(IMAGE, ["cat", "dog"]), vt.ocr(IMAGE, regions=True), vt.classify(IMAGE, ["cat", "dog"])


def test_boxes_are_rectangle_labels_in_percent_with_scores():
    detect, _, _ = _results()
    task = to_task("photos/a b.jpg", detect)
    assert task["data"]["image"] == "/data/local-files/?d=photos/a%20b.jpg"
    (prediction,) = task["predictions"]
    first, second = prediction["result"]
    assert first["type"] == "rectanglelabels" and first["value"]["rectanglelabels"] == ["cat"]
    assert first["value"]["x"] == pytest.approx(5.0) and first["value"]["y"] == pytest.approx(10.0)
    assert first["value"]["width"] == pytest.approx(20.0) and first["value"]["height"] == pytest.approx(40.0)
    assert first["original_width"] == W and first["original_height"] == H
    assert first["score"] == pytest.approx(0.8) and prediction["score"] == pytest.approx(0.8)
    assert second["value"]["rectanglelabels"] == ["dog"]


def test_ocr_regions_are_rectangles_with_per_region_text():
    _, ocr, _ = _results()
    items = to_task("doc.png", ocr)["predictions"][0]["result"]
    assert [item["type"] for item in items] == ["rectanglelabels", "textarea"] * 2
    assert items[0]["id"] == items[1]["id"] and items[1]["value"]["text"] == ["Hello world"]
    assert items[1]["value"]["x"] == items[0]["value"]["x"] == pytest.approx(10.0)


def test_classification_is_a_scored_choice():
    _, _, classify = _results()
    prediction = to_task("a.jpg", classify)["predictions"][0]
    assert prediction["result"][0]["value"] == {"choices": ["dog"]}
    assert prediction["score"] == pytest.approx(classify.extras["confidence"])
    assert '<Choice value="cat"/>' in labeling_config("classify", ["cat", "dog"])


def test_write_labelstudio_leaves_out_failures(tmp_path):
    detect, _, _ = _results()
    failed = Vistool(ReplayBackend(["[]"])).detect([str(tmp_path / "missing.jpg")], ["cat"])[0]
    assert write_labelstudio(tmp_path / "ls", [("b.jpg", detect), ("missing.jpg", failed), ("a.jpg", detect)], asked=["dog", "cat"]) == 2
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [task["data"]["vistool_image"] for task in tasks] == ["a.jpg", "b.jpg"]
    config = (tmp_path / "ls" / "label_config.xml").read_text()
    assert config.index('value="dog"') < config.index('value="cat"')


# ------------------------------------------------------- label-studio-sdk's own readers
def test_label_studio_sdk_validates_every_prediction(tmp_path):
    interface = pytest.importorskip("label_studio_sdk.label_interface").LabelInterface
    detect, ocr, classify = _results()
    for task_name, result, classes in (("detect", detect, ["cat", "dog"]), ("ocr_regions", ocr, []), ("classify", classify, ["cat", "dog"])):
        config = labeling_config(task_name, classes)
        checker = interface(config)
        prediction = to_task("a.jpg", result)["predictions"][0]
        assert checker.validate_prediction(prediction, return_errors=True) == [], (task_name, prediction)
    broken = to_task("a.jpg", detect)["predictions"][0]
    broken["result"][0]["value"]["rectanglelabels"] = ["zebra"]
    assert interface(labeling_config("detect", ["cat", "dog"])).validate_prediction(broken, return_errors=True)


def test_label_studio_converter_turns_the_boxes_back_into_our_pixels(tmp_path):
    converter_module = pytest.importorskip("label_studio_sdk.converter")
    detect, _, _ = _results()
    write_labelstudio(tmp_path / "ls", [("a.jpg", detect)], asked=["cat", "dog"])
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    for number, task in enumerate(tasks, start=1):  # what an annotator who accepts the predictions exports
        task.update(id=number, annotations=[{"id": number, "result": task["predictions"][0]["result"]}])
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(tasks))
    config = (tmp_path / "ls" / "label_config.xml").read_text()
    converter = converter_module.Converter(config, str(tmp_path), download_resources=False)
    converter.convert_to_coco(str(exported), str(tmp_path / "coco"), is_dir=False)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    names = {category["id"]: category["name"] for category in coco["categories"]}
    boxes = {names[a["category_id"]]: a["bbox"] for a in coco["annotations"]}
    x1, y1, x2, y2 = detect.detections.xyxy[0]
    assert boxes["cat"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-6)
    assert coco["images"][0]["width"] == W and coco["images"][0]["height"] == H
    assert local_files_url("a.jpg") in coco["images"][0]["file_name"] or coco["images"][0]["file_name"].endswith("a.jpg")
