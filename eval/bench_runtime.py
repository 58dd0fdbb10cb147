"""Benchmark: bare `processor + model.generate` loop vs vistool's runtime, same inputs.

Builds (or reuses) the tiny offline Gemma 4, makes N images of mixed aspect ratios and
times both paths one image at a time and in batches, greedy, with the same prompt and
budget. Prints one table; the overhead column is vistool's time over the bare loop's.

    python -m eval.bench_runtime [--model DIR] [--images 32] [--batch-size 8] [--budget 280]

How it times (so that a 5% target means something on a small shared machine): the two
paths are interleaved micro-batch by micro-batch, not run by run. Each micro-batch of
`--batch-size` images goes through the bare loop and through `backend.generate`, one
right after the other (who goes first alternates), `--repeats` times; each path's time is
its mean over the repeats of the sum over micro-batches. Both paths see the same images
in the same micro-batches (vistool's length bucketing only reorders rows inside one;
its gain from bucketing across a whole list is measured in eval/bench_speed.py with
`--mixed-prompts`), and load from other processes hits both sides of a pair alike.
Why these choices: timing whole 32-image runs (min of 3, interleaved) gave batch-1
overheads of +1.6%, +10.1% and +2.9% in three invocations of the same code, and batch-8
ones of -9.3%, -4.3% and +0.4%. Resampling 3 of 15 (batch 8) or 5 (batch 1) recorded
repeats of paired micro-batches, the spread (sd) of the overhead was 4.5% / 1.2% with the
sum of per-micro-batch minima and 2.3% / 0.6% with the mean used here.

Where vistool's own overhead was, and what removed it (paired, interleaved measurements;
budget 280, 16 new tokens, 1 thread):
- the prefill/decode timer was a logits processor, and transformers runs
  `inspect.signature` on every logits processor at every step (0.12 ms a step inside
  `generate`): `generate` with it +3.3% +- 0.8% over 300 batch-1 pairs; as a stopping
  criterion (`speed.PhaseTimer`) +0.1% +- 0.5%. Whole path, batch 1, 160 image pairs:
  +3.0% +- 0.9% -> +0.8% +- 1.0%.
- length bucketing also reordered rows inside a micro-batch, and the image processor's
  page faults depend on image order: bench_speed's 8 images in length order took +9% +-
  2% preprocessing (37k vs 27k page faults a call). Rows now keep the input order.
- per-row `.item()` calls for token counts and resized sizes: 0.8 -> 0.26 ms per batch of
  8 (negligible, but free).
Everything else vistool adds (validation, planning, chat template, decoding the answer)
is ~0.5 ms an image with the processor and model stubbed out: 0.2-0.3% at batch 1.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

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
    responses = backend.generate(requests)
    failed = [response.error for response in responses if not response.ok]
    if failed:  # a failed request returns fast (or is retried alone): its time would mean nothing
        raise RuntimeError(f"{len(failed)} vistool request(s) failed: {failed[0]}")
    return [response.text for response in responses]


def timed(run: Callable[[], object]) -> float:
    """Return the wall time of one call of `run` (seconds)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def paired_times(
    backend: TransformersBackend, images: list[Image.Image], batch_size: int, budget: int, new_tokens: int, repeats: int
) -> tuple[float, float]:
    """Time the bare loop and vistool micro-batch by micro-batch, interleaved; return (bare s, vistool s).

    Each micro-batch of `batch_size` images runs through both paths back to back (the
    order alternates between micro-batches and repeats), `repeats` times. A path's time
    is its total over all runs divided by `repeats`: the mean time of one pass over the
    images.
    """
    chunks = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    totals = {"bare": 0.0, "vistool": 0.0}
    for repeat in range(repeats):
        for index, chunk in enumerate(chunks):
            runs: list[tuple[str, Callable[[], object]]] = [
                ("bare", partial(bare_loop, backend, chunk, batch_size, budget, new_tokens)),
                ("vistool", partial(vistool_run, backend, chunk, batch_size, budget, new_tokens)),
            ]
            if (repeat + index) % 2:
                runs.reverse()
            for name, run in runs:
                totals[name] += timed(run)
    return totals["bare"] / repeats, totals["vistool"] / repeats


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
        bare, ours = paired_times(backend, images, batch_size, args.budget, args.new_tokens, args.repeats)
        print(
            f"{batch_size:>5} | {bare:8.2f} | {ours:9.2f} | {args.images / bare:10.2f} | "
            f"{args.images / ours:13.2f} | {100 * (ours - bare) / bare:+7.1f}%"
        )


if __name__ == "__main__":
    main()
