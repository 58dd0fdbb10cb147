"""COCO scoring time (issue 19, item 3): vistool vs pycocotools vs faster-coco-eval, same numbers.

    python -m eval.bench_coco [--rounds 5] [--images 5000] [--before DIR]

Two sets: the shared 100-image COCO val2014 set with the official fake results
(../shared/data/coco-val2014-100, when present) and a generated set of `--images`
images (`synthetic_coco`: ~8 ground-truth boxes and ~8 detections per image, 80
classes). Per round, in rotating order: `score_coco` (vistool's scorer, everything
included: cleaning, indexing, evaluate, accumulate, summarize, per-class AP), plain
pycocotools (COCO + loadRes + COCOeval) and plain faster-coco-eval on the same inputs.
The plain engines write into their inputs, so they get fresh copies, made outside the
timing; vistool's scorer takes the caller's dicts and leaves them as they were (its
shallow per-annotation copies are timed). The 12 stats of the three are compared (largest difference from pycocotools printed).

Then `vistool eval score coco GT RESULTS` as a user runs it (a fresh process: imports
included), wall and user CPU seconds; with `--before DIR` the same command from another
source tree (e.g. the previous commit unpacked with `git archive`) in the same rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "coco-val2014-100"


def synthetic_coco(images: int, seed: int = 0, classes: int = 80, boxes: tuple[int, int] = (2, 14)) -> tuple[dict, list[dict]]:
    """Return (ground truth, results) for `images` generated images with `boxes` (min, max) boxes of `classes` classes each;
    detections are jittered boxes (15% missed) plus 0-3 false ones per image."""
    rng = random.Random(seed)
    categories = [{"id": i + 1, "name": f"class{i}"} for i in range(classes)]
    gt_images, annotations, results = [], [], []
    for image_id in range(1, images + 1):
        width, height = rng.choice([(640, 480), (480, 640), (1280, 720)])
        gt_images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": width, "height": height})
        for _ in range(rng.randint(*boxes)):
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            category = rng.randint(1, classes)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.02)})
            if rng.random() < 0.85:
                jitter = [x + rng.gauss(0, w * 0.08), y + rng.gauss(0, h * 0.08), w * rng.uniform(0.85, 1.15), h * rng.uniform(0.85, 1.15)]
                results.append({"image_id": image_id, "category_id": category, "bbox": jitter, "score": rng.random()})
        for _ in range(rng.randint(0, 3)):
            results.append({"image_id": image_id, "category_id": rng.randint(1, classes),
                            "bbox": [rng.uniform(0, width - 20), rng.uniform(0, height - 20), 20.0, 20.0], "score": rng.random() * 0.5})
    return {"images": gt_images, "annotations": annotations, "categories": categories}, results


def _quiet(function):
    with contextlib.redirect_stdout(io.StringIO()):
        return function()


def pycocotools_stats(gt: dict, results: list[dict]) -> list[float]:
    """Score with plain pycocotools (the reference); return the 12 stats. It writes into `gt` and `results`: pass copies."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def run():
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return [float(v) for v in evaluator.stats]

    return _quiet(run)


def faster_stats(gt: dict, results: list[dict]) -> list[float]:
    """Score with plain faster-coco-eval; return the 12 stats. It writes into `gt` and `results`: pass copies."""
    from faster_coco_eval import COCO, COCOeval_faster

    def run():
        coco_gt = COCO(gt)
        evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(results), "bbox", print_function=print)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return [float(v) for v in evaluator.stats[:12]]

    return _quiet(run)


def vistool_stats(gt: dict, results: list[dict]) -> list[float]:
    """Score with vistool's `score_coco`; return the 12 stats."""
    from vistool.evaluation.coco import STAT_NAMES, score_coco

    score = score_coco(gt, results)
    return [score[name] for name in STAT_NAMES]


def _cli_seconds(tree: Path, gt: Path, results: Path) -> tuple[float, float]:
    """Run `python -m vistool.cli eval score coco GT RESULTS` from `tree`; return (wall, user CPU) seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = os.times()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vistool.cli", "eval", "score", "coco", str(gt), str(results)],
                   cwd=str(tree), env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, time every scorer on both sets in interleaved rounds, print the tables."""
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--before", help="another source tree for the `vistool eval score` timing")
    args = parser.parse_args(argv)
    sets = {}
    if SHARED.exists():
        sets["coco-val2014-100 (official fake results)"] = (
            json.loads((SHARED / "instances_val2014_100.json").read_text()),
            json.loads((SHARED / "instances_val2014_fakebbox100_results.json").read_text()),
        )
    sets[f"generated {args.images} images"] = synthetic_coco(args.images)
    scorers = {"vistool score_coco": vistool_stats, "pycocotools": pycocotools_stats, "faster-coco-eval": faster_stats}
    for name, (gt, results) in sets.items():
        times: dict[str, list[float]] = {scorer: [] for scorer in scorers}
        stats: dict[str, list[float]] = {}
        for index in range(args.rounds):
            order = list(scorers.items())
            order = order[index % len(order) :] + order[: index % len(order)]
            for scorer, function in order:
                inputs = (gt, results) if scorer.startswith("vistool") else copy.deepcopy((gt, results))  # not timed
                start = time.process_time()
                stats[scorer] = function(*inputs)
                times[scorer].append(time.process_time() - start)
        print(f"\n{name}: {len(gt['images'])} images, {len(gt['annotations'])} boxes, {len(results)} detections; "
              f"CPU seconds over {args.rounds} interleaved rounds")
        reference = stats["pycocotools"]
        largest = max(abs(a - b) for values in stats.values() for a, b in zip(values, reference))
        print(f"{'scorer':<20} | {'best s':>7} | {'median s':>8} | AP, AP50, AP75 (largest difference from "
              f"pycocotools over the 12 stats: {largest:.1e})")
        for scorer in scorers:
            values = times[scorer]
            print(f"{scorer:<20} | {min(values):7.3f} | {statistics.median(values):8.3f} | "
                  f"{stats[scorer][0]:.4f}, {stats[scorer][1]:.4f}, {stats[scorer][2]:.4f}")
    if SHARED.exists():
        trees = {"after": REPO}
        if args.before:
            trees = {"before": Path(args.before).resolve(), **trees}
        runs: dict[str, list[tuple[float, float]]] = {tree: [] for tree in trees}
        for index in range(args.rounds):
            order = list(trees.items())
            order = order[index % len(order) :] + order[: index % len(order)]
            for tree, path in order:
                runs[tree].append(_cli_seconds(path, SHARED / "instances_val2014_100.json",
                                               SHARED / "instances_val2014_fakebbox100_results.json"))
        print(f"\n`vistool eval score coco` on the 100-image set, a fresh process each time ({args.rounds} rounds)")
        print(f"{'tree':<8} | {'wall best':>9} | {'wall median':>11} | {'CPU best':>8} | {'CPU median':>10}")
        for tree, values in runs.items():
            walls, cpus = [v[0] for v in values], [v[1] for v in values]
            print(f"{tree:<8} | {min(walls):9.2f} | {statistics.median(walls):11.2f} | {min(cpus):8.2f} | {statistics.median(cpus):10.2f}")


if __name__ == "__main__":
    main()
