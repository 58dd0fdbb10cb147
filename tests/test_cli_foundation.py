"""`vistool make-tiny-model`, `generate` and `info` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from vistool.cli import main


def test_generate_prints_answer_and_json(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 96, 3), 120, dtype=np.uint8)).save(image)
    argv = ["generate", str(image), "Describe.", "--model", str(tiny_model_dir), "--budget", "70", "--max-new-tokens", "4"]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main(argv + ["--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["settings"]["budget"] == 70
    assert response["text"].strip() == plain.strip()
    assert response["image_tokens"] == 55  # 96x48 at 70 is scaled up to 528x240: 11 x 5 cells of 48 px


def test_generate_bad_inputs_fail_in_one_line(tiny_model_dir, tmp_path, capsys):
    missing = tmp_path / "missing.jpg"
    assert main(["generate", str(missing), "x", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(missing) in err and "\n" not in err
    image = tmp_path / "ok.png"
    Image.new("RGB", (32, 32)).save(image)
    assert main(["generate", str(image), "x", "--model", str(tiny_model_dir), "--budget", "100"]) == 2
    assert "budget 100" in capsys.readouterr().err


def test_console_script_info_and_make_tiny_model(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vistool.cli", "info"], capture_output=True, text=True, check=True
    ).stdout
    info = json.loads(out)
    assert info["device"] in ("cpu", "cuda", "mps") and "transformers" in info["versions"]
    made = subprocess.run(
        [sys.executable, "-m", "vistool.cli", "make-tiny-model", str(tmp_path / "tiny")],
        capture_output=True, text=True, check=True,
    )
    assert (tmp_path / "tiny" / "model.safetensors").exists()
    assert made.stdout.strip() == str(tmp_path / "tiny")
