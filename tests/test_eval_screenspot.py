"""ScreenSpot evaluator: reproduction of the published OmniParser v2 ScreenSpot-Pro labels, and synthetic checks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vistool.evaluation.screenspot import main, read_screenspot, score_clicks, score_predictions_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OMNI_LOG = SHARED / "screenspot-pro-omniparser" / "logs_sspro_omniv2.jsonl"
needs_omni_log = pytest.mark.skipif(
    not OMNI_LOG.exists(), reason=f"reference data absent: {OMNI_LOG} (published OmniParser v2 ScreenSpot-Pro log)"
)


def _published_accuracy(rows: list[dict], key: str) -> dict[str, float]:
    total = Counter(r[key] for r in rows)
    correct = Counter(r[key] for r in rows if r["correctness"] == "correct")
    return {k: correct[k] / total[k] for k in total}


@needs_omni_log
def test_reproduces_every_published_label() -> None:
    rows = [json.loads(line) for line in OMNI_LOG.read_text().splitlines() if line.strip()]
    assert len(rows) == 1581
    # The log stores each click truncated to integer pixels; the official rule (inclusive
    # edges on the real-valued click) then reads as x1 <= x < x2 on the stored integers.
    score = score_predictions_file(OMNI_LOG, edges="half_open")
    assert score.label_agreement is not None
    assert score.label_agreement["agree"] == 1581 and score.label_agreement["disagree"] == 0
    assert score.n == 1581 and score.correct == 625 and score.format_errors == 0
    assert score.accuracy == pytest.approx(625 / 1581)  # 39.5 %, the figure OmniParser's README gives
    assert score.label_agreement["published_accuracy"] == pytest.approx(score.accuracy)
    for key, table in (("group", score.by_group), ("ui_type", score.by_ui_type), ("platform", score.by_platform), ("application", score.by_application)):
        assert {k: v["accuracy"] for k, v in table.items()} == pytest.approx(_published_accuracy(rows, key))
    assert score.text_accuracy == pytest.approx(555 / 977) and score.icon_accuracy == pytest.approx(70 / 604)


@needs_omni_log
def test_inclusive_rule_on_integer_log_differs_only_on_right_and_bottom_edges() -> None:
    rows = {str(r["idx"]): r for r in map(json.loads, OMNI_LOG.read_text().splitlines())}
    score = score_predictions_file(OMNI_LOG)  # default: inclusive edges
    assert score.label_agreement is not None and score.label_agreement["disagree"] == 5
    for sid in score.label_agreement["disagree_ids"]:
        (x, y), (x1, y1, x2, y2) = rows[sid]["pred"], rows[sid]["bbox"]
        assert rows[sid]["correctness"] == "wrong"
        assert x1 <= x <= x2 and y1 <= y <= y2 and (x == x2 or y == y2)
    assert score.correct == 630


# ---------------------------------------------------------------- synthetic data


def _write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_v1_v2_xywh_and_edges(tmp_path: Path) -> None:
    entry = {"img_filename": "a.png", "instruction": "open menu", "data_type": "icon", "data_source": "android"}
    v1 = _write(tmp_path / "screenspot_mobile.json", [{**entry, "bbox": [10, 20, 30, 40]}, {**entry, "bbox": [0, 0, 5, 5], "data_type": "text"}])
    samples = read_screenspot(v1, images_dir=tmp_path / "imgs")
    assert [s.bbox for s in samples] == [(10, 20, 40, 60), (0, 0, 5, 5)]
    assert samples[0].variant == "v1" and samples[0].group == "mobile" and samples[0].platform == "android"
    assert samples[0].ui_type == "icon" and samples[0].image == tmp_path / "imgs" / "a.png" and samples[0].prompt == "open menu"
    assert samples[0].id == "screenspot_mobile:0"

    v2 = _write(tmp_path / "screenspot_web_v2.json", [{**entry, "bbox": [10, 20, 30, 40], "data_source": "shop"}])
    (web,) = read_screenspot(v2)
    assert web.variant == "v2" and web.group == "web" and web.image == tmp_path / "a.png"

    cases = {  # point -> correct under inclusive edges
        (10, 20): True, (40, 60): True, (40, 20): True, (25, 40): True,  # corners, interior
        (40.001, 30): False, (9.999, 30): False, (25, 60.5): False,
    }
    many = [samples[0]] * len(cases)
    score = score_clicks(many, list(cases))
    assert [p["correct"] for p in score.per_sample] == list(cases.values())
    half_open = score_clicks(many, list(cases), edges="half_open")
    assert [p["correct"] for p in half_open.per_sample] == [True, False, False, True, False, False, False]


def test_format_errors_and_breakdowns(tmp_path: Path) -> None:
    base = {"img_filename": "x.png", "instruction": "save", "img_size": [200, 100], "platform": "windows", "application": "word", "group": "Office"}
    pro = _write(
        tmp_path / "word_windows.json",
        [
            {**base, "id": "t1", "bbox": [10, 10, 50, 30], "ui_type": "text"},
            {**base, "id": "t2", "bbox": [10, 10, 50, 30], "ui_type": "text"},
            {**base, "id": "i1", "bbox": [100, 50, 120, 70], "ui_type": "icon", "group": "CAD", "application": "autocad", "platform": "macos"},
            {**base, "id": "i2", "bbox": [100, 50, 120, 70], "ui_type": "icon"},
            {**base, "id": "i3", "bbox": [100, 50, 120, 70], "ui_type": "icon"},
            {**base, "id": "i4", "bbox": [100, 50, 120, 70], "ui_type": "icon"},
        ],
    )
    samples = read_screenspot(pro)
    assert samples[0].bbox == (10, 10, 50, 30) and samples[0].img_size == (200, 100) and samples[0].variant == "pro"
    preds = {"t1": [50, 30], "t2": (11.5, 29.9), "i1": [110, 60], "i2": None, "i3": [1, 2, 3], "i4": "110,60"}
    score = score_clicks(samples, preds)
    assert (score.n, score.correct, score.format_errors) == (6, 3, 3)
    assert score.accuracy == pytest.approx(0.5) and score.format_error_rate == pytest.approx(0.5)
    assert score.text_accuracy == 1.0 and score.icon_accuracy == pytest.approx(0.25)
    assert score.by_group == {"CAD": {"n": 1, "correct": 1, "accuracy": 1.0}, "Office": {"n": 5, "correct": 2, "accuracy": 0.4}}
    assert score.by_group_ui_type["Office / icon"] == {"n": 3, "correct": 0, "accuracy": 0.0}
    assert score.by_platform["macos"]["n"] == 1 and score.by_application["word"]["correct"] == 2
    assert score_clicks(samples, [[True, 1]] + [None] * 5).format_errors == 6  # bools are not coordinates
    assert score_clicks(samples, {}).format_errors == 6
    with pytest.raises(ValueError):
        score_clicks(samples, [None])
    metrics = score.to_dict()
    assert "per_sample" not in metrics and "label_agreement" not in metrics and metrics["accuracy"] == 0.5


def test_folder_language_and_limit(tmp_path: Path) -> None:
    base = {"img_filename": "x.png", "instruction": "save", "instruction_cn": "保存", "img_size": [200, 100], "ui_type": "text", "group": "Office", "platform": "windows", "application": "word"}
    folder = tmp_path / "annotations"
    folder.mkdir()
    _write(folder / "b_windows.json", [{**base, "id": "b0", "bbox": [0, 0, 9, 9]}])
    _write(folder / "a_macos.json", [{**base, "id": "a0", "bbox": [0, 0, 9, 9]}, {**base, "id": "a1", "bbox": [0, 0, 9, 9]}])
    assert [s.id for s in read_screenspot(folder)] == ["a0", "a1", "b0"]
    assert [s.id for s in read_screenspot(folder, limit=2)] == ["a0", "a1"]
    assert read_screenspot(folder, language="cn")[0].instruction == "保存"
    _write(folder / "bad.json", [{**base, "bbox": [1, 2, 3]}])
    with pytest.raises(ValueError, match="bad bbox"):
        read_screenspot(folder / "bad.json")


def test_predictions_file_formats_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    details = [
        {"idx": 0, "bbox": [0, 0, 10, 10], "pred": [10, 10], "correctness": "correct", "ui_type": "text", "group": "OS"},
        {"idx": 1, "bbox": [0, 0, 10, 10], "pred": None, "correctness": "wrong_format", "ui_type": "icon", "group": "OS"},
        {"idx": 2, "gt_type": "negative", "pred": None, "correctness": "correct"},
    ]
    official = _write(tmp_path / "log.json", {"metrics": {}, "details": details})  # the official script's output shape
    score = score_predictions_file(official)
    assert (score.n, score.correct, score.format_errors, score.skipped) == (2, 1, 1, 1)
    assert score.label_agreement == {"labelled": 2, "agree": 2, "disagree": 0, "disagree_ids": [], "published_accuracy": 0.5}

    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text("\n".join(json.dumps(d) for d in details[:2]) + "\n")
    assert main(["score", str(jsonl), "--report", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "| accuracy | 0.5000 |" in out and "## by_group" in out
    assert json.loads((tmp_path / "rep.json").read_text())["metrics"]["format_errors"] == 1

    pro = _write(tmp_path / "pro.json", [{"id": "s1", "img_filename": "x.png", "instruction": "go", "bbox": [0, 0, 10, 10], "img_size": [20, 20], "ui_type": "icon"}])
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "s1", "pred": [5, 5]}) + "\n")
    assert main(["score", str(preds), "--annotations", str(pro)]) == 0
    assert "| accuracy | 1.0000 |" in capsys.readouterr().out
    assert main(["list", str(pro)]) == 0
    assert json.loads(capsys.readouterr().out)["bbox"] == [0, 0, 10, 10]
