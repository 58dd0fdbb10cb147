"""COCO detection evaluator: reproduction of the official COCO API printout, and synthetic checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from vistool.evaluation.coco import STAT_NAMES, CocoDataset, detections_to_results, main, score_coco

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO100 = SHARED / "coco-val2014-100"
needs_coco100 = pytest.mark.skipif(
    not (COCO100 / "instances_val2014_100.json").exists(),
    reason=f"reference data absent: {COCO100} (the 100-image COCO val2014 set beside the project)",
)

# The printout the official COCO API (pycocoDemo) publishes for its fake bbox results on these 100 images.
PUBLISHED_SUMMARY = """\
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.697
 Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.573
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.586
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.519
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.501
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.387
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.594
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.595
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.640
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.566
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.564
"""
PUBLISHED_STATS = [0.505, 0.697, 0.573, 0.586, 0.519, 0.501, 0.387, 0.594, 0.595, 0.640, 0.566, 0.564]


@needs_coco100
def test_reproduces_official_fake_results_printout() -> None:
    dataset = CocoDataset(COCO100 / "instances_val2014_100.json")
    gt_before = copy.deepcopy(dataset.instances)
    score = dataset.score(COCO100 / "instances_val2014_fakebbox100_results.json")
    assert [round(score[name], 3) for name in STAT_NAMES] == PUBLISHED_STATS
    assert (round(score["AP"], 3), round(score["AP50"], 3), round(score["AP75"], 3)) == (0.505, 0.697, 0.573)
    assert score.summary.splitlines() == PUBLISHED_SUMMARY.splitlines()
    assert PUBLISHED_SUMMARY in score.text
    assert score.num_images == 100 and score.num_detections == 734 and score.warnings == []
    assert len(score.per_class_ap) == 80
    assert score.per_class_ap["fire hydrant"] is None  # no ground truth among the 100 images
    assert dataset.instances == gt_before  # COCOeval flags ground truth in place: the scorer works on a copy


# ---------------------------------------------------------------- synthetic data

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "traffic light"}]


def _gt() -> dict:
    boxes = {1: [(1, [10, 10, 40, 40]), (2, [50, 50, 40, 30])], 2: [(1, [0, 0, 60, 60])], 3: [(3, [20, 30, 40, 40])]}
    images = [{"id": i, "file_name": f"img{i}.jpg", "width": 100, "height": 100} for i in boxes]
    anns = []
    for image_id, items in boxes.items():
        for cat, (x, y, w, h) in items:
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def _perfect(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9} for a in gt["annotations"]]


def test_perfect_predictions_score_one() -> None:
    gt = _gt()
    score = score_coco(gt, _perfect(gt))
    assert score["AP"] == pytest.approx(1.0) and score["AP50"] == pytest.approx(1.0) and score["AR100"] == pytest.approx(1.0)
    assert score["APs"] == -1  # no small objects: pycocotools reports -1
    assert score.per_class_ap == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0), "traffic light": pytest.approx(1.0)}
    assert score.num_detections == 4 and len(score.summary.splitlines()) == 12


def test_minimal_ground_truth_without_area_or_iscrowd() -> None:
    gt = _gt()
    for ann in gt["annotations"]:
        del ann["area"], ann["iscrowd"]
    assert score_coco(gt, _perfect(gt))["AP"] == pytest.approx(1.0)
    assert "area" not in gt["annotations"][0]  # the caller's dict is left alone


def test_shifted_predictions_score_lower() -> None:
    gt = _gt()
    shifted = _perfect(gt)
    for r in shifted:
        r["bbox"][0] += r["bbox"][2] * 0.3  # IoU ~0.54: counts at 0.5, not at 0.75
    score = score_coco(gt, shifted)
    assert score["AP50"] == pytest.approx(1.0)
    assert score["AP75"] == pytest.approx(0.0)
    assert 0.0 < score["AP"] < 0.5


def test_missing_scores_empty_results_and_bad_entries() -> None:
    gt = _gt()
    no_scores = [{k: v for k, v in r.items() if k != "score"} for r in _perfect(gt)]
    score = score_coco(gt, no_scores + [{"image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1]}, {"image_id": 1, "bbox": "x"}])
    assert score["AP"] == pytest.approx(1.0)
    assert any("no score" in w for w in score.warnings)
    assert any("category_id" in w for w in score.warnings) and any("malformed" in w for w in score.warnings)
    empty = score_coco(gt, [])
    assert empty["AP"] == 0.0 and "no results to evaluate" in empty.warnings
    with pytest.raises(ValueError, match="absent from the ground truth"):
        score_coco(gt, [{"image_id": 42, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.0}])


def test_category_and_image_subsets(tmp_path: Path) -> None:
    gt = _gt()
    results = _perfect(gt)
    results = [r for r in results if r["category_id"] != 2]  # dogs missed
    assert score_coco(gt, results)["AP"] == pytest.approx(2 / 3)
    only = score_coco(gt, results, categories=["cat", "Traffic Light"])
    assert only["AP"] == pytest.approx(1.0) and set(only.per_class_ap) == {"cat", "traffic light"}
    assert score_coco(gt, results, categories=[2])["AP"] == pytest.approx(0.0)
    one_image = score_coco(gt, results, image_ids=[1])  # cat found, dog missed, no traffic light there
    assert one_image.num_images == 1 and one_image["AP"] == pytest.approx(0.5)
    assert one_image.per_class_ap["traffic light"] is None
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    res_path = tmp_path / "res.json"
    res_path.write_text(json.dumps(results))
    assert score_coco(path, res_path, categories=["cat"])["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown category"):
        score_coco(gt, results, categories=["zebra"])


def test_dataset_reader(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_gt()))
    ds = CocoDataset(path, images_dir=tmp_path / "imgs", categories=["cat"], limit=2)
    samples = list(ds)
    assert len(ds) == 2 and [s.image_id for s in samples] == [1, 2]
    assert samples[0].image == tmp_path / "imgs" / "img1.jpg" and samples[0].id == "1"
    assert samples[0].categories == ["cat"] and samples[0].labels == ["cat"]
    assert samples[0].boxes == [(10.0, 10.0, 50.0, 50.0)]  # xywh -> xyxy
    assert samples[1].boxes == [(0.0, 0.0, 60.0, 60.0)] and ds.name_to_id == {"cat": 1}
    assert [s.labels for s in CocoDataset(path, categories=["traffic light"])] == [[], [], ["traffic light"]]
    assert ds.score(_perfect(_gt()))["AP"] == pytest.approx(1.0)  # only cats, only images 1-2
    assert CocoDataset(path).images_dir == tmp_path


def test_detections_to_results_round_trip() -> None:
    gt = _gt()
    name_to_id = {c["name"]: c["id"] for c in CATEGORIES}
    results, dropped = detections_to_results(1, [[10, 10, 50, 50], [50, 50, 90, 80], [0, 0, 5, 5]], ["CAT", "dog ", "unicorn"], name_to_id, [0.9, 0.8, 0.7])
    assert dropped == ["unicorn"]
    assert results[0] == {"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 40.0, 40.0], "score": 0.9}
    assert score_coco(gt, results, image_ids=[1])["AP"] == pytest.approx(1.0)


def test_cli_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _gt()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(_perfect(gt)))
    assert main(["score", str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--report", str(tmp_path / "out" / "coco")]) == 0
    out = capsys.readouterr().out
    assert "| AP | 1.0000 |" in out and "Average Precision" in out
    report = json.loads((tmp_path / "out" / "coco.json").read_text())
    assert report["metrics"]["AP"] == pytest.approx(1.0)
    assert (tmp_path / "out" / "coco.md").read_text().startswith("# COCO detection")
    assert main(["list", str(tmp_path / "gt.json"), "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "1"
