"""Shared evaluation helpers and the report writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vistool.evaluation.common import (
    align_predictions,
    box_iou,
    breakdown,
    load_predictions,
    parse_box,
    parse_point,
    point_in_box,
    read_records,
)
from vistool.evaluation.report import to_markdown, write_report


def test_parse_point_and_box() -> None:
    assert parse_point([1, 2.5]) == (1.0, 2.5) and parse_point((3, 4)) == (3.0, 4.0)
    for bad in (None, [1], [1, 2, 3], "1,2", [True, 1], [math.nan, 1], [1, math.inf], {"x": 1, "y": 2}):
        assert parse_point(bad) is None
    assert parse_box([4, 3, 2, 1]) == (2, 1, 4, 3)
    assert parse_box([1, 2, 3, 4], "xywh") == (1, 2, 4, 6)
    assert parse_box([1, 2, -3, 4], "xywh") is None and parse_box([1, 2, 3]) is None


def test_geometry() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0 and box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    box = (0, 0, 10, 10)
    assert point_in_box((10, 10), box) and point_in_box((0, 0), box) and not point_in_box((10.01, 5), box)
    assert point_in_box((0, 0), box, "half_open") and not point_in_box((10, 5), box, "half_open")
    with pytest.raises(ValueError):
        point_in_box((1, 1), box, "outer")  # type: ignore[arg-type]


def test_alignment_breakdown_and_files(tmp_path: Path) -> None:
    class S:
        def __init__(self, id: str) -> None:
            self.id = id

    samples = [S("a"), S("b")]
    assert align_predictions(samples, {"b": 1}) == [None, 1]
    assert align_predictions(samples, (1, 2)) == [1, 2]
    with pytest.raises(TypeError):
        align_predictions(samples, "ab")
    assert breakdown(["x", None, "x", "y"], [True, True, False, True]) == {
        "x": {"n": 2, "correct": 1, "accuracy": 0.5},
        "y": {"n": 1, "correct": 1, "accuracy": 1.0},
    }
    assert list(breakdown([("G", "text"), ("G", None)], [True, True])) == ["G / text"]
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "pred": [1, 2]}\n{"id": "2"}\n')
    assert load_predictions(path, ["pred"]) == {"1": [1, 2], "2": None}
    path.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match=":2:"):
        read_records(path)
    (tmp_path / "d.json").write_text('{"details": [{"a": 1}]}')
    assert read_records(tmp_path / "d.json", list_key="details") == [{"a": 1}]
    with pytest.raises(ValueError):
        read_records(tmp_path / "d.json")


def test_report_markdown_and_json(tmp_path: Path) -> None:
    metrics = {
        "accuracy": 0.5,
        "n": 4,
        "note": None,
        "by_group": {"A": {"n": 2, "accuracy": 1.0}, "B": {"n": 2, "accuracy": 0.0}},
        "settings": {"casefold": True, "ids": ["x", "y"]},
        "summary": "line one\nline two\n",
        "warnings": [],
        "nested": [{"a": 1}],
    }
    md = to_markdown(metrics, "Demo", {"model": "m|x"})
    assert md.startswith("# Demo\n\n- **model**: m\\|x\n")
    assert "| accuracy | 0.5000 |" in md and "| n | 4 |" in md and "| note | - |" in md
    assert "| by_group | n | accuracy |" in md and "| A | 2 | 1.0000 |" in md
    assert '| ids | ["x", "y"] |' in md and "| casefold | true |" in md
    assert "```\nline one\nline two\n```" in md and "(none)" in md and '"a": 1' in md
    json_path, md_path = write_report(metrics, tmp_path / "sub" / "rep.json", "Demo")
    assert json_path == tmp_path / "sub" / "rep.json" and md_path == tmp_path / "sub" / "rep.md"
    assert json.loads(json_path.read_text()) == {"title": "Demo", "meta": {}, "metrics": metrics}
    assert md_path.read_text() == to_markdown(metrics, "Demo")
