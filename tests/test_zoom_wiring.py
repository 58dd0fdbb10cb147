"""zoom= everywhere: the Python API, the CLI, annotate (cached per tile, resumable), eval
and the demo. Answers come from the simulated model (eval/zoom_sim.py) or, for the
killed subprocess runs, from a replay file of its answers keyed by each tile's pixels.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.zoom_sim import Scene, SimulatedModel, noise_background, screenshot_scene
from tests.test_zoom import mean_ap, random_scene
from vistool.api import Vistool
from vistool.batch.annotate import AnnotateConfig, annotate
from vistool.batch.cache import KILL_AFTER_ENV, KILL_MODE_ENV
from vistool.batch.replay_file import image_fingerprint, write_replay_file
from vistool.cli import main
from vistool.errors import VistoolError
from vistool.evaluation.run import RunOptions, evaluate_screenspot
from vistool.evaluation.run import main as eval_main
from vistool.io.images import load_image
from vistool.profiles import get_profile
from vistool.tasks import TASKS
from vistool.zoom import ZoomJob, ZoomSettings, run_jobs

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- the API
def test_api_zoom_per_call_and_as_a_default():
    scene = random_scene((1600, 1000), 14, seed=11)
    sim = SimulatedModel([scene], exact=True)
    vt = Vistool(sim)
    off = vt.detect(scene.image, ["cat", "dog"], budget=70)
    assert sim.calls == 1 and "zoom" not in off.provenance
    tiles = vt.detect(scene.image, ["cat", "dog"], budget=70, zoom="tiles")
    assert sim.calls == 1 + tiles.provenance["zoom"]["cost"]["model_calls"] > 2
    assert mean_ap([scene], [tiles.detections]) >= 0.99
    both = vt.detect([scene.image, "no/such/file.png"], ["cat"], budget=70, zoom="tiles")
    assert both[0].ok and not both[1].ok  # a bad image in a list still fails alone
    little = random_scene((300, 200), 2, seed=14)
    sim.scenes.append(little)
    small, huge = vt.detect([little.image, scene.image], ["cat"], budget=70, zoom="tiles:tile=150,max_tiles=8")
    assert small.ok and not huge.ok and "max_tiles" in huge.error  # too many tiles for one image: that one fails
    with pytest.raises(VistoolError, match="max_tiles"):
        vt.detect(scene.image, ["cat"], budget=70, zoom="tiles:tile=150,max_tiles=8")
    with pytest.raises(VistoolError, match="does not apply to task 'caption'"):
        vt.caption(scene.image, zoom="tiles")
    with pytest.raises(VistoolError, match="does not apply to task 'ocr'"):
        vt.ocr(scene.image, zoom="tiles")  # plain text has no boxes to tile: regions=True does
    zoomed = Vistool(sim, zoom="tiles:tile=700")
    calls = sim.calls
    assert "zoom" in zoomed.detect(scene.image, ["cat"], budget=70).provenance  # the default applies ...
    assert "zoom" not in zoomed.gui_ground(scene.image, "cat 0", budget=70).provenance  # ... where its mode does
    assert sim.calls > calls
    clicked = zoomed.gui_ground(scene.image, "cat 0", budget=70, zoom="refine")
    x, y = clicked.extras["click"]
    x1, y1, x2, y2 = scene.xyxy[0]
    assert x1 <= x <= x2 and y1 <= y <= y2


# ----------------------------------------------------------------- the CLI
def test_cli_refuses_a_zoom_the_task_cannot_take_before_loading(tmp_path, capsys):
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(path)
    assert main(["detect", str(path), "--zoom", "refine", "--model", str(tmp_path / "no-model")]) == 2
    assert "does not apply to task 'detect'" in capsys.readouterr().err
    assert main(["gui", str(path), "--zoom", "tiles:tile=2", "--model", str(tmp_path / "no-model")]) == 2
    assert "at least 8 pixels" in capsys.readouterr().err


def test_cli_detect_with_tiles_on_the_tiny_model(tmp_path, tiny_model_dir, capsys):
    path = tmp_path / "wide.png"
    noise_background((900, 400), 1).save(path)
    saved = tmp_path / "drawn.png"
    code = main(["detect", str(path), "--classes", "cat", "--zoom", "tiles:tile=400,overlap=0.25", "--budget", "70",
                 "--max-new-tokens", "8", "--model", str(tiny_model_dir), "--device", "cpu", "--save", str(saved)])
    out = capsys.readouterr().out
    assert code == 0, out
    zoom = json.loads(out)["provenance"]["zoom"]
    assert zoom["grid"]["tiles"] == 3 and zoom["cost"]["model_calls"] == 3
    assert [p["crop"] for p in zoom["passes"]] == [[0, 0, 400, 400], [300, 0, 700, 400], [600, 0, 900, 400]]
    assert np.asarray(Image.open(saved))[0, 300].tolist() != np.asarray(Image.open(path))[0, 300].tolist()  # tile frames drawn


# ----------------------------------------------------------------- annotate: resume
def write_folder(folder: Path, count: int) -> list[Scene]:
    """PNG scenes of 160..260 px with 2-5 objects each (lossless, so pixels survive the file)."""
    scenes = []
    for index in range(count):
        rng = np.random.default_rng(100 + index)
        size = (int(rng.integers(160, 261)), int(rng.integers(160, 261)))
        scene = random_scene(size, int(rng.integers(2, 6)), seed=100 + index, smallest=20, largest=50, labels=("person", "car"))
        path = folder / f"img{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        scene.image.save(path)
        scenes.append(Scene(load_image(path).image, scene.xyxy, scene.labels, scene.names, path.name))
    return scenes


ZOOM = "tiles:tile=96,overlap=32"


def tile_answers(scenes: list[Scene], path: Path) -> tuple[Path, int]:
    """A replay file answering every tile of every scene as the exact simulated model
    would (keyed by the tile's pixels); returns it and the number of tiles."""
    sim = SimulatedModel(scenes, exact=True)
    answers: dict[str, str] = {}
    tiles = 0
    for scene in scenes:
        job = ZoomJob(TASKS["detect"], get_profile("gemma4"), {"classes": ["person", "car"]},
                      Vistool(sim, budget=70).settings, scene.image, scene.name, ZoomSettings.parse(ZOOM))
        run_jobs([job], sim.generate)
        for step in job.passes:
            answers[image_fingerprint(step.request.images[0])] = step.response.text
        tiles += len(job.passes)
    return write_replay_file(path, answers, default="[]"), tiles


@pytest.fixture(scope="module")
def resume_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("zoom-resume")
    scenes = write_folder(base / "imgs", 8)
    answers, tiles = tile_answers(scenes, base / "answers.json")
    reference = base / "reference"
    assert main(argv(base / "imgs", reference, answers)) == 0
    return {"base": base, "src": base / "imgs", "answers": answers, "tiles": tiles, "reference": reference, "scenes": scenes}


def argv(src: Path, out: Path, answers: Path) -> list[str]:
    return ["annotate", str(src), "--out", str(out), "--classes", "person,car", "--backend", "replay", "--budget", "70",
            "--replay-answers", str(answers), "--batch-size", "3", "--format", "coco,yolo,voc", "--no-progress",
            "--zoom", ZOOM]


def exports(out: Path) -> dict[str, bytes]:
    skip = {"answers.jsonl", ".vistool.lock"}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name not in skip}


def cache_keys(out: Path) -> list[str]:
    lines = (out / "answers.jsonl").read_bytes().splitlines(keepends=True)
    return [json.loads(line)["key"] for line in lines if line.endswith(b"\n")]


def test_annotate_with_tiles_caches_every_tile_and_exports_exact_boxes(resume_setup, capsys):
    reference = resume_setup["reference"]
    keys = cache_keys(reference)
    assert len(keys) == len(set(keys)) == resume_setup["tiles"] > 8  # one answer per tile, none twice
    records = [json.loads(line) for line in (reference / "answers.jsonl").read_text().splitlines()]
    assert all(len(record["crop"]) == 4 for record in records)  # keyed by the tile box
    coco = json.loads((reference / "coco.json").read_text())
    assert len(coco["annotations"]) == sum(len(scene.labels) for scene in resume_setup["scenes"])
    results = [json.loads(line) for line in (reference / "results.jsonl").read_text().splitlines()]
    assert all(r["provenance"]["zoom"]["cost"]["model_calls"] == len(r["provenance"]["zoom"]["passes"]) for r in results)


@pytest.mark.parametrize("kill_after, mode", [(0, "torn"), (5, "torn"), (17, "clean")])
def test_annotate_with_tiles_killed_then_resumed_is_byte_identical(resume_setup, tmp_path, capsys, kill_after, mode):
    out = tmp_path / "out"
    environment = {**os.environ, "PYTHONPATH": str(REPO), KILL_AFTER_ENV: str(kill_after), KILL_MODE_ENV: mode}
    process = subprocess.run([sys.executable, "-m", "vistool.cli", *argv(resume_setup["src"], out, resume_setup["answers"])],
                             cwd=REPO, env=environment, capture_output=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()
    assert len(cache_keys(out)) == kill_after and not (out / "coco.json").exists()
    assert main(argv(resume_setup["src"], out, resume_setup["answers"])) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == resume_setup["tiles"] - kill_after  # no tile asked twice (answers asked; model_calls counts generate calls)
    assert exports(out) == exports(resume_setup["reference"])
    assert sorted(cache_keys(out)) == sorted(cache_keys(resume_setup["reference"]))
    assert main(argv(resume_setup["src"], out, resume_setup["answers"])) == 0  # once more: all from the cache
    assert json.loads(capsys.readouterr().out)["model_calls"] == 0
    assert main([*argv(resume_setup["src"], out, resume_setup["answers"]), "--rescore"]) == 0
    assert json.loads(capsys.readouterr().out)["model_calls"] == 0
    assert exports(out) == exports(resume_setup["reference"])


def test_annotate_refuses_a_zoom_the_task_cannot_take(tmp_path):
    with pytest.raises(VistoolError, match="does not apply to task 'caption'"):
        annotate(AnnotateConfig(src=str(tmp_path), out=tmp_path / "out", task="caption", zoom="tiles", progress=False))


# ----------------------------------------------------------------- eval
def test_eval_screenspot_with_refine_on_small_targets(tmp_path):
    scenes, entries = [], []
    for seed in (1, 2):
        scene = screenshot_scene(seed, size=(1920, 1080), targets=6, smallest=8, largest=10)
        scene.image.save(tmp_path / f"shot{seed}.png")
        scenes.append(Scene(load_image(tmp_path / f"shot{seed}.png").image, scene.xyxy, scene.labels, scene.names, f"shot{seed}"))
        entries += [{"img_filename": f"shot{seed}.png", "instruction": name, "bbox": [float(v) for v in box], "img_size": [1920, 1080],
                     "ui_type": "icon", "group": "Dev", "platform": "linux", "application": "sim", "id": f"{seed}-{i}"}
                    for i, (box, name) in enumerate(zip(scene.xyxy, scene.names))]
    (tmp_path / "sim_linux.json").write_text(json.dumps(entries))
    reports = {}
    for zoom in ("off", "refine"):
        vt = Vistool(SimulatedModel(scenes), budget=280)
        reports[zoom] = evaluate_screenspot(vt, tmp_path / "sim_linux.json", tmp_path, RunOptions(tmp_path / zoom, progress=False, zoom=zoom))
    assert reports["off"]["metrics"]["accuracy"] < 0.5 < reports["refine"]["metrics"]["accuracy"] == 1.0
    assert reports["refine"]["meta"]["zoom"] == "refine" and reports["refine"]["meta"]["cost"]["model_calls_per_item"] == 2
    assert "refine" in (tmp_path / "refine" / "report.md").read_text()
    rescored = evaluate_screenspot(Vistool(SimulatedModel([]), budget=280), tmp_path / "sim_linux.json", tmp_path,
                                   RunOptions(tmp_path / "refine", progress=False, zoom="refine", rescore=True))
    assert rescored["metrics"]["accuracy"] == 1.0 and rescored["meta"]["run"]["model_calls"] == 0


def test_eval_refuses_a_bad_zoom_before_loading(tmp_path, capsys):
    code = eval_main(["screenspot", "--annotations", str(tmp_path), "--out", str(tmp_path / "o"), "--zoom", "tiles",
                      "--model", str(tmp_path / "none")])
    assert code == 2 and "does not apply to task 'gui_ground'" in capsys.readouterr().err


# ----------------------------------------------------------------- the demo
def test_demo_zoom_toggle_draws_the_tiles(tmp_path):
    from vistool.app.tabs import TABS
    from vistool.app.ui import OUTPUT_NAMES, DemoRunner

    scene = random_scene((1600, 1000), 8, seed=12, labels=("circle",))
    path = tmp_path / "big.png"
    scene.image.save(path)
    scene = Scene(load_image(path).image, scene.xyxy, scene.labels, scene.names, "big")
    runner = DemoRunner(Vistool(SimulatedModel([scene], exact=True)), download_dir=tmp_path / "files")
    detect = next(spec for spec in TABS if spec.name == "detect")
    upload = {"path": str(path), "orig_name": "big.png"}
    plain = dict(zip(OUTPUT_NAMES, runner.run(detect, upload, ["detect", "circle", 70, 256, False, "off"])))
    zoomed = dict(zip(OUTPUT_NAMES, runner.run(detect, upload, ["detect", "circle", 70, 256, False, "tiles"])))
    assert len(zoomed["table"]) == len(plain["table"]) == 8
    assert "model calls" in zoomed["stats"] and zoomed["json"]["zoom"]["mode"] == "tiles"
    assert len(zoomed["json"]["zoom"]["passes"]) > 1
    assert Image.open(zoomed["visual"]).tobytes() != Image.open(plain["visual"]).tobytes()  # the tiles are framed
    with pytest.raises(Exception, match="Zoom"):
        runner.run(detect, upload, ["detect", "circle", 70, 256, False, "sideways"])


def test_set_of_marks_lists_the_elements_tile_by_tile():
    scene = random_scene((1600, 1000), 6, seed=15, labels=("button", "icon"))

    class Marked(SimulatedModel):
        """The simulated model, plus: on the marked screenshot it picks mark 2."""

        def generate(self, requests):
            return [super(Marked, self).generate([r])[0] if "mark" not in r.prompt.lower()
                    else type(super(Marked, self).generate([r])[0])(text='{"mark": 2}') for r in requests]

    vt = Vistool(Marked([scene], exact=True))
    result = vt.gui_ground(scene.image, "press it", marks=True, zoom="tiles:tile=700", budget=280)
    assert len(result.extras["elements"]) == 6 and result.extras["mark"] == 2  # listed through the tiles, none twice
    x, y = result.extras["click"]
    assert any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in scene.xyxy)  # the centre of a real element
    with pytest.raises(VistoolError, match="does not combine with marks"):
        vt.gui_ground(scene.image, "press it", marks=True, zoom="refine")
