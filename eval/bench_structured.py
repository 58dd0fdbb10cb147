"""Structured generation, side by side with free generation, on the tiny offline Gemma 4 (or a model you name).

    python -m eval.bench_structured [--model DIR] [--budget 70] [--repeats 5] [--parts parse,speed,loop]

Three tables, each measured in one run:
  1. parse: per task (detect, ground, point, OCR regions over the coco8 photos, or
     generated photos when ../shared/data is absent; GUI elements and grounding over
     generated screenshots), with the grammar and without: answers that are usable (an
     item kept, or an empty list), answers whose JSON validates against the task's
     schema, items kept, generated tokens, seconds.
  2. speed: generation time with and without the grammar at batch 1 and 8, interleaved
     (free, grammar, free, grammar, ...), best and median of --repeats; both capped at
     --speed-tokens new tokens on an OCR-regions prompt, where both run to the cap, so
     the per-token times compare like with like.
  3. loop: a looping answer (the model is made to write one item over and over) with and
     without the loop stop: tokens generated, seconds, items parsed.
  4. masks: what the grammar costs per decode step at Gemma 4's vocabulary size
     (262,144 tokens, a synthetic vocabulary: bytes, digits, JSON pieces, word pieces),
     without a model: fill the masks of B rows (xgrammar's threads when B > 1), apply
     them to B x 262,144 logits, accept the chosen tokens; best and median per step.
     The tiny model's 512-token vocabulary makes masks nearly free, a real one does not.

Random weights answer noise: the figures show what the grammar guarantees (every answer
parses) and what it costs per token, not detection quality.

Measured on the project machine (2 shared cores, CPU, 1 thread, xgrammar 0.2.9), with
`python -m eval.bench_structured --repeats 11`:
  1. usable / schema-valid answers, structured vs free: detect 8/8 vs 0/8, ground 8/8 vs
     0/8, point 8/8 vs 0/8, OCR regions 8/8 vs 0/8 (coco8), GUI elements 4/4 vs 0/4, GUI
     grounding 4/4 vs 0/4 (generated screenshots); tokens per answer 15 vs 756 (detect),
     181 vs 1424 (OCR regions).
  2. decode ms per step, free vs grammar, best of 11: batch 1 1.83 vs 2.01, batch 8 2.87
     vs 3.34; whole call 0.136 vs 0.149 s (batch 1), 0.311 vs 0.354 s (batch 8).
  3. loop stop: 1024 tokens (3.19 s) without, 91 tokens (0.31 s) with; one item kept.
  4. masks at 262,144 tokens: 1.16 ms per step at batch 1, 1.14 ms per row at batch 8
     (filling a mask takes 3-8 us; applying it to the logits on the CPU is the rest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vistool.api import Vistool
from vistool.batch.runner import answer_problem
from vistool.runtime.tiny import model_or_tiny
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.tasks import TASKS

COCO8 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco8" / "images"
LOOP_ITEM = '{"box_2d": [100, 200, 300, 400], "label": "cat"}, '

PHOTO_TASKS = {
    "detect": lambda vt, images, **kw: vt.detect(images, ["person", "car", "dog"], **kw),
    "ground": lambda vt, images, **kw: vt.ground(images, "the red car on the left", **kw),
    "point": lambda vt, images, **kw: vt.point(images, "person", **kw),
    "ocr_regions": lambda vt, images, **kw: vt.ocr(images, regions=True, **kw),
}
SCREEN_TASKS = {
    "gui_elements": lambda vt, images, **kw: vt.gui_elements(images, **kw),
    "gui_ground": lambda vt, images, **kw: vt.gui_ground(images, "click the Submit button", **kw),
}


def make_screenshots(count: int = 4, seed: int = 0) -> list[Image.Image]:
    """Return `count` generated user-interface screenshots (a title bar, a form, buttons) of mixed sizes."""
    rng = np.random.default_rng(seed)
    sizes = [(1280, 800), (390, 844), (1920, 1080), (800, 480)]
    shots = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        image = Image.new("RGB", (width, height), (246, 246, 248))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, width, 48), fill=(40, 60, 110))
        draw.text((16, 16), f"Settings - account {index}", fill="white")
        y = 80
        for row in range(int(rng.integers(3, 6))):
            draw.text((24, y), f"Field {row}", fill="black")
            draw.rectangle((24, y + 18, min(width - 24, 24 + width // 2), y + 44), outline=(120, 120, 120), fill="white")
            y += 70
        for label, x in (("Cancel", 24), ("Submit", 24 + min(200, width // 3))):
            draw.rectangle((x, y, x + 110, y + 36), fill=(60, 120, 220))
            draw.text((x + 28, y + 12), label, fill="white")
        shots.append(image)
    return shots


def photos() -> list:
    """Return the coco8 photo paths, or generated photos when the reference data is absent."""
    if COCO8.is_dir():
        return [str(path) for path in sorted(COCO8.glob("*/*.jpg"))]
    from eval.bench_runtime import make_images

    return make_images(8)


def parse_table(backend: TransformersBackend, budget: int | None) -> None:
    """Print, per task, usable and schema-valid answers with and without the grammar."""
    print(f"\n1. parse success (budget {budget or 'task default'}; each task's own token limit)")
    print(f"{'task':<13} | {'mode':<10} | {'answers':>7} | {'usable':>7} | {'schema-valid':>12} | {'items':>5} | "
          f"{'tokens/answer':>13} | {'s':>6}")
    runs = [(name, call, photos()) for name, call in PHOTO_TASKS.items()]
    runs += [(name, call, make_screenshots()) for name, call in SCREEN_TASKS.items()]
    for name, call, images in runs:
        for structured in (True, False):
            vt = Vistool(backend, structured=structured, budget=budget)
            start = time.perf_counter()
            results = call(vt, images)
            seconds = time.perf_counter() - start
            usable = sum(answer_problem(result) is None for result in results)
            valid = sum(_valid(result, name, vt) for result in results)
            items = sum(len(result.parsed) if result.parsed is not None else 0 for result in results)
            tokens = statistics.mean(result.provenance.get("generated_tokens", 0) for result in results)
            mode = "structured" if structured else "free"
            print(f"{name:<13} | {mode:<10} | {len(results):>7} | {usable:>7} | {valid:>12} | {items:>5} | "
                  f"{tokens:>13.0f} | {seconds:>6.1f}")


def _valid(result, task: str, vt: Vistool) -> bool:
    """True when the result's answer is one JSON value that validates against the schema its task
    builds for this family (what the grammar enforces; a free answer may satisfy it by chance)."""
    import jsonschema

    from vistool.structured import answer_schema

    classes = ["person", "car", "dog"] if task == "detect" else None
    plan = answer_schema(TASKS[task].answer, vt.profile, classes)
    try:
        jsonschema.validate(json.loads(result.text, strict=False), plan.schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def speed_table(backend: TransformersBackend, repeats: int, tokens: int, budget: int | None) -> None:
    """Print generation time with and without the grammar at batch 1 and 8, interleaved.

    Two figures per run: the whole call (preprocessing, generation, parsing) and the
    backend's own decode time per step (its `decode_s` timing: after the first token,
    where the grammar works), each best and median of the repeats.
    """
    print(f"\n2. generation time, grammar vs free (OCR regions, capped at {tokens} new tokens, budget {budget or 'task default'};"
          f" interleaved, {repeats} repeats)")
    print(f"{'batch':>5} | {'mode':<8} | {'call best s':>11} | {'call median s':>13} | {'tokens':>6} | "
          f"{'decode ms/step best':>19} | {'decode ms/step median':>21}")
    images = photos()
    for batch in (1, 8):
        chosen = (images * 8)[:batch]
        calls: dict[bool, list[float]] = {False: [], True: []}
        steps: dict[bool, list[float]] = {False: [], True: []}
        counts: dict[bool, int] = {}
        for structured in (False, True):  # warm-up (grammar compiled, caches filled)
            Vistool(backend, structured=structured, budget=budget).ocr(chosen, regions=True, max_new_tokens=tokens)
        for _ in range(repeats):
            for structured in (False, True):
                vt = Vistool(backend, structured=structured, budget=budget)
                start = time.perf_counter()
                results = vt.ocr(chosen, regions=True, max_new_tokens=tokens)
                calls[structured].append(time.perf_counter() - start)
                counts[structured] = sum(result.provenance["generated_tokens"] for result in results)
                decode = sum(result.provenance["timings"]["decode_s"] for result in results)  # per-row shares: the call's
                longest = max(result.provenance["generated_tokens"] for result in results)
                steps[structured].append(decode / max(1, longest - 1))
        for structured in (False, True):
            call, step = calls[structured], steps[structured]
            print(f"{batch:>5} | {'grammar' if structured else 'free':<8} | {min(call):>11.3f} | {statistics.median(call):>13.3f} | "
                  f"{counts[structured]:>6} | {1000 * min(step):>19.2f} | {1000 * statistics.median(step):>21.2f}")


class _ForceLoop:
    """A logits processor that makes the model write `[` then one item over and over (a loop)."""

    def __init__(self, script: list[int], prompt_length: int) -> None:
        self.script, self.prompt_length = script, prompt_length

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step % len(self.script)] if step else self.script[0]] = 0.0
        return forced


class LoopingBackend(TransformersBackend):
    """The tiny model, made to answer a looping list (for measuring the loop stop)."""

    loop: list[int] = []

    def _generate_kwargs(self, requests, prompt_length):
        kwargs, recorder, controls = super()._generate_kwargs(requests, prompt_length)
        kwargs["logits_processor"].append(_ForceLoop(self.loop, prompt_length))
        return kwargs, recorder, controls


def looping_backend(model_dir: str) -> LoopingBackend:
    """Return a backend on `model_dir` whose answers loop on LOOP_ITEM (after a `[`)."""
    backend = LoopingBackend(model_dir, device="cpu", dtype="float32")
    opener = backend.tokenizer("[", add_special_tokens=False)["input_ids"]
    item = backend.tokenizer(LOOP_ITEM, add_special_tokens=False)["input_ids"]
    LoopingBackend.loop = opener + item * 1000
    return backend


def loop_table(model_dir: str, limit: int) -> None:
    """Print tokens and time of a looping answer with and without the loop stop."""
    backend = looping_backend(model_dir)
    image = make_screenshots(1)[0]
    print(f"\n3. loop stop: one item written over and over, token limit {limit}")
    print(f"{'loop stop':<9} | {'tokens':>6} | {'finish':<10} | {'s':>6} | {'items kept':>10} | {'duplicates dropped':>18}")
    for stop in (False, True):
        vt = Vistool(backend, structured=False)
        start = time.perf_counter()
        result = vt.detect(image, ["cat"], max_new_tokens=limit, budget=70, stop_on_repeat=stop)
        seconds = time.perf_counter() - start
        dropped = result.parsed.diagnostics.reasons().count("duplicate")
        print(f"{'on' if stop else 'off':<9} | {result.provenance['generated_tokens']:>6} | "
              f"{result.provenance['finish_reason']:<10} | {seconds:>6.2f} | {len(result.parsed):>10} | {dropped:>18}")


def synthetic_vocabulary(size: int = 262_144, seed: int = 0) -> list[str]:
    """Return `size` distinct token strings shaped like a large BPE vocabulary's."""
    rng = np.random.default_rng(seed)
    pieces = [chr(code) for code in range(32, 127)] + [str(n) for n in range(1000)]
    pieces += ['"', '": ', '", "', "}, {", '{"', "[", "]", "], ", ", ", '"}', '"}]', "```json\n", "\n```"]
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    seen = set(pieces)
    while len(pieces) < size - 1:
        word = "".join(rng.choice(letters, int(rng.integers(2, 9))))
        for candidate in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            if candidate not in seen and len(pieces) < size - 1:
                seen.add(candidate)
                pieces.append(candidate)
    return pieces + ["</s>"]


def mask_table(repeats: int) -> None:
    """Print the grammar's per-step cost at a 262,144-token vocabulary, batch 1 and 8."""
    import xgrammar as xgr

    from vistool.profiles import get_profile
    from vistool.structured import answer_schema
    from vistool.structured.grammar import AnswerConstraint

    vocab = synthetic_vocabulary()
    size = len(vocab)
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=size, stop_token_ids=[size - 1])
    start = time.perf_counter()
    compiler = xgr.GrammarCompiler(info)
    schema = answer_schema(TASKS["detect"].answer, get_profile("gemma4"), ["person", "car", "dog"]).schema
    grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    compile_s = time.perf_counter() - start
    answer = json.dumps([{"box_2d": [100 + i, 200, 300, 400 + i], "label": "person"} for i in range(8)], separators=(", ", ": "))
    index = {piece: token for token, piece in enumerate(vocab)}
    tokens, pos = [], 0
    while pos < len(answer):  # greedy longest match: the text as a BPE would cut it
        for length in range(min(12, len(answer) - pos), 0, -1):
            if answer[pos : pos + length] in index:
                tokens.append(index[answer[pos : pos + length]])
                pos += length
                break
    tokens.append(size - 1)
    print(f"\n4. grammar cost per decode step at a {size:,}-token vocabulary (no model; compile {compile_s:.2f} s;"
          f" {len(tokens)} steps of an 8-box answer)")
    print(f"{'batch':>5} | {'best us/step':>12} | {'median us/step':>14} | {'best us/step/row':>16}")
    for batch in (1, 8):
        per_step = []
        for _ in range(repeats):
            constraint = AnswerConstraint([grammar] * batch, [False] * batch, [None] * batch, None, None, size)
            scores = torch.zeros(batch, size)
            ids = torch.zeros(batch, 1, dtype=torch.long)
            begin = time.perf_counter()
            for token in tokens:
                constraint(ids, scores)
                ids = torch.full((batch, 1), token, dtype=torch.long)
            per_step.append((time.perf_counter() - begin) / len(tokens))
        best, median = min(per_step), statistics.median(per_step)
        print(f"{batch:>5} | {1e6 * best:>12.0f} | {1e6 * median:>14.0f} | {1e6 * best / batch:>16.0f}")


def main() -> None:
    """Run the chosen tables and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: build the tiny model in a temp folder)")
    parser.add_argument("--budget", type=int, default=70, help="image-token budget for every task (0: each task's default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--speed-tokens", type=int, default=64)
    parser.add_argument("--loop-tokens", type=int, default=1024)
    parser.add_argument("--parts", default="parse,speed,loop,masks")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = model_or_tiny(args.model)
    backend = TransformersBackend(model_dir, device="cpu", dtype="float32", batch_size=8)
    budget = args.budget or None
    parts = set(args.parts.split(","))
    print(f"model={model_dir} device={backend.device} threads={args.threads}")
    if "parse" in parts:
        parse_table(backend, budget)
    if "speed" in parts:
        speed_table(backend, args.repeats, args.speed_tokens, budget)
    if "loop" in parts:
        loop_table(model_dir, args.loop_tokens)
    if "masks" in parts:
        mask_table(args.repeats)


if __name__ == "__main__":
    main()
