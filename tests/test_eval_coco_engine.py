"""The COCO scoring engine (faster-coco-eval) gives pycocotools' numbers, and scoring imports lazily."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from eval.bench_coco import pycocotools_stats, synthetic_coco
from tests.conftest import REPO_ROOT, shared_data
from vistool.evaluation.coco import STAT_NAMES, score_coco


def _assert_same(score, reference: list[float]) -> None:
    ours = [score[name] for name in STAT_NAMES]
    assert ours == pytest.approx(reference, abs=1e-12, rel=0)  # equal but for float summation order (~1e-16)
    assert [f"{value:.3f}" for value in ours] == [f"{value:.3f}" for value in reference]


def test_official_fake_results_give_pycocotools_numbers():
    folder = shared_data("coco-val2014-100")
    gt = json.loads((folder / "instances_val2014_100.json").read_text())
    results = json.loads((folder / "instances_val2014_fakebbox100_results.json").read_text())
    untouched = copy.deepcopy(gt)
    score = score_coco(gt, results)
    assert (round(score["AP"], 3), round(score["AP50"], 3), round(score["AP75"], 3)) == (0.505, 0.697, 0.573)
    _assert_same(score, pycocotools_stats(copy.deepcopy(gt), copy.deepcopy(results)))
    assert gt == untouched  # no deep copy, and still the caller's ground truth is left alone


def test_generated_5000_images_give_pycocotools_numbers():
    # Few classes and boxes keep the reference short: pycocotools loops over every (image, class) pair.
    gt, results = synthetic_coco(5000, seed=1, classes=1, boxes=(0, 2))
    _assert_same(score_coco(gt, results), pycocotools_stats(copy.deepcopy(gt), copy.deepcopy(results)))


def test_scoring_a_file_imports_no_model_code():
    folder = shared_data("coco-val2014-100")
    code = (
        "import sys; from vistool.cli import main; sys.argv = ['vistool', 'eval', 'score', 'coco', "
        f"{str(folder / 'instances_val2014_100.json')!r}, {str(folder / 'instances_val2014_fakebbox100_results.json')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "heavy = [name for name in ('torch', 'transformers', 'supervision', 'pycocotools', 'vistool.api') if name in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "0.505" in out.stdout and "HEAVY []" in out.stdout
