"""Classification cost: scoring the labels (vistool's classify) vs asking in free text vs
scoring each label in a forward pass of its own, per image, for N labels.

    python -m eval.bench_classify [--model DIR] [--labels 2,5,10,20] [--repeats 5]

- classify: one forward pass over prompt + image, its KV cache repeated per label, one
  forward pass over all labels (2 passes, whatever N); gives a distribution.
- free text: the same prompt generated greedily (up to --new-tokens tokens): 1 prefill +
  one decode step per token; gives one label (or noise) and no distribution.
- one pass per label: prompt + image + label in its own forward pass, N passes.
Runs are interleaved (one of each per repeat); best and median seconds per image.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image

from vistool.api import Vistool
from vistool.runtime.scoring import choice_token_ids
from vistool.runtime.tiny import model_or_tiny
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest

WORDS = ["cat", "dog", "bird", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "car", "bus",
         "truck", "boat", "train", "bicycle", "person", "chair", "bottle", "cup", "fork", "knife", "pizza", "cake"]


def one_pass_per_label(backend: TransformersBackend, request: GenerationRequest) -> int:
    """Score each label with its own forward pass over prompt + image + label; return passes made."""
    inputs = backend._prepare([request]).inputs
    ids = choice_token_ids(backend.tokenizer, request.choices, backend.profile.answer_end)
    with torch.inference_mode():
        for tokens in ids:
            full = dict(inputs)
            full["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([tokens])], dim=1)
            full["attention_mask"] = torch.ones_like(full["input_ids"])
            full["mm_token_type_ids"] = torch.cat(
                [inputs["mm_token_type_ids"], torch.zeros((1, len(tokens)), dtype=inputs["mm_token_type_ids"].dtype)], dim=1)
            backend.model(**full)
    return len(ids)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: build the tiny model in a temp folder)")
    parser.add_argument("--labels", default="2,5,10,20", help="label counts to try")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=8, help="free-text token limit")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    backend = TransformersBackend(model_or_tiny(args.model), device=args.device)
    vt = Vistool(backend)
    image = Image.new("RGB", (640, 480), (120, 90, 60))
    print(f"model {backend.model_id} on {backend.device}; image 640x480 at budget 140; seconds per image (best / median)")
    print("| labels | classify (2 passes) | free text (1 + tokens passes) | one pass per label (N passes) |")
    print("|---:|---|---|---|")
    for count in (int(n) for n in args.labels.split(",")):
        labels = WORDS[:count]
        times: dict[str, list[float]] = {"classify": [], "free": [], "each": []}
        tokens = []
        vt.classify(image, labels)  # warm up
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = vt.classify(image, labels)
            times["classify"].append(time.perf_counter() - start)
            assert result.ok and abs(sum(result.extras["probabilities"]) - 1) < 1e-9
            start = time.perf_counter()
            free = vt.ask(image, result.provenance["prompt"], max_new_tokens=args.new_tokens, budget=140)
            times["free"].append(time.perf_counter() - start)
            tokens.append(free.provenance["generated_tokens"])
            request = GenerationRequest(prompt=result.provenance["prompt"], images=[image], budget=140, choices=tuple(labels))
            start = time.perf_counter()
            one_pass_per_label(backend, request)
            times["each"].append(time.perf_counter() - start)
        cell = {key: f"{min(values):.3f} / {statistics.median(values):.3f}" for key, values in times.items()}
        print(f"| {count} | {cell['classify']} | {cell['free']} ({statistics.median(tokens):.0f} tokens) | {cell['each']} |")


if __name__ == "__main__":
    main()
