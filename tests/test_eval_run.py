"""Benchmarks run end to end: oracle answers through prompts, parsing, mapping and the scorers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from vistool.evaluation.run import RunOptions, evaluate_coco, evaluate_ocr, evaluate_refexp, evaluate_screenspot, main
from tests.conftest import shared_data
from vistool.api import Vistool
from vistool.postprocess import format_answer
from vistool.runtime.replay import ReplayBackend


def write_coco_set(folder, instances: dict) -> dict[int, dict]:
    """Write one PNG per COCO image, its id encoded in the fill colour; return images by id."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in instances["images"]:
        colour = (image["id"] % 256, image["id"] // 256 % 256, image["id"] // 65536 % 256)
        Image.new("RGB", (image["width"], image["height"]), colour).save(folder / image["file_name"], format="PNG")  # lossless, whatever the name says
    return {image["id"]: image for image in instances["images"]}


def coco_oracle(instances: dict) -> ReplayBackend:
    """A backend that answers each detection prompt with the image's ground truth in Gemma 4's format."""
    names = {c["id"]: c["name"] for c in instances["categories"]}
    by_image: dict[int, list[dict]] = {}
    for annotation in instances["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)

    def answer(request) -> str:
        image = request.images[0]
        red, green, blue = image.getpixel((0, 0))
        image_id = red + 256 * green + 65536 * blue
        asked = request.prompt.split("in the image: ", 1)[1].split(". Output", 1)[0].split(", ")
        boxes, labels = [], []
        for annotation in by_image.get(image_id, []):
            if names[annotation["category_id"]] in asked:
                x, y, w, h = annotation["bbox"]
                boxes.append([x, y, x + w, y + h])
                labels.append(names[annotation["category_id"]])
        return format_answer("gemma4", "boxes", np.array(boxes).reshape(-1, 4), labels, image.size)

    return ReplayBackend(answer)


def synthetic_coco(rng: np.random.Generator) -> dict:
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(["cat", "dog", "traffic light", "bus"])]
    images, annotations = [], []
    for image_id in range(1, 7):
        width, height = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        images.append({"id": image_id, "file_name": f"{image_id:03d}.png", "width": width, "height": height})
        for _ in range(int(rng.integers(1, 6))):
            w, h = float(rng.integers(30, width // 2)), float(rng.integers(30, height // 2))
            x, y = float(rng.integers(0, width - int(w))), float(rng.integers(0, height - int(h)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 5)),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_coco_oracle_on_generated_set_scores_one(tmp_path, chunk_size):
    instances = synthetic_coco(np.random.default_rng(0))
    write_coco_set(tmp_path / "images", instances)
    vt = Vistool(coco_oracle(instances))
    out = evaluate_coco(vt, instances, tmp_path / "images", RunOptions(tmp_path / "out", progress=False), chunk_size=chunk_size)
    assert out["metrics"]["AP"] >= 0.99
    assert out["meta"]["prompts_per_image"] == (4 if chunk_size == 1 else 1)
    assert "constant 1.0" in out["meta"]["score_source"]
    assert (tmp_path / "out" / "report.md").read_text().startswith("# COCO detection")


def test_coco_oracle_on_real_val2014_ground_truth_and_rescore_from_cache(tmp_path):
    instances = json.loads(shared_data("coco-val2014-100", "instances_val2014_100.json").read_text())
    write_coco_set(tmp_path / "images", instances)
    vt = Vistool(coco_oracle(instances))
    options = RunOptions(tmp_path / "out", progress=False)
    first = evaluate_coco(vt, instances, tmp_path / "images", options)
    assert first["metrics"]["AP"] >= 0.99 and first["meta"]["images"] == 100
    calls = vt.backend.calls
    start = time.perf_counter()
    again = evaluate_coco(vt, instances, tmp_path / "images", RunOptions(tmp_path / "out", progress=False, rescore=True))
    assert time.perf_counter() - start < 60
    assert vt.backend.calls == calls  # everything came from the cache
    assert again["metrics"]["AP"] == first["metrics"]["AP"] and again["meta"]["run"]["cached"] == 100


def test_coco_end_to_end_on_the_tiny_model_scores_near_zero(tmp_path, tiny_backend):
    instances = synthetic_coco(np.random.default_rng(1))
    instances["images"] = instances["images"][:3]
    write_coco_set(tmp_path / "images", instances)
    vt = Vistool(tiny_backend, budget=70, max_new_tokens=16)
    out = evaluate_coco(vt, instances, tmp_path / "images", RunOptions(tmp_path / "out", progress=False))
    # Noise is either no detection or an unparseable answer (recorded per image); nothing crashes.
    assert set(out["meta"]["run"]["failed_by_stage"]) <= {"answer"}
    assert out["meta"]["run"]["done"] + out["meta"]["run"]["failed"] == 3
    assert 0.0 <= max(out["metrics"]["AP"], 0.0) < 0.5


def _screens(tmp_path):
    """Two screenshots and a ScreenSpot-Pro style annotation file (bbox x1, y1, x2, y2)."""
    records = []
    for index, (box, ui_type) in enumerate([((100, 50, 300, 90), "text"), ((500, 400, 540, 440), "icon")]):
        name = f"screen{index}.png"
        Image.new("RGB", (800, 600), (255, 255, 255)).save(tmp_path / name)
        records.append({"img_filename": name, "bbox": list(box), "instruction": f"click target {index}", "ui_type": ui_type,
                        "group": "Dev", "platform": "linux", "application": "vscode", "img_size": [800, 600], "id": f"s{index}"})
    path = tmp_path / "screenspot_pro.json"
    path.write_text(json.dumps(records))
    return path, records


def test_screenspot_oracle_clicks_are_all_correct(tmp_path):
    path, records = _screens(tmp_path)

    def answer(request):
        record = next(r for r in records if r["instruction"] in request.prompt)
        x1, y1, x2, y2 = record["bbox"]
        return format_answer("gemma4", "boxes", np.array([[x1, y1, x2, y2]], float), ["target"], (800, 600))

    out = evaluate_screenspot(Vistool(ReplayBackend(answer)), path, tmp_path, RunOptions(tmp_path / "out", progress=False))
    assert out["metrics"]["accuracy"] == 1.0 and out["metrics"]["format_error_rate"] == 0.0
    wrong = evaluate_screenspot(Vistool(ReplayBackend(lambda request: "no idea")), path, tmp_path, RunOptions(tmp_path / "bad", progress=False))
    assert wrong["metrics"]["accuracy"] == 0.0 and wrong["metrics"]["format_error_rate"] == 1.0


def test_ocr_and_refexp_oracles(tmp_path):
    Image.new("RGB", (400, 300), (0, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "ocr.jsonl").write_text(json.dumps({"id": "a", "image": "a.png", "text": "Hello  world"}) + "\n")
    ocr = evaluate_ocr(Vistool(ReplayBackend(["Hello world"])), tmp_path / "ocr.jsonl", tmp_path, RunOptions(tmp_path / "o1", progress=False))
    assert ocr["metrics"]["cer"] == 0.0 and ocr["metrics"]["exact_match"] == 1.0
    (tmp_path / "ref.jsonl").write_text(json.dumps({"id": "r", "image": "a.png", "expression": "the box", "bbox": [40, 30, 200, 150]}) + "\n")
    box = format_answer("gemma4", "boxes", np.array([[40.0, 30.0, 240.0, 180.0]]), ["the box"], (400, 300))
    ref = evaluate_refexp(Vistool(ReplayBackend([box])), tmp_path / "ref.jsonl", tmp_path, RunOptions(tmp_path / "o2", progress=False))
    assert ref["metrics"]["acc_at_iou"] == 1.0 and ref["metrics"]["mean_iou"] == pytest.approx(1.0, abs=0.01)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["coco", "--instances", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o"), "--rescore"]) == 2
    assert "missing.json" in capsys.readouterr().err
