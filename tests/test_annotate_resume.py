"""Kill `vistool annotate` at any moment, run it again: the outputs are byte-identical to an
uninterrupted run, and the answer cache holds every answer exactly once.

The killed runs are real `python -m vistool.cli annotate` subprocesses on a replay
backend (answers known from the images' boxes). They are killed three ways: by the
cache writer's test hook (`VISTOOL_TEST_KILL_AFTER=N`: half of the next line written,
then SIGKILL; or `VISTOOL_TEST_KILL_MODE=clean`: right after the N-th line), by SIGKILL
from outside at an arbitrary moment, and by cutting the cache file at arbitrary bytes (a
power loss that lost the end of the file).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_annotate import export_bytes, make_folder, replay_file
from vistool.batch.cache import KILL_AFTER_ENV, KILL_MODE_ENV
from vistool.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGES = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A folder of 10 images plus one empty file, replay answers, and an uninterrupted run."""
    base = tmp_path_factory.mktemp("resume")
    src = base / "imgs"
    truth = make_folder(src, IMAGES, seed=5, subfolders=True)
    (src / "empty.png").write_bytes(b"")
    answers = replay_file(base / "answers.json", src, truth)
    slow = replay_file(base / "slow.json", src, truth, delay_s=0.15)
    reference = base / "reference"
    assert main(argv(src, reference, answers)) == 1  # the empty file fails, by design
    return {"base": base, "src": src, "answers": answers, "slow": slow, "reference": reference}


def argv(src: Path, out: Path, answers: Path) -> list[str]:
    """The annotate command line used by every run here."""
    return ["annotate", str(src), "--out", str(out), "--classes", "person,car", "--backend", "replay",
            "--replay-answers", str(answers), "--batch-size", "3", "--format", "coco,yolo,voc",
            "--no-progress"]


def start(arguments: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m vistool.cli ...` as a subprocess."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vistool.cli", *arguments], cwd=REPO_ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cache_lines(out: Path) -> list[bytes]:
    """The lines of the answer cache (the last one may be torn)."""
    path = out / "answers.jsonl"
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def assert_same_as_reference(out: Path, reference: Path) -> None:
    """Exports byte-identical to the reference run; every answer in the cache exactly once."""
    assert export_bytes(out) == export_bytes(reference)
    keys = [json.loads(line)["key"] for line in cache_lines(out)]
    reference_keys = [json.loads(line)["key"] for line in cache_lines(reference)]
    assert len(keys) == len(set(keys)) == IMAGES  # none duplicated
    assert set(keys) == set(reference_keys)  # none lost


@pytest.mark.parametrize("kill_after, mode", [(0, "torn"), (3, "torn"), (7, "torn"), (4, "clean")])
def test_killed_by_the_writer_hook_then_resumed(setup, tmp_path, capsys, kill_after, mode):
    out = tmp_path / "out"
    process = start(argv(setup["src"], out, setup["answers"]), {KILL_AFTER_ENV: str(kill_after), KILL_MODE_ENV: mode})
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err.decode()
    lines = cache_lines(out)
    complete = [line for line in lines if line.endswith(b"\n")]
    assert len(complete) == kill_after
    assert (len(lines) > len(complete)) == (mode == "torn")  # a half-written last line, or none
    assert not (out / "coco.json").exists()  # exports are written only at the end
    assert main(argv(setup["src"], out, setup["answers"])) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["generated"] == IMAGES - kill_after  # the finished answers were not asked again
    assert ("incomplete last line" in captured.err) == (mode == "torn")
    assert_same_as_reference(out, setup["reference"])


def test_killed_from_outside_twice_then_resumed(setup, tmp_path, capsys):
    out = tmp_path / "out"
    for wanted in (2, 6):  # kill when the cache holds at least this many answers
        process = start(argv(setup["src"], out, setup["slow"]))
        deadline = time.monotonic() + 120
        while len(cache_lines(out)) < wanted and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(np.random.default_rng(wanted).uniform(0, 0.15))  # anywhere within the next answer
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL
        assert wanted <= len(cache_lines(out)) < IMAGES
    assert main(argv(setup["src"], out, setup["answers"])) == 1
    summary = json.loads(capsys.readouterr().out)
    assert 0 < summary["generated"] <= IMAGES - 6 and summary["cached"] >= 6
    assert_same_as_reference(out, setup["reference"])


def test_power_loss_cuts_the_cache_anywhere(setup, tmp_path, capsys):
    whole = (setup["reference"] / "answers.jsonl").read_bytes()
    rng = np.random.default_rng(0)
    for cut in [0, 1, len(whole) // 2, len(whole) - 1, *rng.integers(0, len(whole), 3).tolist()]:
        out = tmp_path / f"cut{cut}"
        out.mkdir()
        (out / "answers.jsonl").write_bytes(whole[:cut])
        assert main(argv(setup["src"], out, setup["answers"])) == 1
        summary = json.loads(capsys.readouterr().out)
        assert summary["cached"] == whole[:cut].count(b"\n")
        assert_same_as_reference(out, setup["reference"])
        shutil.rmtree(out)


def test_rescore_rebuilds_the_same_exports(setup, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(setup["reference"], out)
    for path in out.iterdir():
        if path.name != "answers.jsonl":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert main([*argv(setup["src"], out, setup["answers"]), "--rescore"]) == 1  # --rescore never loads a backend
    assert json.loads(capsys.readouterr().out)["model_calls"] == 0
    assert_same_as_reference(out, setup["reference"])
