"""`vistool annotate` and the batch engine under it: sources, answer cache, runner, exports.

Answers come from a replay backend built from known boxes (written in Gemma 4's native
format by `format_answer`, keyed by the decoded image's fingerprint), so every exported
box can be checked exactly; the tiny random model checks that real generation, noise
and all, goes through the same path without crashing.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.conftest import shared_data
from vistool.api import Vistool
from vistool.batch import AnswerCache, BatchRunner, WorkItem, collect_images
from vistool.batch.annotate import AnnotateConfig, annotate
from vistool.batch.cache import cache_key, make_record
from vistool.batch.replay_file import image_fingerprint, write_replay_file
from vistool.cli import main
from vistool.errors import VistoolError
from vistool.io.images import load_image
from vistool.postprocess import format_answer
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationRequest
from vistool.tasks import TaskResult

CLASSES = ["person", "car"]


# ----------------------------------------------------------------- helpers
def make_folder(folder: Path, count: int, seed: int = 0, subfolders: bool = False) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Write `count` random images (PNG and JPEG, several sizes) with 0-3 known boxes each.

    Returns {image fingerprint: (pixel boxes (n, 4), labels)}; with `subfolders`, every
    other image goes into a sub-folder.
    """
    rng = np.random.default_rng(seed)
    truth: dict[str, tuple[np.ndarray, list[str]]] = {}
    for index in range(count):
        width, height = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        name = f"img{index:03d}.{'png' if index % 3 else 'jpg'}"
        path = folder / (f"part{index % 2}" if subfolders else "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        boxes = []
        for _ in range(int(rng.integers(0, 4))):
            x1, y1 = rng.uniform(0, width * 0.6), rng.uniform(0, height * 0.6)
            boxes.append([x1, y1, x1 + rng.uniform(8, width * 0.4), y1 + rng.uniform(8, height * 0.4)])
        labels = [CLASSES[int(rng.integers(0, 2))] for _ in boxes]
        truth[image_fingerprint(load_image(path).image)] = (np.array(boxes, dtype=np.float64).reshape(-1, 4), labels)
    return truth


def answer_for(image: Image.Image, truth: dict[str, tuple[np.ndarray, list[str]]]) -> str:
    """The perfect Gemma 4 answer for one decoded image."""
    boxes, labels = truth[image_fingerprint(image)]
    if not labels:  # format_answer cannot write an empty list (reshape of 0 items fails)
        return "```json\n[]\n```"
    return format_answer("gemma4", "boxes", boxes, labels, image.size)


def oracle_backend(truth: dict[str, tuple[np.ndarray, list[str]]]) -> ReplayBackend:
    """A replay backend answering every request with the image's known boxes."""
    return ReplayBackend(lambda request: answer_for(request.images[0], truth))


def replay_file(path: Path, folder: Path, truth: dict, **extra) -> Path:
    """Write a replay answers file with the oracle answer of every image in `folder`."""
    answers = {}
    for image_path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            image = load_image(image_path).image
        except VistoolError:
            continue
        key = image_fingerprint(image)
        if key in truth:
            answers[key] = answer_for(image, truth)
    return write_replay_file(path, answers, **extra)


def config(src: Path, out: Path, **overrides) -> AnnotateConfig:
    """An annotate config for tests: detect person,car; no progress bar; small batches."""
    values = {"classes": "person,car", "batch_size": 3, "workers": 2, "progress": False, "model": "replay"}
    values.update(overrides)
    return AnnotateConfig(src=str(src), out=out, **values)


def export_bytes(out: Path) -> dict[str, bytes]:
    """Every export file under `out` (not the cache or the lock), by relative path."""
    skip = {"answers.jsonl", ".vistool.lock"}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name not in skip}


def by_name(dataset: sv.DetectionDataset) -> dict[str, sv.Detections]:
    """A dataset's annotations keyed by image file name."""
    return {Path(path).name: detections for path, detections in dataset.annotations.items()}


# ------------------------------------------------------------------ sources
def test_sources_folder_glob_and_list(tmp_path):
    for name in ["b.JPG", "a.png", "sub/c.jpeg", ".hidden/d.png", "notes.txt", "sub/.e.png"]:
        path = tmp_path / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    folder = collect_images(tmp_path / "imgs")
    assert [folder.relative(p) for p in folder.paths] == ["a.png", "b.JPG", "sub/c.jpeg"]
    pattern = collect_images(str(tmp_path / "imgs" / "**" / "*.png"))
    assert [p.name for p in pattern.paths] == ["a.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("# images\nimgs/sub/c.jpeg\n\nimgs/a.png\nimgs/a.png\nimgs/missing.gif\n")
    listed = collect_images(listing, limit=2)
    assert [listed.relative(p) for p in listed.paths] == ["a.png", "missing.gif"]
    inside = collect_images(tmp_path / "imgs", exclude=tmp_path / "imgs" / "sub")  # e.g. OUT inside SRC
    assert [inside.relative(p) for p in inside.paths] == ["a.png", "b.JPG"]
    with pytest.raises(VistoolError, match="no images found"):
        collect_images(tmp_path / "imgs" / "sub" / "*.bmp")
    with pytest.raises(VistoolError, match="no such"):
        collect_images(tmp_path / "nope")


# -------------------------------------------------------------------- cache
def _record(number: int) -> dict:
    fields = {"image_sha256": f"{number:064x}", "task": "detect", "prompt": "p", "system": None, "model": "m", "settings": {}}
    return make_record(fields, {"text": f"answer {number}"}, (10, 20), f"img{number}.png")


def test_cache_ignores_and_repairs_a_torn_last_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    cache = AnswerCache(path)
    assert cache.append([_record(1), _record(2), _record(1)]) == 2  # a repeated key is written once
    assert cache.append([_record(2)]) == 0
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"v": 1, "key": "abc", "resp')  # a write cut short by a crash
    reopened = AnswerCache(path)
    assert len(reopened) == 2 and reopened.torn_tail > 0
    assert reopened.get(_record(2)["key"])["response"] == {"text": "answer 2"}
    reopened.append([_record(3)])
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["key"] for line in lines)  # the torn line is gone
    assert AnswerCache(path).torn_tail == 0 and len(AnswerCache(path)) == 3


def test_cache_skips_a_bad_middle_line_and_refuses_foreign_writes(tmp_path):
    path = tmp_path / "answers.jsonl"
    cache = AnswerCache(path)
    cache.append([_record(1)])
    with open(path, "ab") as handle:
        handle.write(b"not json\n")
    cache2 = AnswerCache(path)
    assert cache2.bad_lines == 1 and len(cache2) == 1
    cache2.append([_record(2)])
    with open(path, "ab") as handle:  # another process appends behind this one's back
        handle.write(json.dumps(_record(3)).encode() + b"\n")
    with pytest.raises(VistoolError, match="another process"):
        cache2.append([_record(4)])


def test_cache_key_covers_every_setting():
    from vistool.batch.cache import key_fields

    request = GenerationRequest(prompt="p", budget=280, max_new_tokens=64)
    base = cache_key(key_fields("h", "detect", request, "m"))
    variants = [
        key_fields("h2", "detect", request, "m"),
        key_fields("h", "point", request, "m"),
        key_fields("h", "detect", GenerationRequest(prompt="q", budget=280, max_new_tokens=64), "m"),
        key_fields("h", "detect", GenerationRequest(prompt="p", budget=560, max_new_tokens=64), "m"),
        key_fields("h", "detect", GenerationRequest(prompt="p", budget=280, max_new_tokens=65), "m"),
        key_fields("h", "detect", GenerationRequest(prompt="p", budget=280, max_new_tokens=64, thinking=True), "m"),
        key_fields("h", "detect", GenerationRequest(prompt="p", budget=280, max_new_tokens=64, system="s"), "m"),
        key_fields("h", "detect", request, "m2"),
    ]
    assert len({base, *(cache_key(fields) for fields in variants)}) == len(variants) + 1


# ------------------------------------------------------------------ exports
def test_exports_round_trip_through_supervision_and_pycocotools(tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    truth = make_folder(src, 7)
    summary = annotate(config(src, out, formats=["coco,yolo", "voc"], draw=True), vt=Vistool(oracle_backend(truth)))
    assert summary.exit_code == 0 and summary.report.count("done") == 7
    results = {Path(r["source"]).name: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert all("timings" not in record["provenance"] and record["status"] == "ok" for record in results.values())
    parsed = {name: TaskResult.from_dict(record).detections for name, record in results.items()}
    expected = {Path(p).name: (truth[image_fingerprint(load_image(p).image)]) for p in src.iterdir()}
    for name, detections in parsed.items():  # parsing the oracle answers gives the known boxes back
        boxes, labels = expected[name]
        assert list(detections.data["class_name"]) == labels
        assert np.allclose(detections.xyxy, boxes, atol=0.6 * max(load_image(src / name).size) / 1000 + 1e-6)

    coco = by_name(sv.DetectionDataset.from_coco(str(src), str(out / "coco.json")))
    yolo_set = sv.DetectionDataset.from_yolo(str(src), str(out / "yolo" / "labels"), str(out / "yolo" / "data.yaml"))
    voc_set = sv.DetectionDataset.from_pascal_voc(str(src), str(out / "voc"))
    assert yolo_set.classes == CLASSES
    for name, detections in parsed.items():
        classes = [CLASSES[i] for i in coco[name].class_id]
        assert classes == list(detections.data["class_name"])
        assert np.allclose(coco[name].xyxy, detections.xyxy, atol=1e-6)
        width, height = load_image(src / name).size
        assert np.allclose(by_name(yolo_set)[name].xyxy, detections.xyxy, atol=1e-5 * max(width, height) + 1e-3)
        assert np.allclose(by_name(voc_set)[name].xyxy, detections.xyxy, atol=1.0)
        assert (out / "draw" / name).exists()

    # pycocotools: the exported file as ground truth, the known boxes as detections -> AP 1.
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO(str(out / "coco.json"))
    ids = {image["file_name"]: image["id"] for image in ground.dataset["images"]}
    detections = [
        {"image_id": ids[name], "category_id": CLASSES.index(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
        for name, (boxes, labels) in expected.items()
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(ground, ground.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP@0.5
    assert evaluation.stats[0] > 0.9  # AP@[.5:.95]: quantisation to 1/1000 of the side


def test_same_file_names_in_subfolders_export_without_clashing(tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    truth = make_folder(src / "a", 2, seed=1)
    truth.update(make_folder(src / "b", 2, seed=2))  # same names: img000.jpg, img001.png
    summary = annotate(config(src, out, formats=["coco", "yolo", "voc"]), vt=Vistool(oracle_backend(truth)))
    assert summary.exit_code == 0, summary.export_errors
    names = [image["file_name"] for image in json.loads((out / "coco.json").read_text())["images"]]
    assert names == ["a/img000.jpg", "a/img001.png", "b/img000.jpg", "b/img001.png"]
    assert sorted(str(p.relative_to(out / "yolo" / "labels")) for p in (out / "yolo" / "labels").rglob("*.txt")) == [
        "a/img000.txt", "a/img001.txt", "b/img000.txt", "b/img001.txt"]
    assert (out / "voc" / "b" / "img001.xml").exists()


def test_coco8_photos_round_trip(tmp_path):
    from vistool.postprocess.oracle import coco_map, load_yolo_dataset

    root = shared_data("coco8")
    oracle = load_yolo_dataset(root)
    truth = {image_fingerprint(load_image(image.name).image): (image.xyxy, image.labels) for image in oracle}
    classes = sorted({label for image in oracle for label in image.labels})
    out = tmp_path / "out"
    summary = annotate(config(root / "images", out, classes=",".join(classes), formats=["coco"]), vt=Vistool(oracle_backend(truth)))
    assert summary.exit_code == 0 and summary.report.count("done") == len(oracle) == 8
    exported = by_name(sv.DetectionDataset.from_coco(str(root / "images"), str(out / "coco.json")))
    names = json.loads((out / "coco.json").read_text())
    assert [image["file_name"].split("/")[0] for image in names["images"]] == ["train"] * 4 + ["val"] * 4
    predictions = []
    for image in oracle:
        detections = exported[Path(image.name).name]
        detections.data["class_name"] = np.array([classes[i] for i in detections.class_id])
        assert np.abs(detections.xyxy - image.xyxy).max() < 0.5 * max(image.size) / 1000 + 1e-6
        predictions.append(detections)
    assert coco_map(oracle, predictions, classes) > 0.95


# ------------------------------------------------------ failures and cache use
def test_bad_files_are_listed_and_the_rest_annotated(tmp_path, capsys):
    src, out = tmp_path / "imgs", tmp_path / "out"
    truth = make_folder(src, 4)
    (src / "empty.jpg").write_bytes(b"")
    good = (src / "img000.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "text.jpg").write_text("this is not an image")
    Image.new("RGB", (400, 300)).save(src / "huge.png")
    Image.new("RGB", (50, 50), "red").save(src / "model_error.png")
    Image.new("RGB", (50, 50), "blue").save(src / "unparseable.png")
    answers = replay_file(tmp_path / "answers.json", src, truth)
    data = json.loads(answers.read_text())
    data["errors"][image_fingerprint(load_image(src / "model_error.png").image)] = "CUDA out of memory (simulated)"
    data["answers"][image_fingerprint(load_image(src / "unparseable.png").image)] = "I cannot see any objects here."
    answers.write_text(json.dumps(data))
    argv = ["annotate", str(src), "--out", str(out), "--classes", "person,car", "--backend", "replay",
            "--replay-answers", str(answers), "--max-pixels", "20000", "--no-progress", "--format", "coco"]
    assert main(argv) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["done"], summary["failed"]) == (4, 6)
    failures = {f["image"]: f for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert sorted(failures) == ["empty.jpg", "huge.png", "model_error.png", "text.jpg", "truncated.jpg", "unparseable.png"]
    assert "empty (0 bytes)" in failures["empty.jpg"]["reason"]
    assert "truncated" in failures["truncated.jpg"]["reason"]
    assert "not an image" in failures["text.jpg"]["reason"]
    assert "exceeds the limit of 20000 pixels" in failures["huge.png"]["reason"]
    assert failures["model_error.png"]["stage"] == "model" and "out of memory" in failures["model_error.png"]["reason"]
    assert failures["unparseable.png"]["stage"] == "answer" and "no JSON" in failures["unparseable.png"]["reason"]
    assert all(str(src) in f["source"] for f in failures.values())
    coco_names = [image["file_name"] for image in json.loads((out / "coco.json").read_text())["images"]]
    assert coco_names == ["img000.jpg", "img001.png", "img002.png", "img003.jpg"]
    # Re-running retries the model error only (it is not cached); the unparseable answer is.
    assert main(argv) == 1
    again = json.loads(capsys.readouterr().out)
    assert (again["cached"], again["failed"], again["model_calls"], again["generated"]) == (4, 6, 1, 1)
    assert again["answers_from_cache"] == 5  # the unparseable answer came from the cache too (and failed again)


def test_only_what_a_setting_affects_is_re_run(tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    truth = make_folder(src, 5)
    backend = oracle_backend(truth)

    def run(budget: int | None = None, **overrides) -> int:
        """Annotate with these settings; return how many requests reached the model."""
        before = backend.calls
        annotate(config(src, out, **overrides), vt=Vistool(backend, budget=budget))
        return backend.calls - before

    assert run() == 5
    first = export_bytes(out)
    assert run() == 0 and export_bytes(out) == first  # nothing changed: no model call
    assert run(formats=["yolo"], draw=True) == 0  # exports are not answer settings
    assert run(budget=560) == 5  # the default budget is 280: a new key for every image
    assert run(budget=280) == 0  # the default, spelled out: same key as the first run
    assert run(classes="person") == 5  # another prompt
    assert run() == 0
    rescored = annotate(config(src, out, rescore=True), vt=None)
    now = export_bytes(out)  # also holds the yolo/ and draw/ exports asked for on the way
    assert rescored.report.model_calls == 0 and {name: now[name] for name in first} == first
    (src / "img000.jpg").rename(src / "renamed.jpg")  # content-addressed: a renamed file still hits
    assert run() == 0


def test_rescore_without_an_answer_fails_that_image(tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    truth = make_folder(src, 3)
    annotate(config(src, out, limit=2), vt=Vistool(oracle_backend(truth)))
    summary = annotate(config(src, out, rescore=True))
    assert (summary.report.count("cached"), summary.report.count("failed"), summary.exit_code) == (2, 1, 1)
    assert "run without --rescore" in summary.report.failures[0].reason


def test_runner_takes_per_item_options_and_duplicates(tmp_path):
    src = tmp_path / "imgs"
    truth = make_folder(src, 2)
    backend = oracle_backend(truth)
    paths = sorted(src.iterdir())
    items = [
        WorkItem(paths[1], "detect", {"classes": ["car", "person"]}),  # the first batch: 1 item (1/8 of 8)
        WorkItem(paths[0], "detect", {"classes": ["person"]}),
        WorkItem(paths[0], "detect", {"classes": ["person"]}),  # the same work twice in a batch: asked once
        WorkItem(paths[0], "point", {"description": ""}),  # bad options: this item fails, not the run
        WorkItem(tmp_path / "missing.png", "detect", {}),
        WorkItem(paths[1], "detect", {"classes": ["car", "person"]}),  # answered in the first batch: cached
    ]
    report = BatchRunner(Vistool(backend), AnswerCache(tmp_path / "a.jsonl"), batch_size=8, progress=False).run(items)
    assert [o.status for o in report.outcomes] == ["done", "done", "done", "failed", "failed", "cached"]
    assert backend.calls == 2 == report.generated and report.model_calls == 2  # two generate calls, one answer each
    assert [o.answered for o in report.outcomes] == ["model", "model", "model", None, None, "cache"]
    assert report.outcomes[3].stage == "options" and report.outcomes[4].stage == "read"
    assert report.outcomes[0].result.provenance["prompt"].count("car, person") == 2


class BudgetAwareReplay(ReplayBackend):
    """A replay backend that, like the local one, names its best batch for a budget."""

    batches: list[int] = []

    def batch_size_for(self, budget: int | None) -> int:
        return {70: 256, 280: 16}.get(budget, 4)

    def generate(self, requests):
        self.batches = [*self.batches, len(requests)]
        return super().generate(requests)


def test_runner_batch_defaults_to_the_backend_batch_for_the_budget_capped(tmp_path):
    src = tmp_path / "imgs"
    truth = make_folder(src, 5)
    answer = lambda request: answer_for(request.images[0], truth)  # noqa: E731
    assert BatchRunner(Vistool(ReplayBackend(answer)), progress=False).batch_size == 8  # no preference: 8
    assert BatchRunner(Vistool(BudgetAwareReplay(answer), budget=280), progress=False).batch_size == 16
    assert BatchRunner(Vistool(BudgetAwareReplay(answer), budget=70), progress=False).batch_size == 64  # capped
    assert BatchRunner(Vistool(BudgetAwareReplay(answer)), progress=False).batch_size == 16  # the family default, 280
    backend = BudgetAwareReplay(answer)
    report = BatchRunner(Vistool(backend, budget=280), progress=False).run([WorkItem(path, "detect", {}) for path in sorted(src.iterdir())])
    # five images: a small first batch (1/8 of 16) so an early interrupt keeps answers, then the rest at once
    assert report.model_calls == 2 and report.generated == 5 and backend.batches == [2, 3]


# ---------------------------------------------------------- other tasks, CLI
def test_text_and_point_tasks_write_jsonl(tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    make_folder(src, 3)
    answers = write_replay_file(tmp_path / "a.json", {}, default='[{"point_2d": [500, 500], "label": "dot"}]')
    summary = annotate(config(src, out, task="point", classes=None, query="dot", backend="replay", replay_answers=answers, draw=True))
    assert summary.exit_code == 0 and not (out / "coco.json").exists()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["extras"]["count"] for r in records] == [1, 1, 1] and len(list((out / "draw").iterdir())) == 3
    answers = write_replay_file(tmp_path / "c.json", {}, default="A noisy square.")
    summary = annotate(config(src, out, task="caption", classes=None, length="short", backend="replay", replay_answers=answers))
    assert summary.exit_code == 0
    assert {json.loads(line)["text"] for line in (out / "results.jsonl").read_text().splitlines()} == {"A noisy square."}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task", "caption", "--format", "coco"], "needs boxes"),
        (["--task", "point"], "needs --query"),
        (["--task", "caption", "--classes", "a"], "--classes does not apply"),
        (["--task", "paint"], "unknown task"),
        (["--format", "xml"], "unknown format"),
        (["--budget", "100"], "budget"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, extra, message):
    src = tmp_path / "imgs"
    make_folder(src, 1)
    assert main(["annotate", str(src), "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err


def test_no_images_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["annotate", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no images found" in capsys.readouterr().err


# --------------------------------------------------------------- tiny model
def test_tiny_model_noise_goes_through_and_reruns_from_cache(tiny_model_dir, tiny_backend, tmp_path):
    src, out = tmp_path / "imgs", tmp_path / "out"
    make_folder(src, 4, subfolders=True)
    vt = Vistool(tiny_backend, budget=70, max_new_tokens=8)
    settings = dict(batch_size=2, formats=["coco", "yolo"], model=str(tiny_model_dir), budget=70, max_new_tokens=8)
    first = annotate(config(src, out, **settings), vt=vt)
    assert first.report.generated == 4 and len(first.report.outcomes) == 4
    for outcome in first.report.outcomes:  # random weights: any answer, but never a crash
        assert outcome.status == "done" or outcome.stage == "answer", outcome.reason
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["provenance"]["budget"] == 70 for line in lines)
    exports = export_bytes(out)
    statuses = ["cached" if outcome.ok else "failed" for outcome in first.report.outcomes]
    second = annotate(config(src, out, **settings), vt=vt)
    assert second.report.model_calls == 0 and [outcome.status for outcome in second.report.outcomes] == statuses
    assert export_bytes(out) == exports
    rescored = annotate(config(src, out, rescore=True, **settings))  # no model loaded at all
    assert [outcome.status for outcome in rescored.report.outcomes] == statuses and export_bytes(out) == exports


def test_tiny_model_on_coco8_photos(tiny_model_dir, tiny_backend, tmp_path):
    root = shared_data("coco8", "images")
    summary = annotate(config(root, tmp_path / "out", limit=2, model=str(tiny_model_dir), formats=["coco", "voc"]),
                       vt=Vistool(tiny_backend, budget=70, max_new_tokens=8))
    assert summary.report.generated == 2 and not summary.export_errors
    assert all(outcome.ok or outcome.stage == "answer" for outcome in summary.report.outcomes)
    assert [json.loads(line)["image_size"] for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()] == [
        list(load_image(path).size) for path in sorted((root / "train").iterdir())[:2]]
