"""Referring-expression evaluator: boxes with known IoU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vistool.evaluation.refexp import RefExpSample, main, read_refexp, score_refexp

GT = (0.0, 0.0, 10.0, 10.0)


def _samples(n: int, split: str | None = None) -> list[RefExpSample]:
    return [RefExpSample(str(i), Path("img.jpg"), "the thing", GT, split) for i in range(n)]


def test_known_ious() -> None:
    preds = [
        [0, 0, 10, 10],  # IoU 1
        [0, 0, 10, 5],  # IoU 0.5 exactly: counts (>=)
        [5, 0, 15, 10],  # IoU 1/3, centre (10, 5) on the right edge: centre hit
        [20, 20, 30, 30],  # IoU 0
        None,  # format error
        [10, 10, 0, 0],  # reversed corners are put in order: IoU 1
    ]
    score = score_refexp(_samples(6), preds)
    assert [p["iou"] for p in score.per_sample] == pytest.approx([1, 0.5, 1 / 3, 0, 0, 1])
    assert [p["hit"] for p in score.per_sample] == [True, True, False, False, False, True]
    assert [p["center_hit"] for p in score.per_sample] == [True, True, True, False, False, True]
    assert score.acc_at_iou == pytest.approx(3 / 6) and score.center_accuracy == pytest.approx(4 / 6)
    assert score.mean_iou == pytest.approx((1 + 0.5 + 1 / 3 + 1) / 6)
    assert score.format_errors == 1 and score.format_error_rate == pytest.approx(1 / 6)
    strict = score_refexp(_samples(6), preds, iou_threshold=0.75)
    assert strict.acc_at_iou == pytest.approx(2 / 6)
    assert score_refexp(_samples(2), {"0": [0, 0, 10, 10], "1": [0, 0, "a", 1]}).format_errors == 1


def test_reader_formats(tmp_path: Path) -> None:
    path = tmp_path / "refs.jsonl"
    lines = [
        {"id": "a", "image": "i1.jpg", "expression": "left dog", "bbox": [10, 20, 30, 40], "split": "testA"},
        {"ref_id": 7, "file_name": "i2.jpg", "sentences": [{"sent": "red car"}, {"sent": "car on the left"}], "bbox": [0, 0, 5, 5], "split": "testB"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    samples = read_refexp(path)
    assert [s.id for s in samples] == ["a", "7/0", "7/1"]
    assert samples[0].bbox == (10, 20, 40, 60) and samples[0].image == tmp_path / "i1.jpg"  # xywh -> xyxy
    assert samples[2].prompt == "car on the left" and samples[2].split == "testB"
    assert len(read_refexp(path, limit=2)) == 2
    assert read_refexp(path, box_format="xyxy", images_dir="/data")[0].bbox == (10, 20, 30, 40)
    assert read_refexp(path, images_dir="/data")[0].image == Path("/data/i1.jpg")

    score = score_refexp(samples, {"a": [10, 20, 40, 60], "7/0": [0, 0, 5, 5]})
    assert score.by_split == {"testA": {"n": 1, "correct": 1, "accuracy": 1.0}, "testB": {"n": 2, "correct": 1, "accuracy": 0.5}}
    assert "by_split" not in score_refexp(_samples(1), [[0, 0, 1, 1]]).to_dict()

    path.write_text(json.dumps({"image": "i.jpg", "expression": "x", "bbox": [0, 0, -1, 5]}) + "\n")
    with pytest.raises(ValueError, match="bbox"):
        read_refexp(path)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"id": "a", "image": "i.jpg", "expression": "cat", "bbox": [0, 0, 10, 10]}) + "\n")
    preds = tmp_path / "pred.jsonl"
    preds.write_text(json.dumps({"id": "a", "bbox": [0, 0, 10, 5]}) + "\n")
    assert main(["score", str(gt), str(preds), "--report", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert "| acc_at_iou | 1.0000 |" in out and "| mean_iou | 0.5000 |" in out
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["center_accuracy"] == 1.0
