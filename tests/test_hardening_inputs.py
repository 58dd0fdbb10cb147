"""Input files that are not what their name says (issue 20, items 3, 4 and 10).

A named pipe, a link to /dev/zero, a 6 GB file that is no image, a symlink loop, a
dangling link: each is one failed item of `annotate` with a reason naming what it is
(never a hang, a MemoryError or a lost run), and a clear error for a single-image
command. A GIF is annotated (its first frame), not skipped. Every test is bounded by a
pytest-timeout, so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from vistool.batch.replay_file import write_replay_file
from vistool.errors import ImageLoadError, VideoLoadError
from vistool.io.images import image_file_sha256, load_image
from vistool.io.video import sample_video

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


def run_vistool(*arguments: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m vistool.cli ARGUMENTS` with this checkout's code; return the finished process."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "vistool.cli", *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def hostile_folder(folder: Path) -> dict[str, str]:
    """Fill `folder` with two real images and one of each impostor; return {name: expected reason}."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / "good.png")
    frames = [Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)) for _ in range(2)]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:])
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    with open(folder / "huge.jpg", "wb") as handle:  # 6 GB, sparse: no disk space used
        handle.truncate(6 << 30)
    (folder / "text.jpg").write_bytes(b"this is not an image\n" * 50_000)
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("gone.png", folder / "dangling.jpg")
    return {
        "pipe.jpg": "is a named pipe (FIFO), not a regular image file",
        "zero.jpg": "is a character device, not a regular image file",
        "huge.jpg": f"image file is {6 << 30} bytes, over the limit",
        "text.jpg": "not an image",
        "loop.jpg": "symbolic link loop",
        "dangling.jpg": "broken symbolic link (it points to gone.png",
    }


@pytest.mark.timeout(180)
@pytest.mark.parametrize("zoom", [[], ["--zoom", "tiles"]], ids=["whole", "zoomed"])
def test_annotate_reports_each_impostor_as_one_failed_item(tmp_path: Path, zoom: list[str]) -> None:
    expected = hostile_folder(tmp_path / "photos")
    answers = write_replay_file(tmp_path / "answers.json", {}, default='[{"box_2d": [0, 0, 500, 500], "label": "cat"}]')
    done = run_vistool("annotate", "photos", "--out", "out", "--classes", "cat", "--backend", "replay",
                       "--replay-answers", str(answers), "--no-progress", "--format", "coco,voc", *zoom, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # finished, some images failed
    assert "Traceback" not in done.stderr
    failures = {Path(row["image"]).name: row for row in map(json.loads, (tmp_path / "out/failures.jsonl").read_text().splitlines())}
    assert set(failures) == set(expected)
    for name, reason in expected.items():
        assert failures[name]["stage"] == "read"
        assert reason in failures[name]["reason"], failures[name]["reason"]
    results = {row["image"]: row for row in map(json.loads, (tmp_path / "out/results.jsonl").read_text().splitlines())}
    assert results["moving.gif"]["status"] == "ok" and results["moving.gif"]["image_size"] == [50, 30]
    coco = json.loads((tmp_path / "out/coco.json").read_text())
    assert sorted(image["file_name"] for image in coco["images"]) == ["good.png", "moving.gif"]
    assert (tmp_path / "out/voc/moving.xml").is_file()  # the VOC export reads the GIF through OpenCV


@pytest.mark.timeout(120)
def test_single_image_command_on_a_pipe_is_a_clear_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    done = run_vistool("detect", "pipe.jpg", "--classes", "cat", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: cannot load image pipe.jpg: is a named pipe (FIFO), not a regular image file; only regular files are read"
    )


@pytest.mark.timeout(120)
def test_symlink_loop_as_source_is_reported_as_a_loop(tmp_path: Path) -> None:
    os.symlink("photos", tmp_path / "photos")
    done = run_vistool("annotate", "photos", "--out", "out", "--backend", "replay", "--replay-answers", "x.json",
                       cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot read photos: symbolic link loop" in done.stderr
    assert "no such" not in done.stderr


@pytest.mark.timeout(60)
def test_loaders_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(VideoLoadError, match="is a named pipe"):
        sample_video(tmp_path / "pipe.mp4")
    with pytest.raises(ImageLoadError, match="is a named pipe"):
        load_image(str(tmp_path / "pipe.png"))
    with pytest.raises(ImageLoadError, match="is a character device"):
        image_file_sha256("/dev/zero")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(str(tmp_path))


def test_a_gif_loads_as_its_first_frame(tmp_path: Path) -> None:
    first, second = Image.new("RGB", (20, 10), "red"), Image.new("RGB", (20, 10), "blue")
    first.save(tmp_path / "a.gif", save_all=True, append_images=[second])
    loaded = load_image(str(tmp_path / "a.gif"))
    assert loaded.size == (20, 10) and loaded.image.getpixel((0, 0)) == (255, 0, 0)
