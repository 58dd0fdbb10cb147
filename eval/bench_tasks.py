"""Per-task table: default budget, prompt tokens, image tokens, seconds per image one at a
time vs batched, on the tiny offline Gemma 4 (or a model you name).

    python -m eval.bench_tasks [--model DIR] [--images 8] [--batch-size 8] [--new-tokens 32]

Every task runs at its own default budget; generation is capped at --new-tokens so that the
random model's noise does not dominate (real answers are longer; see each task's default).
"""

from __future__ import annotations

import argparse
import time

import torch

from vistool.api import Vistool
from vistool.runtime.tiny import model_or_tiny
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.tasks import TASKS

from eval.bench_runtime import make_images

CALLS = {
    "detect": lambda vt, images, **kw: vt.detect(images, ["person", "car", "dog"], **kw),
    "ground": lambda vt, images, **kw: vt.ground(images, "the red car on the left", **kw),
    "point": lambda vt, images, **kw: vt.point(images, "person", **kw),
    "ocr": lambda vt, images, **kw: vt.ocr(images, **kw),
    "ocr_regions": lambda vt, images, **kw: vt.ocr(images, regions=True, **kw),
    "caption": lambda vt, images, **kw: vt.caption(images, **kw),
    "vqa": lambda vt, images, **kw: vt.ask(images, "What is in the picture?", **kw),
    "gui_elements": lambda vt, images, **kw: vt.gui_elements(images, **kw),
    "gui_ground": lambda vt, images, **kw: vt.gui_ground(images, "click the Submit button", **kw),
}


def main() -> None:
    """Run every image task at its default budget, one at a time and batched; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: build the tiny model in a temp folder)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a small shared machine 2+ OpenMP threads give erratic timings)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = model_or_tiny(args.model)
    backend = TransformersBackend(model_dir)
    vt = Vistool(backend, max_new_tokens=args.new_tokens)
    images = make_images(args.images)
    CALLS["detect"](vt, images[:1])  # warm-up

    print(f"model={model_dir} device={backend.device} images={args.images} new_tokens<={args.new_tokens}")
    print(f"{'task':<13} | {'budget':>6} | {'prompt tok':>10} | {'image tok':>9} | {'s/img x1':>8} | "
          f"{'s/img x' + str(args.batch_size):>8} | {'speed-up':>8}")
    for name, call in CALLS.items():
        timings = {}
        for batch_size in (1, args.batch_size):
            backend.batch_size = batch_size
            start = time.perf_counter()
            results = call(vt, images)
            timings[batch_size] = (time.perf_counter() - start) / len(images)
        prompt_tokens = sum(r.provenance["prompt_tokens"] for r in results) / len(results)
        image_tokens = sum(r.provenance["image_tokens"] for r in results) / len(results)
        one, many = timings[1], timings[args.batch_size]
        print(f"{name:<13} | {TASKS[name].default_budget:>6} | {prompt_tokens:>10.0f} | {image_tokens:>9.0f} | "
              f"{one:>8.3f} | {many:>8.3f} | {one / many:>7.1f}x")


if __name__ == "__main__":
    main()
