"""Benchmark: bare `processor + model.generate` loop vs vistool's runtime, same inputs.

Builds (or reuses) the tiny offline Gemma 4, makes N images of mixed aspect ratios and
times both paths one image at a time and in batches, greedy, with the same prompt and
budget. Prints one table; the overhead column is vistool's time over the bare loop's.

    python -m eval.bench_runtime [--model DIR] [--images 32] [--batch-size 8] [--budget 280]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from vistool.runtime.tiny import model_or_tiny
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest

PROMPT = 'Detect every object. Answer with a JSON list of {"box_2d": [y1, x1, y2, x2], "label": name}.'
SIZES = [(640, 480), (480, 640), (1280, 720), (512, 512), (1024, 256)]


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Return `count` random RGB images cycling through mixed aspect ratios."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in (SIZES[i % len(SIZES)] for i in range(count))
    ]


def bare_loop(backend: TransformersBackend, images: list[Image.Image], batch_size: int, budget: int, new_tokens: int) -> list[list[int]]:
    """The baseline a user would write: chat template, processor, generate, per batch."""
    processor, model = backend.processor, backend.model
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        inputs = processor(
            text=[text] * len(chunk),
            images=[[image] for image in chunk],
            return_tensors="pt",
            padding=True,
            images_kwargs={"max_soft_tokens": budget},
        )
        inputs = {k: v for k, v in inputs.items() if k not in processor.unused_input_names}
        with torch.inference_mode():
            generated = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
        outputs.extend(generated[:, inputs["input_ids"].shape[1] :].tolist())
    return outputs


def vistool_run(backend: TransformersBackend, images: list[Image.Image], batch_size: int, budget: int, new_tokens: int) -> list[str]:
    """The same work through vistool's runtime (`backend.generate` on request objects)."""
    backend.batch_size = batch_size
    requests = [GenerationRequest(PROMPT, images=[image], budget=budget, max_new_tokens=new_tokens) for image in images]
    return [response.text for response in backend.generate(requests)]


def timed(run: Callable[[], object]) -> float:
    """Return the wall time of one call of `run` (seconds)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    """Parse arguments, run both paths at batch 1 and batch N, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: build the tiny model in a temp folder)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--budget", type=int, default=280)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a small shared machine 2+ OpenMP threads give erratic timings)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model_dir = model_or_tiny(args.model)
    backend = TransformersBackend(model_dir)
    images = make_images(args.images)
    # Warm up both paths once (first-call allocations and lazy imports).
    bare_loop(backend, images[:2], 2, args.budget, 2)
    vistool_run(backend, images[:2], 2, args.budget, 2)

    print(f"model={model_dir} device={backend.device} dtype={backend.dtype} images={args.images} "
          f"budget={args.budget} new_tokens={args.new_tokens} threads={torch.get_num_threads()}")
    print(f"{'batch':>5} | {'bare s':>8} | {'vistool s':>9} | {'bare img/s':>10} | {'vistool img/s':>13} | {'overhead':>8}")
    for batch_size in (1, args.batch_size):
        # Interleave the two paths and keep each one's fastest run, so that load from
        # other processes on the machine penalises neither side more than the other.
        bare_times, our_times = [], []
        for _ in range(args.repeats):
            bare_times.append(timed(lambda: bare_loop(backend, images, batch_size, args.budget, args.new_tokens)))
            our_times.append(timed(lambda: vistool_run(backend, images, batch_size, args.budget, args.new_tokens)))
        bare, ours = min(bare_times), min(our_times)
        print(
            f"{batch_size:>5} | {bare:8.2f} | {ours:9.2f} | {args.images / bare:10.2f} | "
            f"{args.images / ours:13.2f} | {100 * (ours - bare) / bare:+7.1f}%"
        )


if __name__ == "__main__":
    main()
