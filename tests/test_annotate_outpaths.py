"""Nothing `vistool annotate` writes lands outside OUT (issue 20, item 1).

Each case runs the real command (`python -m vistool.cli annotate` in a subprocess, the
replay backend answering with known boxes) with --draw and every box export, over a
source that tries to lead names out of OUT: a glob with ".." after a wildcard, a list
file of absolute paths, a symlinked folder, names that collide once cleaned. The whole
temporary tree outside OUT is hashed before and after: not one byte may change.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from vistool.batch.outpaths import path_inside, safe_name, unique_safe_names
from vistool.batch.replay_file import image_fingerprint, write_replay_file
from vistool.errors import VistoolError
from vistool.io.images import load_image
from vistool.postprocess import format_answer


def tree_hashes(root: Path, skip: Path) -> dict[str, str]:
    """sha256 of every file under `root` (following no links), except those under `skip`."""
    hashes = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [name for name in subdirs if Path(directory, name) != skip]
        for name in files:
            path = Path(directory, name)
            hashes[str(path.relative_to(root))] = "link" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def make_image(path: Path, shade: int) -> str:
    """Write a small image and return its fingerprint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (shade, 100, 200)).save(path)
    return image_fingerprint(load_image(path).image)


def run_annotate(src: str, out: Path, answers: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run the annotate command with every output that names files after the images."""
    command = [sys.executable, "-m", "vistool.cli", "annotate", src, "--out", str(out), "--classes", "cat",
               "--backend", "replay", "--replay-answers", str(answers), "--format", "coco,yolo,voc", "--draw",
               "--no-progress"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def setup_tree(base: Path) -> tuple[Path, list[str]]:
    """Victim photos outside the source's fixed prefix, plus ordinary ones; return the answers file."""
    fingerprints = []
    fingerprints.append(make_image(base / "victim" / "photo.jpg", 10))
    fingerprints.append(make_image(base / "victim" / "other.png", 20))
    fingerprints.append(make_image(base / "work" / "a1" / "x.png", 30))
    fingerprints.append(make_image(base / "elsewhere" / "deep" / "pic.png", 40))
    (base / "work" / "linked").symlink_to(base / "elsewhere", target_is_directory=True)
    answer = format_answer("gemma4", "boxes", [[4, 4, 40, 30]], ["cat"], (64, 48))
    answers = write_replay_file(base / "answers.json", {fingerprint: answer for fingerprint in fingerprints})
    return answers, fingerprints


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "source",
    [
        "a*/../../victim/*",  # ".." after a wildcard: the reported case
        "a*/../../victim/*.jpg",
        "list-of-absolute-paths",
        "**/*.png",  # follows the symlinked folder
        "linked/**/*.png",
    ],
)
def test_nothing_outside_out_changes(tmp_path, source):
    answers, _ = setup_tree(tmp_path)
    work = tmp_path / "work"
    out = work / "out"
    if source == "list-of-absolute-paths":
        listing = work / "list.txt"
        listing.write_text(f"{tmp_path / 'victim' / 'photo.jpg'}\n{tmp_path / 'elsewhere' / 'deep' / 'pic.png'}\n")
        source = str(listing)
    before = tree_hashes(tmp_path, skip=out)
    finished = run_annotate(source, out, answers, cwd=work)
    assert finished.returncode == 0, finished.stderr
    assert tree_hashes(tmp_path, skip=out) == before
    summary = json.loads(finished.stdout)
    assert summary["done"] >= 1
    drawn = [path for path in (out / "draw").rglob("*") if path.is_file()]
    assert len(drawn) == summary["done"]
    for written in out.rglob("*"):
        assert out.resolve() in written.resolve().parents
    coco = json.loads((out / "coco.json").read_text())
    assert all(".." not in name.split("/") and not name.startswith("/") for name in (i["file_name"] for i in coco["images"]))


def test_glob_with_parent_parts_names_images_from_a_covering_folder(tmp_path):
    setup_tree(tmp_path)
    from vistool.batch import collect_images

    cwd = os.getcwd()
    os.chdir(tmp_path / "work")
    try:
        source = collect_images("a*/../../victim/*")
        assert sorted(source.relative(path) for path in source.paths) == ["victim/other.png", "victim/photo.jpg"]
    finally:
        os.chdir(cwd)


def test_safe_names_stay_inside_and_stay_unique():
    assert safe_name("sub/a.jpg") == "sub/a.jpg"
    assert safe_name("../../etc/passwd.png") == "__/__/etc/passwd.png"
    assert safe_name("/abs/dir/a.jpg") == "abs/dir/a.jpg"
    assert safe_name("a/./b//c.jpg") == "a/b/c.jpg"
    assert safe_name("") == "_"
    mapping = unique_safe_names(["__/a.jpg", "../a.jpg", "x.jpg", "x.jpg"])
    assert mapping == {"../a.jpg": "__/a.jpg", "__/a.jpg": "__/a~2.jpg", "x.jpg": "x.jpg"}


def test_path_inside_refuses_names_and_links_that_lead_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path, target_is_directory=True)
    assert path_inside(out, "a/b.png") == out / "a" / "b.png"
    for name in ("../x.png", "/etc/x.png", "link/x.png"):
        with pytest.raises(VistoolError, match="outside the output folder"):
            path_inside(out, name)
