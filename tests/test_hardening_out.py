"""OUT that cannot be written, and cache records that cannot be read (issue 20, items 7 and 8).

An unwritable OUT (a file in the way, answers.jsonl a folder, read-only, a disk that
fills while results are written) ends `annotate` and `eval` with one line and exit 2,
before any model loads; the answers already paid for stay in the cache. A cached
record with a valid key but a damaged body is asked again (and said so), not a failure
forever. The runs are real `python -m vistool.cli` subprocesses on a replay backend.
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

resource = pytest.importorskip("resource", reason="file-size limits need a POSIX system")

from tests.conftest import REPO_ROOT
from vistool.batch.replay_file import write_replay_file

ANSWER = '```json\n[{"box_2d": [100, 100, 600, 700], "label": "cat"}]\n```'


def run_vistool(*arguments: str, cwd: Path, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """Run `python -m vistool.cli ARGUMENTS`; with `file_size_limit`, no file it writes may grow past that many bytes."""

    def limit_file_size() -> None:  # the kernel then answers a write past the limit with EFBIG, like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "vistool.cli", *arguments], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit_file_size if file_size_limit is not None else None)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of three small images and a replay file answering one cat for each."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (30 + index, 40, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    write_replay_file(tmp_path / "answers.json", {}, default=ANSWER)
    return folder


def annotate(tmp_path: Path, out: str, *extra: str, **options) -> subprocess.CompletedProcess:
    """`vistool annotate photos --out OUT` on the replay answers."""
    return run_vistool("annotate", "photos", "--out", out, "--classes", "cat", "--backend", "replay",
                       "--replay-answers", str(tmp_path / "answers.json"), "--no-progress", *extra, cwd=tmp_path, **options)


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Assert exit 2 with a single 'error: ...' line on stderr holding every fragment."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# ------------------------------------------------------------------ item 7
@pytest.mark.timeout(120)
def test_out_below_a_file_fails_before_the_model_loads(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    done = run_vistool("annotate", "photos", "--out", "a-file/out", "--classes", "cat", "--model", str(tmp_path / "no-model"),
                       "--no-progress", cwd=tmp_path)
    one_line_error(done, "cannot write to the output folder a-file/out")  # not a model error: OUT is checked first


@pytest.mark.timeout(120)
def test_answers_jsonl_as_a_folder_is_a_one_line_error(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "out" / "answers.jsonl").mkdir(parents=True)
    one_line_error(annotate(tmp_path, "out"), "out/answers.jsonl is a folder")


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_read_only_out_is_a_one_line_error(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "out").mkdir(mode=0o555)
    one_line_error(annotate(tmp_path, "out"), "cannot write to the output folder out", "ermission denied")


@pytest.mark.timeout(120)
def test_eval_checks_its_out_before_the_model_loads(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "gt.json").write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}))
    done = run_vistool("eval", "coco", "--instances", "gt.json", "--out", "a-file/out", "--model", str(tmp_path / "no-model"),
                       "--no-progress", cwd=tmp_path)
    one_line_error(done, "cannot write to the output folder a-file/out")


@pytest.mark.timeout(180)
def test_disk_full_while_writing_results_keeps_the_answers(tmp_path: Path, photos: Path) -> None:
    measured = annotate(tmp_path, "measure")
    assert measured.returncode == 0, measured.stderr
    cache_size = (tmp_path / "measure/answers.jsonl").stat().st_size
    results_size = (tmp_path / "measure/results.jsonl").stat().st_size
    assert cache_size < results_size  # so a file-size limit between the two lets the cache through, not the results
    done = annotate(tmp_path, "out", file_size_limit=(cache_size + results_size) // 2)
    one_line_error(done, "cannot write out/results.jsonl: File too large", "every answer is saved in out/answers.jsonl",
                   "--rescore")
    assert (tmp_path / "out/answers.jsonl").read_bytes() == (tmp_path / "measure/answers.jsonl").read_bytes()
    rescored = annotate(tmp_path, "out", "--rescore")
    assert rescored.returncode == 0, rescored.stderr
    assert (tmp_path / "out/results.jsonl").read_bytes() == (tmp_path / "measure/results.jsonl").read_bytes()


# ------------------------------------------------------------------ item 8
@pytest.mark.timeout(240)
@pytest.mark.parametrize("zoom", [[], ["--zoom", "tiles"]], ids=["whole", "zoomed"])
def test_a_damaged_cached_record_is_asked_again(tmp_path: Path, photos: Path, zoom: list[str]) -> None:
    first = annotate(tmp_path, "out", *zoom)
    assert first.returncode == 0, first.stderr
    clean_results = (tmp_path / "out/results.jsonl").read_text()
    cache = tmp_path / "out/answers.jsonl"
    lines = cache.read_text().splitlines()
    damaged = json.loads(lines[1])
    damaged["response"]["text"] = 12345  # valid JSON, valid key, unusable body
    cache.write_text("\n".join([lines[0], json.dumps(damaged), *lines[2:]]) + "\n")

    rescored = annotate(tmp_path, "out", "--rescore", *zoom)
    assert rescored.returncode == 1
    # The image has a result in OUT that this re-score cannot rebuild: the exports are kept (issue 17: no
    # run makes them emptier), and the run says why, naming the damaged record.
    kept = json.loads(rescored.stdout)["kept_exports"]
    assert kept.startswith("1 image(s) with a result there failed") and "cannot be read (response.text is not a string)" in kept
    assert (tmp_path / "out/results.jsonl").read_text() == clean_results

    again = annotate(tmp_path, "out", *zoom)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["model_calls"] == 1 and summary["cached"] == 2 and summary["unreadable_cached_answers"] == 1
    assert "1 cached answer(s)" in again.stderr and "asked the model again" in again.stderr
    assert (tmp_path / "out/results.jsonl").read_text() == clean_results

    third = annotate(tmp_path, "out", *zoom)
    assert json.loads(third.stdout)["model_calls"] == 0 and json.loads(third.stdout)["unreadable_cached_answers"] == 0
