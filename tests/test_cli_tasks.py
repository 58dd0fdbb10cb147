"""The task commands as a user runs them: JSON on stdout, --save writes a drawing, bad input fails in one line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from vistool.cli import main

FAST = ["--budget", "70", "--max-new-tokens", "6"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "{img}", "--classes", "cat,dog"],
        ["detect", "{img}"],
        ["ground", "{img}", "the cat"],
        ["point", "{img}", "cat"],
        ["ocr", "{img}"],
        ["ocr", "{img}", "--regions", "--words"],
        ["caption", "{img}", "--length", "short"],
        ["ask", "{img}", "What is it?"],
        ["gui", "{img}"],
        ["gui", "{img}", "--instruction", "click OK"],
    ],
)
def test_task_commands_print_json(argv, photo, tiny_model_dir, capsys, tmp_path):
    save = tmp_path / "drawn.png"
    args = [part.format(img=photo) for part in argv] + ["--model", str(tiny_model_dir), "--save", str(save), *FAST]
    assert main(args) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["error"] is None and result["image_size"] == [160, 120]
    assert result["provenance"]["budget"] == 70 and result["provenance"]["model"] == str(tiny_model_dir)
    assert Image.open(save).size == (160, 120)


def test_video_command(tiny_model_dir, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (64, 48))
    for index in range(16):
        writer.write(np.full((48, 64, 3), index * 15, dtype=np.uint8))
    writer.release()
    assert main(["video", str(clip), "What happens?", "--frames", "4", "--model", str(tiny_model_dir), "--max-new-tokens", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["extras"]["timestamps"]) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["detect", "{missing}", "--classes", "cat"], "missing.jpg"),
        (["detect", "{text}", "--classes", "cat"], "notes.jpg"),
        (["detect", "{img}", "--classes", " , "], "empty class list"),
        (["detect", "{img}", "--classes", "cat", "--budget", "300"], "budget 300"),
        (["caption", "{img}", "--length", "epic"], "caption length"),
        (["video", "{missing}", "what?"], "missing.jpg"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(argv, message, photo, tiny_model_dir, tmp_path, capsys):
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not an image")
    names = {"img": photo, "missing": tmp_path / "missing.jpg", "text": text_file}
    args = [part.format(**names) for part in argv] + ["--model", str(tiny_model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert "Loading weights" not in err  # the bad input is refused before any model loads
