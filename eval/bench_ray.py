"""Benchmark of the Ray engine against the single-process engine, on the tiny offline Gemma 4 (CPU).

Measures, on N generated images (mixed sizes, budget 70, a fixed token limit, batches of 8):
  1. Ray's start-up: `ray.init` of a local instance (no dashboard, limited CPUs and
     object store), as `vistool annotate --engine ray` pays it once per command;
  2. images/s of the single-process engine (`BatchRunner`, its model loaded before the
     clock starts) and of the Ray engine with 1 and with 2 CPU model actors, each run
     on a fresh output folder, the three interleaved round by round (best and median
     over the rounds). A Ray run pays fixed costs each time (actor processes, their
     imports, one model load per actor, on the first batch); "steady" is the rate
     once answers flow: images answered after the first block reached the driver,
     over the time from that block to the last;
  3. that each Ray run's exports are byte-identical to the single-process run's.

    python -m eval.bench_ray [--images 160] [--rounds 3] [--new-tokens 16] [--threads 1]

Each model (the driver's and every actor's) uses --threads OpenMP threads; on this shared
2-core machine timings swing between identical runs, hence the interleaving and the median;
the load average at the end is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch

from eval.bench_annotate import exports, make_images
from vistool.api import Vistool, load
from vistool.batch import AnswerCache, BatchRunner, WorkItem, collect_images
from vistool.batch.annotate import AnnotateSummary, write_exports
from vistool.batch.export import make_entries
from vistool.engines import RayOptions, make_runner
from vistool.engines.ray_engine import ray_session
from vistool.runtime.tiny import make_tiny_model
from vistool.runtime.transformers_backend import TransformersBackend

BATCH = 8


def timed(runner, src: Path, out: Path) -> tuple[float, float | None]:
    """Run every image of `src` through `runner`, write the exports into `out`.

    Returns (seconds, steady images/s or None): for a Ray runner, the images of every
    block after the first, over the time from the first block's arrival to the last's.
    """
    source = collect_images(src)
    arrivals: list[tuple[float, int]] = []
    write = getattr(runner, "_write", None)
    if write is not None:  # note when each finished block reaches the driver
        def noted(block, rows):
            arrivals.append((time.perf_counter(), block.num_rows))
            write(block, rows)

        runner._write = noted
    start = time.perf_counter()
    report = runner.run([WorkItem(path, "detect", {"classes": ["person", "car"]}) for path in source.paths])
    seconds = time.perf_counter() - start
    summary = AnnotateSummary(out, "detect", report)
    write_exports(summary, make_entries(report.outcomes, source.relative), ["coco", "yolo"])
    steady = None
    if len(arrivals) > 1 and arrivals[-1][0] > arrivals[0][0]:
        steady = sum(rows for _, rows in arrivals[1:]) / (arrivals[-1][0] - arrivals[0][0])
    return seconds, steady


def row(name: str, seconds: list[float], steady: list[float], images: int) -> str:
    """One table row: best and median seconds and images/s, and the median steady rate."""
    best, median = min(seconds), statistics.median(seconds)
    rate = f"{statistics.median(steady):.1f}" if steady else "-"
    return f"| {name} | {len(seconds)} | {best:.2f} | {median:.2f} | {images / best:.1f} | {images / median:.1f} | {rate} |"


def main() -> None:
    """Run the benchmark; print a markdown table and a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per model (driver and each actor)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {"budget": 70, "max_new_tokens": args.new_tokens}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as temp:
        base = Path(temp)
        make_images(base / "imgs", args.images)
        make_images(base / "warm", 8, seed=1)
        model = str(make_tiny_model(base / "tiny-gemma4", seed=0))
        local_vt = Vistool(TransformersBackend(model, device="cpu", dtype="float32", batch_size=BATCH), **settings)
        lazy_vt = load(model, lazy=True, device="cpu", dtype="float32", batch_size=BATCH, **settings)
        timed(BatchRunner(local_vt, None, batch_size=BATCH, progress=False), base / "warm", base / "warm-out")  # first-call costs
        options = RayOptions(num_cpus=4, object_store_memory=512 * 1024**2, cpus_per_actor=args.threads)
        kinds = {"one process": None, "ray, 1 actor": 1, "ray, 2 actors": 2}
        seconds: dict[str, list[float]] = {name: [] for name in kinds}
        steady: dict[str, list[float]] = {name: [] for name in kinds}
        identical: dict[str, bool] = {}
        with ray_session(options) as init_s:
            for round_index in range(args.rounds):
                reference = base / f"one-process-{round_index}"
                for name, actors in kinds.items():
                    out = reference if actors is None else base / f"ray-{actors}-{round_index}"
                    out.mkdir()
                    cache = AnswerCache(out / "answers.jsonl")
                    if actors is None:
                        runner = BatchRunner(local_vt, cache, batch_size=BATCH, progress=False)
                    else:
                        runner = make_runner("ray", lazy_vt, cache, batch_size=BATCH, progress=False,
                                             ray=RayOptions(actors=actors, cpus_per_actor=args.threads))
                    took, rate = timed(runner, base / "imgs", out)
                    seconds[name].append(took)
                    if rate is not None:
                        steady[name].append(rate)
                    print(f"round {round_index} {name}: {took:.2f} s, steady {rate}", file=sys.stderr)
                    if actors is not None:
                        identical[name] = identical.get(name, True) and exports(out) == exports(reference)
                        shutil.rmtree(out)
                shutil.rmtree(reference)
            resources = ray.cluster_resources()
    lines = [
        f"{args.images} images, tiny Gemma 4 on CPU, budget 70, {args.new_tokens} new tokens, batches of {BATCH}, "
        f"{args.threads} thread(s) per model, {args.rounds} rounds interleaved, load average {os.getloadavg()[0]:.1f}",
        "",
        "| engine | runs | best s | median s | best img/s | median img/s | steady img/s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [row(name, seconds[name], steady[name], args.images) for name in kinds]
    lines += ["", f"Ray start-up (ray.init, local instance): {init_s:.2f} s", f"exports byte-identical: {identical}"]
    print("\n".join(lines))
    report = {"images": args.images, "ray_init_s": round(init_s, 2), "ray_resources": resources,
              "exports_identical_to_one_process": identical,
              "seconds": {name: [round(value, 2) for value in values] for name, values in seconds.items()},
              "steady_images_per_s": {name: [round(value, 2) for value in values] for name, values in steady.items()}}
    print(json.dumps(report, indent=2))

if __name__ == "__main__":
    main()
