"""A newcomer's first hour with `annotate` and `eval` (issue 17), as a user runs them:
`python -m vistool.cli ...` in a subprocess. No command empties a good export; a run that
evaluated nothing says so with a non-zero exit; inputs are checked before the model loads;
a fully cached re-run loads no model; SIGTERM ends like Ctrl-C; exports carry no other
tool's name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_annotate import export_bytes, make_folder, replay_file
from tests.test_eval_run import coco_oracle, synthetic_coco, write_coco_set
from vistool.api import Vistool
from vistool.batch.annotate import AnnotateConfig, annotate
from vistool.batch.replay_file import image_fingerprint, write_replay_file
from vistool.evaluation.run import RunOptions, evaluate_coco
from vistool.io.images import load_image
from vistool.postprocess import format_answer
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse, TokenLogprob

REPO = Path(__file__).resolve().parents[1]


def cli(*args, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `python -m vistool.cli ARGS` from the repository (this checkout's code, offline)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vistool.cli", *map(str, args)], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def error_line(finished: subprocess.CompletedProcess) -> str:
    """Return the one `error:` line on stderr (asserting there is exactly one and no traceback)."""
    errors = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in finished.stderr, finished.stderr
    return errors[0]


@pytest.fixture
def folder(tmp_path):
    """Six images with known boxes, oracle answers recorded under the model name "oracle",
    and a first annotate run into OUT (COCO and YOLO exports)."""
    src, out = tmp_path / "photos", tmp_path / "labels"
    truth = make_folder(src, 6, seed=3)
    answers = replay_file(tmp_path / "answers.json", src, truth)
    first = cli("annotate", src, "--out", out, "--classes", "person,car", "--format", "coco,yolo", "--no-progress",
                "--backend", "replay", "--replay-answers", answers, "--model", "oracle")
    assert first.returncode == 0, first.stderr
    return {"src": src, "out": out, "answers": answers, "exports": export_bytes(out), "truth": truth}


# ------------------------------------------------------------------ item 1: --rescore
def test_rescore_without_model_uses_the_cached_model_and_never_empties_the_exports(folder):
    """The README's `--rescore` without --model re-scores the cache's one model (and says
    which); with a model or settings the cache lacks it stops before writing, naming what
    the cache holds. The exports stay byte for byte."""
    src, out = folder["src"], folder["out"]
    rescored = cli("annotate", src, "--out", out, "--classes", "person,car", "--format", "coco,yolo", "--rescore",
                   "--no-progress")
    assert rescored.returncode == 0, rescored.stderr
    assert "re-scoring the cached answers of model oracle" in rescored.stderr
    assert export_bytes(out) == folder["exports"]
    for extra, held in [(["--model", "google/gemma-4-E2B-it"], "model oracle"), (["--budget", "560"], "budget 280")]:
        wrong = cli("annotate", src, "--out", out, "--classes", "person,car", "--format", "coco,yolo", "--rescore",
                    "--no-progress", *extra)
        assert wrong.returncode == 2
        line = error_line(wrong)
        assert "no cached answer matches" in line and held in line and "nothing was written" in line
        assert export_bytes(out) == folder["exports"]


def test_a_run_that_would_empty_the_exports_keeps_them(folder, tmp_path):
    """A new setting whose every answer fails (a server gone away) would leave images
    that have results without one: the exports are kept and the run exits 1 saying why."""
    truth = folder["truth"]
    broken = write_replay_file(tmp_path / "broken.json", {}, errors={key: "connection refused" for key in truth})
    run = cli("annotate", folder["src"], "--out", folder["out"], "--classes", "person,car", "--format", "coco,yolo",
              "--no-progress", "--backend", "replay", "--replay-answers", broken, "--model", "oracle",
              "--max-new-tokens", "99")
    assert run.returncode == 1
    assert "kept the exports" in run.stderr and "connection refused" in run.stderr
    assert json.loads(run.stdout)["kept_exports"]
    assert export_bytes(folder["out"]) == folder["exports"]


# ------------------------------------------------------------------ item 10: annotate
def test_a_fully_cached_rerun_loads_no_model(tiny_model_dir, tmp_path):
    """Second run of the same command: every answer comes from the cache, no model is
    loaded; the counts say it (0 model calls, answers from the cache)."""
    src, out = tmp_path / "photos", tmp_path / "out"
    make_folder(src, 3)
    command = ("annotate", src, "--out", out, "--model", tiny_model_dir, "--budget", "70", "--max-new-tokens", "6",
               "--no-progress", "--device", "cpu")
    first = cli(*command)
    assert first.returncode in (0, 1), first.stderr
    assert "loading model" in first.stderr and json.loads(first.stdout)["model_loaded"] is True
    again = cli(*command)
    summary = json.loads(again.stdout)
    assert again.returncode == first.returncode and "Loading weights" not in again.stderr
    assert summary["model_loaded"] is False and summary["model_calls"] == 0
    assert summary["answers_from_cache"] == 3 and "3 from the cache" in again.stderr


def test_sigterm_ends_like_ctrl_c_and_the_run_resumes(tmp_path):
    """`kill PID` mid-run: a message, exit 143, the answers so far kept (the first batch
    is small, so there are some early); the same command then finishes the rest."""
    src, out = tmp_path / "photos", tmp_path / "out"
    truth = make_folder(src, 8)
    slow = replay_file(tmp_path / "slow.json", src, truth, delay_s=0.3)
    command = [sys.executable, "-m", "vistool.cli", "annotate", str(src), "--out", str(out), "--classes", "person,car",
               "--backend", "replay", "--replay-answers", str(slow), "--batch-size", "8", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = out / "answers.jsonl"
    deadline = time.monotonic() + 180
    while not (cache.exists() and cache.read_bytes().count(b"\n") >= 1) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "terminated: answers so far are saved" in err and "Traceback" not in err
    kept = cache.read_bytes().count(b"\n")
    assert 1 <= kept < 8
    resumed = cli(*command[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["answers_from_cache"] == kept


# ------------------------------------------------------------------ item 2 and 6: eval
def test_eval_checks_its_inputs_before_the_model_loads(tmp_path):
    """A data file of the wrong format, or an --images folder holding none of the images:
    one line naming the file (or folder) and what was expected, exit 2, no model loaded
    (the model named here does not exist, so reaching it would fail otherwise)."""
    instances = synthetic_coco(np.random.default_rng(0))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "preds.jsonl").write_text('{"id": "a", "pred": [1, 2]}\n{"id": "b", "pred": [3, 4]}\n')
    (tmp_path / "list.json").write_text(json.dumps([{"image": "a.png", "text": "hi"}]))
    (tmp_path / "refs.jsonl").write_text(json.dumps({"image": "a.png", "expression": "the cat"}) + "\n")
    runs = [
        (["screenspot", "--annotations", tmp_path / "preds.jsonl"], ["preds.jsonl", "img_filename", "JSON-lines"]),
        (["ocr", "--data", tmp_path / "list.json"], ["list.json", "JSONL file"]),
        (["refexp", "--data", tmp_path / "refs.jsonl"], ["refs.jsonl", "bbox"]),
        (["coco", "--instances", tmp_path / "preds.jsonl"], ["preds.jsonl", "COCO instances JSON"]),
        (["coco", "--instances", tmp_path / "instances.json", "--images", tmp_path / "nowhere"],
         ["none of the 6 images exist", "--images"]),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda run: cli("eval", *run[0], "--out", tmp_path / "run", "--model",
                                                tmp_path / "no-such-model"), runs))
    for finished, (arguments, words) in zip(results, runs):
        assert finished.returncode == 2
        line = error_line(finished)
        assert all(word in line for word in words), line
    assert not (tmp_path / "run" / "report.json").exists()


def test_eval_that_evaluated_nothing_exits_non_zero_and_writes_no_report(tiny_model_dir, tmp_path):
    """Every image unreadable (files that are not images): exit 1 with the reason, no AP 0.000 report."""
    instances = synthetic_coco(np.random.default_rng(0))
    images = tmp_path / "images"
    images.mkdir()
    for image in instances["images"]:
        (images / image["file_name"]).write_text("not an image")
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    finished = cli("eval", "coco", "--instances", tmp_path / "instances.json", "--images", images, "--out",
                   tmp_path / "run", "--model", tiny_model_dir, "--device", "cpu", "--no-progress")
    assert finished.returncode == 1
    line = error_line(finished)
    assert "nothing was evaluated" in line and "read: 6" in line and "not an image" in line
    assert not (tmp_path / "run" / "report.json").exists() and not (tmp_path / "run" / "results.json").exists()


def test_eval_report_counts_images_and_prompts_apart_with_a_readable_summary(tmp_path):
    """Four prompts per image (one class each): the report says 6 images and 24 prompts,
    and the COCO summary is a table (kind, IoU, area, max dets, value)."""
    instances = synthetic_coco(np.random.default_rng(0))
    write_coco_set(tmp_path / "images", instances)
    out = evaluate_coco(Vistool(coco_oracle(instances)), instances, tmp_path / "images",
                        RunOptions(tmp_path / "out", progress=False), chunk_size=1)
    run = out["meta"]["run"]
    assert (run["images"], run["prompts"], run["images_evaluated"], run["prompts_answered"]) == (6, 24, 6, 24)
    assert out["meta"]["images"] == 6 and out["meta"]["prompts"] == 24
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| AP | AP | 0.50:0.95 | all | 100 | 1.0000 |" in report or "| AP | AP | 0.50:0.95 | all | 100 | 0.9" in report
    assert "| images | 6 |" in report and "| prompts | 24 |" in report


# ------------------------------------------------------------------ item 11: exports
def confident_oracle(truth: dict) -> ReplayBackend:
    """An oracle that also gives token log-probs (-0.1 per character), so boxes get a confidence."""

    def answer(request):
        boxes, labels = truth[image_fingerprint(request.images[0])]
        text = format_answer("gemma4", "boxes", boxes, labels, request.images[0].size) if labels else "[]"
        return GenerationResponse(text=text, logprobs=[TokenLogprob(c, -0.1, i) for i, c in enumerate(text)])

    return ReplayBackend(answer)


def test_exports_carry_vistool_or_user_names_usable_yolo_paths_and_scores(tmp_path):
    """VOC says vistool and the image's folder (not roboflow.ai / VOC); COCO categories
    are their own supercategory (not common-objects) and boxes carry their confidence as
    score; YOLO data.yaml has train/val paths that hold the images beside labels/."""
    import yaml

    src, out = tmp_path / "photos", tmp_path / "out"
    truth = make_folder(src, 4, seed=1)
    config = AnnotateConfig(src=str(src), out=out, classes="person,car", formats=["coco", "yolo", "voc"],
                            progress=False, workers=0)
    annotate(config, vt=Vistool(confident_oracle(truth)))
    voc = next((out / "voc").glob("*.xml")).read_text()
    assert "<database>vistool</database>" in voc and "<folder>photos</folder>" in voc and "roboflow" not in voc
    coco = json.loads((out / "coco.json").read_text())
    assert [c["supercategory"] for c in coco["categories"]] == ["person", "car"]
    assert coco["annotations"] and all(0 < a["score"] < 1 for a in coco["annotations"])
    data = yaml.safe_load((out / "yolo" / "data.yaml").read_text())
    assert data["names"] == ["person", "car"] and data["nc"] == 2 and data["train"] == data["val"] == "images"
    for image in sorted(src.iterdir()):
        copy = out / "yolo" / data["train"] / image.name
        assert copy.read_bytes() == image.read_bytes() and not copy.is_symlink()
        assert (out / "yolo" / "labels" / image.with_suffix(".txt").name).exists()
    assert load_image(out / "yolo" / "images" / image.name).size == Image.open(image).size
