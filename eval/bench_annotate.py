"""Benchmark of `vistool annotate` on the tiny offline Gemma 4 (CPU unless told otherwise).

Measures, on N generated images (mixed sizes, budget 70, a fixed token limit):
  1. images/s at batch size 1 and at batch size 8 (fresh output folders);
  2. the time of a fully cached re-run (nothing asked of the model);
  3. kill and resume, on the real command line (`python -m vistool.cli annotate`):
     the tiny model killed with SIGKILL at random moments, then resumed until done; and
     the replay backend killed by the cache writer's test hook (half a line written) and
     from outside. Reports kills tried, answers lost (must be 0), duplicated answers
     (must be 0), and whether the exports match the uninterrupted run byte for byte.

    python -m eval.bench_annotate [--images 200] [--new-tokens 16] [--model-kills 4] [--replay-kills 12]

Note on the tiny-model comparison: the kill/resume run regroups the remaining images
into new batches; the comparison says whether batch composition changed any answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vistool.api import Vistool
from vistool.batch.annotate import AnnotateConfig, annotate
from vistool.batch.cache import KILL_AFTER_ENV
from vistool.batch.replay_file import image_fingerprint, write_replay_file
from vistool.io.images import load_image
from vistool.runtime.tiny import make_tiny_model
from vistool.runtime.transformers_backend import TransformersBackend

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZES = [(96, 64), (64, 96), (80, 80), (128, 48)]
SKIP = {"answers.jsonl", ".vistool.lock"}


def make_images(folder: Path, count: int, seed: int = 0) -> None:
    """Write `count` random PNG images of mixed sizes into `folder` (10 per sub-folder)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        path = folder / f"part{index // 10:02d}" / f"img{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def exports(out: Path) -> dict[str, bytes]:
    """Every export file in `out` (not the cache), by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name not in SKIP}


def cache_keys(out: Path) -> list[str]:
    """The keys of the complete lines of `out`'s answer cache, in file order."""
    path = out / "answers.jsonl"
    lines = path.read_bytes().splitlines(keepends=True) if path.exists() else []
    return [json.loads(line)["key"] for line in lines if line.endswith(b"\n")]


def timed_run(src: Path, out: Path, vt: Vistool, model: str, batch_size: int, new_tokens: int) -> tuple[float, dict]:
    """Annotate `src` into `out` in-process; return (seconds, summary dict)."""
    config = AnnotateConfig(src=str(src), out=out, classes="person,car", model=model, budget=70, batch_size=batch_size,
                            max_new_tokens=new_tokens, formats=["coco", "yolo"], progress=False)
    start = time.perf_counter()
    summary = annotate(config, vt=vt)
    return time.perf_counter() - start, summary.to_dict()


def command(src: Path, out: Path, extra: list[str]) -> list[str]:
    """The `python -m vistool.cli annotate` command line."""
    return [sys.executable, "-m", "vistool.cli", "annotate", str(src), "--out", str(out), "--classes", "person,car",
            "--format", "coco,yolo", "--no-progress", *extra]


def run_until_done(argv: list[str], kills: int, rng: np.random.Generator, env: dict[str, str] | None = None,
                   hook_kills: bool = False, total: int = 0) -> tuple[int, int]:
    """Run a command, killing it `kills` times (SIGKILL from outside at a random moment once
    it has written answers, or with `hook_kills` by the writer hook mid-line), then let it
    finish. Returns (kills that landed before the run ended, exit code of the last run)."""
    out = Path(argv[argv.index("--out") + 1])
    landed = 0
    for _ in range(kills):
        before = len(cache_keys(out))
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        if hook_kills:
            environment[KILL_AFTER_ENV] = str(int(rng.integers(0, max(1, (total - before) // 2) + 1)))
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not hook_kills:
            while len(cache_keys(out)) <= before and process.poll() is None:
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, 2.0)))
            process.send_signal(signal.SIGKILL)
        process.wait()
        landed += process.returncode == -signal.SIGKILL
    final = subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return landed, final.returncode


def integrity(out: Path, reference: Path, images: int) -> dict:
    """Compare a resumed run with the uninterrupted one: lost and duplicated answers, exports."""
    keys, expected = cache_keys(out), set(cache_keys(reference))
    same = exports(out) == exports(reference)
    differing = 0
    if not same:
        mine = {json.loads(line)["image"]: json.loads(line)["text"] for line in (out / "results.jsonl").read_text().splitlines()}
        theirs = {json.loads(line)["image"]: json.loads(line)["text"] for line in (reference / "results.jsonl").read_text().splitlines()}
        differing = sum(mine.get(name) != text for name, text in theirs.items())
    return {
        "answers_in_cache": len(keys),
        "answers_lost": images - len(set(keys)),
        "answers_duplicated": len(keys) - len(set(keys)),
        "same_keys_as_uninterrupted": set(keys) == expected,
        "exports_byte_identical": same,
        "images_with_another_answer": differing,
    }


def main() -> None:
    """Run the benchmark and print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--model-kills", type=int, default=4)
    parser.add_argument("--replay-kills", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict = {"images": args.images, "budget": 70, "max_new_tokens": args.new_tokens, "device": args.device}
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as temp:
        base = Path(temp)
        src = base / "imgs"
        make_images(src, args.images)
        make_images(base / "warm", 8, seed=1)
        model = str(make_tiny_model(base / "tiny-gemma4", seed=0))
        speed = {}
        for batch_size in (1, 8):
            backend = TransformersBackend(model, device=args.device, dtype="float32", batch_size=batch_size)
            vt = Vistool(backend, budget=70, max_new_tokens=args.new_tokens)
            timed_run(base / "warm", base / f"warm{batch_size}", vt, model, batch_size, args.new_tokens)  # first-call costs
            seconds, summary = timed_run(src, base / f"batch{batch_size}", vt, model, batch_size, args.new_tokens)
            speed[f"batch_{batch_size}"] = {"seconds": round(seconds, 2), "images_per_s": round(args.images / seconds, 2),
                                            "model_calls": summary["model_calls"], "failed": summary["failed"]}
        before = exports(base / "batch8")
        seconds, summary = timed_run(src, base / "batch8", vt, model, 8, args.new_tokens)
        speed["cached_rerun"] = {"seconds": round(seconds, 2), "model_calls": summary["model_calls"],
                                 "exports_identical": exports(base / "batch8") == before}
        report["speed"] = speed
        print(json.dumps(speed), file=sys.stderr)

        tiny_argv = command(src, base / "killed-model", ["--model", model, "--budget", "70", "--max-new-tokens",
                                                         str(args.new_tokens), "--batch-size", "8", "--device", args.device])
        landed, code = run_until_done(tiny_argv, args.model_kills, rng)
        report["kill_resume_tiny_model"] = {"kills_tried": args.model_kills, "kills_landed": landed, "final_exit_code": code,
                                            **integrity(base / "killed-model", base / "batch8", args.images)}

        answers = {image_fingerprint(load_image(path).image): '[{"box_2d": [100, 100, 600, 700], "label": "car"}]'
                   for path in sorted(src.rglob("*.png"))[::2]}
        replay = write_replay_file(base / "replay.json", answers, delay_s=0.01)
        replay_args = ["--backend", "replay", "--replay-answers", str(replay), "--batch-size", "8"]
        subprocess.run(command(src, base / "replay-ref", replay_args), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, check=False)
        results = {}
        for name, hook in (("writer_hook_mid_line", True), ("external_sigkill", False)):
            out = base / f"replay-{name}"
            landed, code = run_until_done(command(src, out, replay_args), args.replay_kills // 2, rng,
                                          hook_kills=hook, total=args.images)
            results[name] = {"kills_tried": args.replay_kills // 2, "kills_landed": landed, "final_exit_code": code,
                             **integrity(out, base / "replay-ref", args.images)}
        report["kill_resume_replay"] = results
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
