"""Zoom benchmark: accuracy / mAP with zoom off, tiles and refine, with their cost.

The accuracy figures come from the SIMULATED resolution-limited model (eval/zoom_sim.py):
it answers from ground truth through the budget's resize (objects under --min-px
resized pixels are missed, --noise-px resized pixels of localisation noise), so every
gain here is from resolution alone. On a real model, measure with
`vistool eval screenspot --zoom refine` (and `--zoom off` beside it).

    python -m eval.bench_zoom [--screens 4] [--targets 24] [--coco8 DIR] [--tiny-repeats 3]

Tables:
  1. synthetic 3840x2160 screenshots, targets 12-40 px: gui_ground (click inside the
     target), ground (Acc@0.5), detect (mAP@[.5:.95], AP@.5): per zoom mode, at Gemma
     4's budgets 280 and 1120, with model calls and image tokens per image (per query);
  2. coco8 photos upscaled to 3840 px on the long side: detect mAP, ground Acc@0.5
     (objects whose class is unique in the photo);
  3. wall time per image with the tiny random Gemma 4 on CPU (noise answers; generation
     capped at --new-tokens), interleaved repeats, best and median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv
from PIL import Image

from eval.zoom_sim import Scene, SimulatedModel, screenshot_scene
from vistool.api import Vistool
from vistool.postprocess.oracle import OracleImage, coco_stats, load_yolo_dataset

SHARED_COCO8 = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco8"


def _cost(results) -> tuple[float, float]:
    """Mean model calls and image tokens per result."""
    calls = [r.provenance.get("zoom", {}).get("cost", {}).get("model_calls", 1) for r in results]
    tokens = [r.provenance.get("image_tokens") or 0 for r in results]
    return float(np.mean(calls)), float(np.mean(tokens))


def _inside(click, box) -> bool:
    return click is not None and box[0] <= click[0] <= box[2] and box[1] <= click[1] <= box[3]


def _iou(a, b) -> float:
    return float(sv.box_iou_batch(np.array([a]), np.array([b]))[0, 0])


def bench_grounding(vt: Vistool, scenes: Sequence[Scene], task: str, zoom: str, budget: int) -> tuple[float, float, float]:
    """Accuracy over every target of every scene (gui_ground: click inside; ground: IoU >= 0.5)."""
    hits, results = [], []
    for scene in scenes:
        for box, name in zip(scene.xyxy, scene.names):
            if task == "gui_ground":
                result = vt.gui_ground(scene.image, name, zoom=zoom, budget=budget)
                hits.append(_inside(result.extras.get("click"), box))
            else:
                result = vt.ground(scene.image, name, zoom=zoom, budget=budget)
                found = result.detections
                hits.append(len(found) > 0 and _iou(found.xyxy[0], box) >= 0.5)
            results.append(result)
    return (float(np.mean(hits)), *_cost(results))


def bench_detect(vt: Vistool, scenes: Sequence[Scene], classes: list[str], zoom: str, budget: int) -> tuple[float, float, float, float]:
    """mAP@[.5:.95] and AP@.5 of detecting `classes` on every scene (constant scores)."""
    results = vt.detect([scene.image for scene in scenes], classes, zoom=zoom, budget=budget)
    truth = [OracleImage(i + 1, s.size, s.xyxy, s.labels) for i, s in enumerate(scenes)]
    detections = [r.detections for r in results]
    mean_ap, ap50 = coco_stats(truth, detections, classes)[:2]
    return (mean_ap, ap50, *_cost(results))


def coco8_scenes(root: Path, long_side: int = 3840) -> list[Scene]:
    """coco8 photos upscaled to `long_side` px (boxes scaled with them); names for ground
    are "the <class>" for classes that occur once in a photo (others get a numbered name
    no query uses)."""
    scenes = []
    for truth in load_yolo_dataset(root):
        with Image.open(truth.name) as photo:
            from PIL import ImageOps

            photo = ImageOps.exif_transpose(photo).convert("RGB")
            factor = long_side / max(photo.size)
            size = (round(photo.width * factor), round(photo.height * factor))
            image = photo.resize(size, Image.Resampling.BICUBIC)
        boxes = truth.xyxy * np.array([size[0] / truth.size[0], size[1] / truth.size[1]] * 2)
        names = [f"the {label}" if truth.labels.count(label) == 1 else f"{label} #{i}" for i, label in enumerate(truth.labels)]
        scenes.append(Scene(image, boxes, truth.labels, names, Path(truth.name).stem))
    return scenes


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


def simulated(args: argparse.Namespace) -> None:
    """Tables 1 and 2 (simulated model)."""
    screens = [screenshot_scene(seed, targets=args.targets) for seed in range(1, args.screens + 1)]
    sim = SimulatedModel(screens, min_px=args.min_px, noise_px=args.noise_px)
    vt = Vistool(sim)
    rows = []
    for budget in (280, 1120):
        for zoom in ("off", "refine", "refine:depth=2"):
            rows.append(["gui_ground", budget, zoom, *bench_grounding(vt, screens, "gui_ground", zoom, budget)])
        for zoom in ("off", "tiles", "refine"):
            rows.append(["ground", budget, zoom, *bench_grounding(vt, screens, "ground", zoom, budget)])
    print_table(
        f"Synthetic 3840x2160 screenshots ({args.screens} x {args.targets} targets, 12-40 px), simulated model "
        f"(min {args.min_px} resized px, noise {args.noise_px} resized px): accuracy per query",
        ["task", "budget", "zoom", "accuracy", "model calls / query", "image tokens / query"], rows)
    rows = []
    for budget in (280, 1120):
        for zoom in ("off", "tiles", "tiles:whole=true"):
            rows.append(["detect icon,button", budget, zoom, *bench_detect(vt, screens, ["icon", "button"], zoom, budget)])
    print_table("Same screenshots, detection", ["task", "budget", "zoom", "mAP@[.5:.95]", "AP@.5", "model calls / image",
                                                "image tokens / image"], rows)
    if args.coco8 is None or not args.coco8.exists():
        print(f"\n(coco8 not found at {args.coco8}: table 2 skipped)")
        return
    photos = coco8_scenes(args.coco8)
    sim = SimulatedModel(photos, min_px=args.min_px, noise_px=args.noise_px)
    vt = Vistool(sim)
    classes = sorted({label for scene in photos for label in scene.labels})
    rows = []
    for budget in (280, 1120):
        for zoom in ("off", "tiles", "tiles:whole=true"):
            rows.append(["detect (all coco8 classes)", budget, zoom, *bench_detect(vt, photos, classes, zoom, budget), ""])
        for zoom in ("off", "tiles", "refine"):
            hits, results = [], []
            for scene in photos:
                for box, name in zip(scene.xyxy, scene.names):
                    if not name.startswith("the "):
                        continue
                    result = vt.ground(scene.image, name, zoom=zoom, budget=budget)
                    hits.append(len(result.detections) > 0 and _iou(result.detections.xyxy[0], box) >= 0.5)
                    results.append(result)
            rows.append(["ground (unique classes)", budget, zoom, float(np.mean(hits)), "", *_cost(results), len(hits)])
    sizes = np.concatenate([np.minimum(s.xyxy[:, 2] - s.xyxy[:, 0], s.xyxy[:, 3] - s.xyxy[:, 1]) for s in photos])
    print_table(
        f"coco8 photos upscaled to 3840 px ({len(photos)} photos, {len(sizes)} objects; shorter side of the boxes: "
        f"median {np.median(sizes):.0f} px, {int((sizes < 100).sum())} under 100 px), simulated model",
        ["task", "budget", "zoom", "mAP / Acc@0.5", "AP@.5", "model calls / image", "image tokens / image", "queries"], rows)


def tiny_wall_time(args: argparse.Namespace) -> None:
    """Table 3: seconds per image with the tiny random model on CPU."""
    import torch

    from vistool.runtime.tiny import make_tiny_model
    from vistool.runtime.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        backend = TransformersBackend(str(make_tiny_model(Path(folder) / "tiny")), device="cpu", dtype="float32")
        vt = Vistool(backend, max_new_tokens=args.new_tokens)
        screen = screenshot_scene(1).image
        cases = [
            ("detect", 280, "off", lambda z: vt.detect(screen, ["icon", "button"], zoom=z, budget=280)),
            ("detect", 280, "tiles", lambda z: vt.detect(screen, ["icon", "button"], zoom=z, budget=280)),
            ("gui_ground", 1120, "off", lambda z: vt.gui_ground(screen, "icon 0", zoom=z, budget=1120)),
            ("gui_ground", 1120, "refine", lambda z: vt.gui_ground(screen, "icon 0", zoom=z, budget=1120)),
        ]
        cases[0][3]("off")  # warm-up
        times: dict[int, list[float]] = {index: [] for index in range(len(cases))}
        calls: dict[int, float] = {}
        for _ in range(args.tiny_repeats):  # interleaved: every case once per round
            for index, (_, _, zoom, call) in enumerate(cases):
                start = time.perf_counter()
                result = call(zoom)
                times[index].append(time.perf_counter() - start)
                calls[index] = _cost([result])[0]
        rows = [[task, budget, zoom, calls[i], min(times[i]), statistics.median(times[i])]
                for i, (task, budget, zoom, _) in enumerate(cases)]
        print_table(
            f"Wall time per 3840x2160 image, tiny random Gemma 4 on CPU ({args.threads} thread(s), "
            f"generation capped at {args.new_tokens} tokens, {args.tiny_repeats} interleaved repeats)",
            ["task", "budget", "zoom", "model calls", "best s", "median s"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screens", type=int, default=4)
    parser.add_argument("--targets", type=int, default=24)
    parser.add_argument("--min-px", type=float, default=6.0, help="the simulated model misses objects smaller than this (resized px)")
    parser.add_argument("--noise-px", type=float, default=1.0, help="localisation noise of the simulated model (resized px)")
    parser.add_argument("--coco8", type=Path, default=SHARED_COCO8)
    parser.add_argument("--tiny-repeats", type=int, default=3, help="0: skip the tiny-model wall times")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print("Accuracy gains below come from a SIMULATED resolution-limited model, i.e. from resolution alone; "
          "measure a real model with `vistool eval screenspot --zoom refine`.")
    simulated(args)
    if args.tiny_repeats > 0:
        tiny_wall_time(args)


if __name__ == "__main__":
    main()
