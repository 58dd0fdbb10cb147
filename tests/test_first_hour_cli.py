"""A newcomer's first hour with the single-image commands (issue 17; issue 20 item 10), as a
user runs them: `python -m vistool.cli ...` in a subprocess. Every trap ends in one line on
stderr and an honest exit code, before any model loads where it can."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import typer

from vistool.cli import app
from vistool.commandline.view import plain_result_dict
from vistool.tasks import TaskResult

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "vistool" / "app" / "examples" / "shapes.png"
COMMANDS = sorted(typer.main.get_command(app).commands)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `python -m vistool.cli ARGS` from the repository (this checkout's code, offline)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    environment = {key: value for key, value in environment.items() if value is not None}
    return subprocess.run([sys.executable, "-m", "vistool.cli", *map(str, args)], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def many(*runs: tuple) -> list[subprocess.CompletedProcess]:
    """Run several `cli(...)` calls side by side; each run is (args tuple, env dict or None)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda run: cli(*run[0], env=run[1]), runs))


def error_line(finished: subprocess.CompletedProcess) -> str:
    """Return the one `error:` line on stderr (asserting there is exactly one and no traceback)."""
    errors = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in finished.stderr, finished.stderr
    return errors[0]


# ------------------------------------------------------------ usage errors (issue 20, item 10)
@pytest.mark.parametrize("command", [name for name in COMMANDS if name != "eval"])
def test_a_mistyped_option_is_a_usage_error_for_every_command(command):
    """`vistool CMD ... --zoomm tiles` (a mistyped --zoom): the usage error as click gives it (exit 2), one line, no traceback."""
    finished = cli(command, "--zoomm", "tiles")
    assert finished.returncode == 2
    line = error_line(finished)
    assert ("No such option: --zoomm" in line or "Missing argument" in line) and f"vistool {command} --help" in line


def test_missing_arguments_and_bad_values_are_usage_errors():
    """A missing argument, a value of the wrong type, an unknown option after a good one,
    and `eval` with a bad option: exit 2 with the usage error, never a traceback."""
    runs = [
        (("detect",), "Missing argument 'image'"),
        (("detect", IMAGE, "--budget", "abc"), "Invalid value for '--budget'"),
        (("detect", IMAGE, "--classes", "cat", "--zoomm", "tiles"), "No such option: --zoomm"),
        (("annotate", "photos/"), "Missing option '--out'"),
        (("video", "clip.mp4", "--frames", "many"), "Invalid value for '--frames'"),
    ]
    for finished, (_, message) in zip(many(*[(args, None) for args, _ in runs]), runs):
        assert finished.returncode == 2 and message in error_line(finished)
    finished = cli("eval", "coco", "--instances", "x.json", "--out", "o", "--zoomm", "tiles")
    assert finished.returncode == 2 and "unrecognized arguments: --zoomm tiles" in finished.stderr
    assert "Traceback" not in finished.stderr


# ------------------------------------------------------------------ traps before the model
def test_device_dtype_and_save_mistakes_fail_before_the_model_loads(tiny_model_dir, tmp_path, capsys):
    """--device cuda without CUDA and --save into a missing folder (as a user runs them),
    an unknown device or dtype and a suffix Pillow cannot write: one line each, exit 2,
    no weights loaded."""
    import torch

    from vistool.cli import main

    base = ("detect", IMAGE, "--model", tiny_model_dir, "--max-new-tokens", "4")
    runs = [(["--save", "/nonexistent/dir/out.png"], "folder /nonexistent/dir does not exist")]
    if not torch.cuda.is_available():
        runs.append((["--device", "cuda"], "CUDA is not available here"))
    for finished, (extra, message) in zip(many(*[((*base, *extra), None) for extra, _ in runs]), runs):
        assert finished.returncode == 2 and message in error_line(finished)
        assert "Loading weights" not in finished.stderr
    for extra, message in [(["--dtype", "int8"], "unknown dtype 'int8'"), (["--device", "gpu"], "unknown device 'gpu'"),
                           (["--save", str(tmp_path / "out.txt")], "unknown image type '.txt'")]:
        assert main([*map(str, base), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Loading weights" not in err


def test_an_unreachable_hub_fails_in_seconds_and_says_how_to_work_offline(tmp_path):
    """No HF_HUB_OFFLINE, a Hub that refuses connections and an empty cache: one short
    probe, then one line naming the cause and the offline way (no minutes of retries).
    With HF_HUB_OFFLINE=1 and nothing cached: one line too."""
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hub = {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")}
    online, offline = many((("detect", IMAGE), hub), (("detect", IMAGE), {**hub, "HF_HUB_OFFLINE": "1"}))
    assert online.returncode == 2 and "Retry" not in online.stderr
    line = error_line(online)
    assert "Hugging Face Hub is unreachable" in line and "HF_HUB_OFFLINE=1" in line and "hf download google/gemma-4-E2B-it" in line
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set" in error_line(offline)


# ------------------------------------------------------------------ progress and output
def test_progress_goes_to_stderr_and_only_the_result_to_stdout(tiny_model_dir, tmp_path):
    """With --progress, stderr shows the generated-token counter; stdout is the result
    JSON alone (boxes as plain lists), printed before the drawing is written."""
    drawn = tmp_path / "drawn.png"
    finished = cli("detect", IMAGE, "--classes", "circle", "--model", tiny_model_dir, "--budget", "70",
                   "--max-new-tokens", "12", "--progress", "--save", drawn)
    assert finished.returncode == 0, finished.stderr
    assert re.search(r"generating: .*\d+/12 .*tok", finished.stderr)
    result = json.loads(finished.stdout)
    assert isinstance(result["parsed"]["result"]["xyxy"], list) and drawn.is_file()
    assert TaskResult.from_dict(result).image_size == (480, 320)  # the printed JSON reloads


def test_the_readme_quick_start_draws_boxes_a_newcomer_can_see(tmp_path):
    """The README's first set-up command, after its pip install, run as written (in a temporary
    folder): the tiny model it builds answers with valid boxes (structured generation, no
    token-limit workaround), and `detected.png` shows them drawn over the example."""
    from PIL import Image, ImageChops

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    steps = [step.strip().split() for step in first.split("&&")]
    vistool_steps = [step[1:] for step in steps if step[0] == "vistool"]
    assert [step[0] for step in vistool_steps] == ["make-tiny-model", "detect"] and "--max-new-tokens" not in first
    make, detect = vistool_steps
    from vistool.runtime.tiny import make_tiny_model  # what `vistool make-tiny-model DIR --seed N` runs, in-process

    assert make[2:4] == ["--seed", make[3]] and len(make) == 4, make
    make_tiny_model(tmp_path / make[1], seed=int(make[3]))
    detect = [str(tmp_path / word) if word in (make[1], "detected.png") else word for word in detect]
    finished = cli(*detect)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    boxes = result["parsed"]["result"]["xyxy"]
    assert len(boxes) >= 1 and result["provenance"]["structured"].startswith("xgrammar"), result["text"]
    assert result["parsed"]["diagnostics"]["kept"] == len(boxes) and result["text"].startswith("[")
    drawn = Image.open(tmp_path / "detected.png").convert("RGB")
    changed = ImageChops.difference(drawn, Image.open(IMAGE).convert("RGB")).getbbox()
    x1, y1, x2, y2 = boxes[0]
    assert changed is not None and changed[0] <= x1 + 3 and changed[1] <= y1 + 3  # the first box's frame is drawn


def test_json_shows_boxes_as_lists_and_reloads():
    """The CLI's JSON: each box [x1, y1, x2, y2], names and confidences as lists; from_dict reads it."""
    from vistool.postprocess.diagnostics import Diagnostics
    from vistool.postprocess.parse import ParseResult
    from vistool.postprocess.results import make_detections

    detections, _ = make_detections(np.array([[1.0, 2.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]]), ["cat", "dog"],
                                    ["cat", "dog"], [0.9, 0.5])
    parsed = ParseResult("boxes", "gemma4", (64, 48), detections, Diagnostics(profile="gemma4", kind="boxes"))
    result = TaskResult(task="detect", source="x.png", image_size=(64, 48), text="...", parsed=parsed)
    boxes = plain_result_dict(result)["parsed"]["result"]
    assert boxes["xyxy"] == [[1.0, 2.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]]
    assert boxes["data"]["class_name"] == ["cat", "dog"] and boxes["confidence"] == [0.9, 0.5]
    again = TaskResult.from_dict(json.loads(json.dumps(plain_result_dict(result)))).detections
    assert np.array_equal(again.xyxy, detections.xyxy) and list(again.data["class_name"]) == ["cat", "dog"]


# ------------------------------------------------------------------ help
def test_help_has_no_bool_metavars_and_every_option_says_what_it_does(capsys):
    """No `<bool>` after a flag in any help page; every option and argument has help text."""
    from vistool.cli import main

    root = typer.main.get_command(app)
    page = cli("detect", "--help")  # as a user sees it; the other pages in-process
    assert page.returncode == 0 and "--thinking" in page.stdout and "<bool>" not in page.stdout
    for name in [*(name for name in COMMANDS if name != "eval"), None]:
        assert main([name, "--help"] if name else ["--help"]) == 0
        assert "<bool>" not in capsys.readouterr().out, name
    for name, command in root.commands.items():
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            assert getattr(param, "help", None), f"vistool {name}: {param.name} has no help"


def test_eval_help_lists_every_benchmark_and_score_help_works():
    """`vistool eval --help` names coco, screenspot, ocr, refexp and score, each with a
    description; `vistool eval score --help` and `... score coco --help` answer with 0."""
    overview, score, coco_score = many((("eval", "--help"), None), (("eval", "score", "--help"), None),
                                       (("eval", "score", "coco", "--help"), None))
    assert overview.returncode == 0
    for benchmark, words in [("coco", "pycocotools"), ("screenspot", "click"), ("ocr", "CER"), ("refexp", "IoU"),
                             ("score", "existing predictions")]:
        assert re.search(rf"^\s+{benchmark}\b.*", overview.stdout, re.MULTILINE), benchmark
        assert words in overview.stdout
    assert score.returncode == 0 and "screenspot PREDICTIONS.jsonl" in score.stdout
    assert coco_score.returncode == 0 and "results" in coco_score.stdout
