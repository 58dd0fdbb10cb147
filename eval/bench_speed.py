"""Speed benchmark (issue 9): plain batched `generate` vs vistool's runtime, side by side.

Builds a random-weight Gemma 4 of a named published shape, makes a fixed set of images of
mixed aspect ratios and, for each image-token budget and batch size, times

- baseline: the loop a user would write (chat template, processor, `model.generate`), one
  image per call at batch 1, N images per call otherwise;
- vistool: `TransformersBackend.generate` on the same images with its defaults (length
  bucketing; prefetch on a GPU), plus any `--variant` of it (e.g. `compiled:compile=1`,
  `prefetch:prefetch=1`, or `plain:prefetch=0,bucket=0`, the runtime as it was before);

and prints one table: images/s, generated tokens/s, preprocessing / prefill / decode
seconds (summed over micro-batches; vistool's preprocessing overlaps with generation, so
it can exceed wall time minus the rest), wall seconds, peak memory (CUDA
`max_memory_allocated` on a GPU, the process's peak RSS on CPU) and speed-up over the
baseline. Runs are interleaved (the order rotates) and each path keeps its fastest of
`--repeats` runs.

Equal work: every run generates exactly `--new-tokens` tokens per image. The baseline
passes `min_new_tokens = max_new_tokens`; vistool gets the same through the model's
generation config (`min_new_tokens`), which transformers merges into every `generate`
call, so end-of-sequence can never end a row early on either side. The vistool rows
check that every response has exactly that many tokens.

Shapes (no downloads): `tiny` is vistool's offline test model (saved and loaded back with
`from_pretrained`). `e2b` / `e4b` use the published Gemma 4 text and vision shapes (values
below, with sources) and the real vocabulary size, 262,144: the embedding, the per-layer
embeddings and the LM head are sized to it, so their cost is real. The tokenizer stays
the small one of the tiny model (its special-token ids are wired into the config; the
real Gemma 4 image processor and chat format are used), so prompts tokenise the same on
both sides; a generated id the small tokenizer does not know decodes to "" (the
tokenizer skips unknown ids), which only makes the random answers shorter strings. The
audio tower is left out: image requests never run it.

    python -m eval.bench_speed                       # CPU, tiny shape, a few minutes
    python -m eval.bench_speed --budgets 70,140,280 --batch-sizes 1,8,32,auto --variant compiled:compile=1
    python -m eval.bench_speed --gpu-table           # one GPU: E2B, bf16, 64 tokens, < 8 min

`--gpu-table` is `--device cuda --shape e2b --dtype bfloat16 --new-tokens 64 --budgets
280,70,1120 --batch-sizes auto,64,32,8,1 --min-images 2 --repeats 1 --time-limit 450`
plus, on the budget-280 cell at vistool's default batch size, a compiled vistool path
(`compile=1`: static cache + CUDA graphs) and the same with `prefetch=3`. Cells are run
in that order (the goal cell first); those left when the time limit is reached are
listed as skipped.

Before/after log of the runtime changes (CPU, tiny shape, 1 torch thread, 32 new tokens,
a 2-core VM shared with other jobs: expect +-10% noise; min of 3-7 interleaved runs):

- default batch per budget (`speed.CPU_BATCH_BY_BUDGET`): budget 70, batch 8 -> 32:
  16.5-17.5 -> 27-28 img/s; 140: 8/16/32 -> 13-15/16.5/17.5; 280: 5.0-5.6 at 8, 16 or 32
  (kept at 8); 1120: 0.55-0.59 at batch 1 and 4, 0.47 at 8 (RSS 1.5/3.0/5.0 GiB; kept at 4).
- length bucketing (`--mixed-prompts`, 32 images, batch 8): budget 70: 13.9 -> 16.1 img/s
  (prefill 1.12 -> 0.87 s); 280: 5.0 -> 5.2. With one prompt there is nothing to gain:
  Gemma 4's resize gives almost every image the full budget (256-266 tokens at 280 here).
- prefetch (one worker): between -6% and +14% across cells, i.e. noise: on 2 busy cores
  the worker competes with the model for cores and memory bandwidth. Off by default on
  CPU; on by default on a GPU, where the generating thread waits on the device.
- compile=True (static cache + torch.compile; inductor, no CUDA graphs on CPU): decode
  time, budget 70, 8 images one at a time: 1.33 -> 0.64 s (1.75x img/s over the
  baseline); batch 8: 0.23 -> 0.14 s; budget 280, batch 8: 0.28 -> 0.18 s. Sliding layers
  as plain static layers: 1 compiled graph (36 s) instead of 3 (66 s) on the first call.
- stop_when_json_closes (answers forced to a fixed script; 16 images, batch 8, budget 70):
  JSON + closing fence + EOS (68 -> 65 tokens): 1.82 -> 1.68 s; JSON + a sentence of prose
  (118 -> 65 tokens): 2.72 -> 1.62 s.
- GPU-only, not measurable here: CUDA graphs (compile on a GPU), reused static caches
  (stable addresses: graphs recorded once per shape), pixels cast to the model dtype and
  pinned in the worker, events instead of synchronisation for the prefill/decode split.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vistool.runtime import speed
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest

PROMPT = 'Detect every object. Answer with a JSON list of {"box_2d": [y1, x1, y2, x2], "label": name}.'
# `--mixed-prompts`: every other image asks for a list of classes, so prompt lengths differ
# within a batch (as in annotation jobs with per-image class lists); the default keeps one prompt.
COCO = (
    "person bicycle car motorcycle airplane bus train truck boat traffic-light fire-hydrant stop-sign parking-meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports-ball kite baseball-bat baseball-glove skateboard surfboard tennis-racket bottle wine-glass "
    "cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot-dog pizza donut cake chair couch "
    "potted-plant bed dining-table toilet tv laptop mouse remote keyboard cell-phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy-bear hair-drier toothbrush"
).split()
LONG_PROMPT = f"Detect every instance of these classes: {', '.join(COCO)}. " + PROMPT
# (W, H): VGA both ways, HD, square, a banner, full HD, a tall photo, an extreme strip.
SIZES = [(640, 480), (480, 640), (1280, 720), (512, 512), (1024, 256), (1920, 1080), (800, 1200), (3000, 40)]

# Published Gemma 4 shapes. Sources: google/gemma.cpp PR #919 "Add Gemma 4 E2B and E4B model
# configs" (E2B: 35 layers, width 1536, 4 sliding + 1 global, FFN 6144 (12288 in the
# KV-shared layers: `use_double_wide_mlp`); E4B: 42 layers, width 2560, 5 + 1, FFN 10240;
# head dim 256 sliding / 512 global; window 512; final soft-cap 30; vocabulary 262144),
# the config.json of google/gemma-4-E2B-it as copied in public repositories (1 KV head,
# 20 KV-shared layers, per-layer input width 256) and NVIDIA Megatron-Bridge's Gemma 4
# E4B recipe (8 heads, 2 KV heads, KV shared across the last 18 layers, PLE 256). The
# vision tower (768 wide, 16 layers, 12 heads, 16-px patches pooled 3x3) is the same for
# both and equals transformers' `Gemma4VisionConfig` defaults.
VOCAB = 262_144
SHAPES: dict[str, dict[str, Any]] = {
    "e2b": {
        "text": {
            "hidden_size": 1536,
            "intermediate_size": 6144,
            "num_hidden_layers": 35,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
            "global_head_dim": 512,
            "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
            "sliding_window": 512,
            "num_kv_shared_layers": 20,
            "use_double_wide_mlp": True,
            "hidden_size_per_layer_input": 256,
            "final_logit_softcapping": 30.0,
        },
        "vision": {"use_clipped_linears": True},
    },
    "e4b": {
        "text": {
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 42,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "global_head_dim": 512,
            "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 7,
            "sliding_window": 512,
            "num_kv_shared_layers": 18,
            "use_double_wide_mlp": False,
            "hidden_size_per_layer_input": 256,
            "final_logit_softcapping": 30.0,
        },
        "vision": {"use_clipped_linears": True},
    },
}

GPU_TABLE = {
    "device": "cuda",
    "shape": "e2b",
    "dtype": "bfloat16",
    "new_tokens": 64,
    "budgets": "280,70,1120",
    "batch_sizes": "auto,64,32,8,1",
    "min_images": 2,
    "repeats": 1,
    "time_limit": 450.0,
}
# Extra vistool paths of the preset, on the budget-280 cell at vistool's default batch
# size only (compiling costs minutes): static cache + CUDA graphs, and the same with
# three micro-batches preprocessed ahead (does CPU preprocessing keep up?).
GPU_TABLE_EXTRA = {"vistool+compile": {"compile": True}, "vistool+compile+prefetch3": {"compile": True, "prefetch": 3}}


# ----------------------------------------------------------------- model and inputs
def build(shape: str, device: str, dtype: torch.dtype, new_tokens: int) -> tuple[Any, Any]:
    """Return (model, processor) of a random-weight Gemma 4 of `shape` on `device` in `dtype`.

    The model's generation config forces `new_tokens` generated tokens per row.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

    from vistool.runtime.tiny import make_tiny_model

    tiny_dir = make_tiny_model(Path(tempfile.mkdtemp(prefix="vistool-bench-tiny-")))
    processor = AutoProcessor.from_pretrained(tiny_dir)
    if shape == "tiny":
        model = AutoModelForImageTextToText.from_pretrained(tiny_dir, dtype=dtype).to(device)
    else:
        config = _config(shape, processor.tokenizer)
        torch.manual_seed(0)
        from transformers import Gemma4ForConditionalGeneration

        with torch.device(device):
            model = Gemma4ForConditionalGeneration(config)
        model.to(dtype)
        text = config.text_config
        model.generation_config = GenerationConfig(
            bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id
        )
    model.eval()
    model.generation_config.do_sample = False
    model.generation_config.min_new_tokens = new_tokens  # equal work on both sides (module docstring)
    return model, processor


def _config(shape: str, tokenizer: Any) -> Any:
    """Return the `Gemma4Config` of a published shape, special-token ids wired to `tokenizer`."""
    from transformers import Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

    from vistool.runtime import tiny

    ids = tokenizer.convert_tokens_to_ids
    text = Gemma4TextConfig(
        vocab_size=VOCAB,
        vocab_size_per_layer_input=VOCAB,
        pad_token_id=ids(tiny.PAD),
        eos_token_id=[ids(tiny.EOS), ids(tiny.TURN_CLOSE)],
        bos_token_id=ids(tiny.BOS),
        **SHAPES[shape]["text"],
    )
    return Gemma4Config(
        text_config=text,
        vision_config=Gemma4VisionConfig(**SHAPES[shape]["vision"]),
        audio_config=None,
        image_token_id=ids(tiny.IMAGE_SOFT),
        video_token_id=ids(tiny.VIDEO_SOFT),
        boi_token_id=ids(tiny.IMAGE_OPEN),
        eoi_token_id=ids(tiny.IMAGE_CLOSE),
        audio_token_id=ids(tiny.AUDIO_SOFT),
        boa_token_id=ids(tiny.AUDIO_OPEN),
        eoa_token_index=ids(tiny.AUDIO_CLOSE),
    )


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Return `count` random RGB images cycling through `SIZES` (mixed aspect ratios)."""
    rng = np.random.default_rng(seed)
    sizes = [SIZES[i % len(SIZES)] for i in range(count)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


# ----------------------------------------------------------------- measurement
@dataclass
class Run:
    """One timed run of one path over one cell's images."""

    wall: float
    preprocess: float = 0.0
    prefill: float = 0.0
    decode: float = 0.0
    peak_bytes: int = 0
    note: str = ""


@dataclass
class Cell:
    """Results of one (budget, batch size) cell: the fastest run of each path."""

    budget: int
    batch: int
    images: int
    runs: dict[str, Run] = field(default_factory=dict)
    skipped: str = ""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    """Start a new peak-memory window (CUDA allocator stats, or the process's peak RSS)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    elif Path("/proc/self/clear_refs").exists():
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
        except OSError:
            pass


def _peak_bytes(device: str) -> int:
    """Return the peak memory since `_reset_peak` (CUDA max allocated, else peak RSS)."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def prompts_for(count: int, mixed: bool) -> list[str]:
    """Return the prompt of each of `count` images (alternating short/long when `mixed`)."""
    return [LONG_PROMPT if mixed and i % 2 else PROMPT for i in range(count)]


def run_baseline(
    model: Any,
    processor: Any,
    images: list[Image.Image],
    prompts: list[str],
    batch: int,
    budget: int,
    new_tokens: int,
    device: str,
) -> Run:
    """The plain loop: chat template, processor and `model.generate` per batch of images, in input order."""
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for prompt in prompts
    ]
    dtype = next(model.parameters()).dtype
    _reset_peak(device)
    _sync(device)
    run = Run(wall=0.0)
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        chunk = images[first : first + batch]
        mark = time.perf_counter()
        inputs = processor(
            text=texts[first : first + batch],
            images=[[image] for image in chunk],
            return_tensors="pt",
            padding=True,
            images_kwargs={"max_soft_tokens": budget},
        )
        inputs = {k: v.to(device) for k, v in inputs.items() if k not in processor.unused_input_names}
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        run.preprocess += time.perf_counter() - mark
        timer = speed.PhaseTimer(device)
        timer.start()
        with torch.inference_mode():
            out = model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, stopping_criteria=[timer]
            )
        timer.stop()
        out.tolist()
        prefill, decode = timer.seconds()
        run.prefill += prefill
        run.decode += decode
        if out.shape[1] - inputs["input_ids"].shape[1] != new_tokens:
            run.note = "token count differs"
    _sync(device)
    run.wall = time.perf_counter() - start
    run.peak_bytes = _peak_bytes(device)
    return run


def run_vistool(
    backend: TransformersBackend, images: list[Image.Image], prompts: list[str], batch: int | None, budget: int, new_tokens: int
) -> Run:
    """The same work through `backend.generate` (one request per image)."""
    backend.batch_size = batch
    requests = [
        GenerationRequest(prompt, images=[image], budget=budget, max_new_tokens=new_tokens)
        for prompt, image in zip(prompts, images)
    ]
    _reset_peak(backend.device)
    _sync(backend.device)
    start = time.perf_counter()
    responses = backend.generate(requests)
    _sync(backend.device)
    run = Run(wall=time.perf_counter() - start, peak_bytes=_peak_bytes(backend.device))
    for response in responses:
        if not response.ok:
            run.note = f"error: {response.error}"[:80]
        elif response.generated_tokens != new_tokens:
            run.note = f"{response.generated_tokens} tokens, not {new_tokens}"
        run.preprocess += response.timings.get("preprocess_s", 0.0)
        run.prefill += response.timings.get("prefill_s", 0.0)
        run.decode += response.timings.get("decode_s", 0.0)
    return run


# ----------------------------------------------------------------- table
def format_table(cells: list[Cell], new_tokens: int, device: str) -> str:
    """Return the results as a fixed-width text table (one row per cell and path)."""
    memory = "peak GPU GiB" if device.startswith("cuda") else "peak RSS GiB"
    header = (
        f"{'budget':>6} | {'batch':>5} | {'path':<24} | {'images':>6} | {'img/s':>8} | {'gen tok/s':>9} | "
        f"{'preproc s':>9} | {'prefill s':>9} | {'decode s':>8} | {'wall s':>7} | {memory:>12} | {'vs base':>7} | note"
    )
    lines = [header, "-" * len(header)]
    for cell in sorted(cells, key=lambda c: (c.budget, c.batch)):
        if cell.skipped:
            lines.append(f"{cell.budget:>6} | {cell.batch:>5} | {'(skipped)':<24} | {cell.images:>6} | {cell.skipped}")
            continue
        base = cell.runs.get("baseline")
        for name, run in cell.runs.items():
            label = "baseline (one at a time)" if name == "baseline" and cell.batch == 1 else name
            speedup = f"{base.wall / run.wall:6.2f}x" if base and run.wall else "   -   "
            lines.append(
                f"{cell.budget:>6} | {cell.batch:>5} | {label:<24.24} | {cell.images:>6} | {cell.images / run.wall:8.2f} | "
                f"{cell.images * new_tokens / run.wall:9.1f} | {run.preprocess:9.2f} | {run.prefill:9.2f} | {run.decode:8.2f} | "
                f"{run.wall:7.2f} | {run.peak_bytes / 2**30:12.2f} | {speedup:>7} | {run.note}"
            )
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """Parse `NAME:key=value,key=value` (backend options, e.g. `compiled:compile=1`; digits become ints)."""
    name, _, options = text.partition(":")
    parsed: dict[str, Any] = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        value = value.strip()
        parsed[key.strip()] = int(value) if value.isdigit() else value
    return name.strip(), parsed


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the model, run every cell, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: bf16 on CUDA, else fp32)")
    parser.add_argument("--budgets", default="70,280", help="comma list of image-token budgets")
    parser.add_argument("--batch-sizes", default="1,8,32,auto", help="comma list; 'auto' = vistool's default for the budget")
    parser.add_argument("--min-images", type=int, default=8, help="images per cell: max(batch size, this)")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variant", action="append", default=[], help="extra vistool path NAME:opt=val,... e.g. compiled:compile=1"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 on CPU, where 2+ OpenMP threads on a small shared machine give erratic "
        "timings; torch's default on a GPU, where they speed up preprocessing)",
    )
    parser.add_argument("--mixed-prompts", action="store_true", help="alternate a short and a long (80-class) prompt")
    parser.add_argument("--time-limit", type=float, default=0.0, help="skip cells that would start after this many seconds")
    parser.add_argument("--gpu-table", action="store_true", help="the one-GPU preset (module docstring)")
    args = parser.parse_args(argv)
    if args.gpu_table:
        for key, value in GPU_TABLE.items():
            setattr(args, key, value)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads if args.threads is not None else (0 if device.startswith("cuda") else 1)
    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.startswith("cuda") else "float32"))

    started = time.perf_counter()
    model, processor = build(args.shape, device, dtype, args.new_tokens)
    parameters = sum(p.numel() for p in model.parameters())
    backends = {"vistool": TransformersBackend.from_model(model, processor, model_id=f"random-{args.shape}")}
    for text in args.variant:
        name, options = parse_variant(text)
        backends[name] = TransformersBackend.from_model(model, processor, model_id=f"random-{args.shape}", **options)
    extra = {}  # the preset's paths for the goal cell only
    if args.gpu_table:
        for name, options in GPU_TABLE_EXTRA.items():
            extra[name] = TransformersBackend.from_model(model, processor, model_id=f"random-{args.shape}", **options)
    print(
        f"shape={args.shape} ({parameters / 1e6:.1f}M parameters) device={device} dtype={str(dtype).replace('torch.', '')} "
        f"new_tokens={args.new_tokens} repeats={args.repeats} threads={torch.get_num_threads()} "
        f"mixed_prompts={args.mixed_prompts} "
        f"gpu={torch.cuda.get_device_name() if device.startswith('cuda') else '-'} built in {time.perf_counter() - started:.0f}s",
        flush=True,
    )

    budgets = [int(b) for b in args.budgets.split(",")]
    cells: list[Cell] = []
    for budget in budgets:
        warmed = False
        for size in args.batch_sizes.split(","):
            batch = speed.default_batch_size(budget, device) if size == "auto" else int(size)
            if any(c.budget == budget and c.batch == batch for c in cells):
                continue
            cell = Cell(budget, batch, max(batch, args.min_images))
            cells.append(cell)
            if args.time_limit and time.perf_counter() - started > args.time_limit:
                cell.skipped = f"time limit ({args.time_limit:.0f}s) reached"
                continue
            images = make_images(cell.images)
            prompts = prompts_for(cell.images, args.mixed_prompts)
            paths: dict[str, TransformersBackend | None] = {"baseline": None, **backends}
            if (budget, size) == (280, "auto"):
                paths.update(extra)
            if not warmed:  # first calls at a budget pay lazy initialisation; keep it out of the table
                run_baseline(model, processor, images[:2], prompts[:2], 2, budget, args.new_tokens, device)
                run_vistool(backends["vistool"], images[:2], prompts[:2], 2, budget, args.new_tokens)
                warmed = True
            for name, backend in list(paths.items()):
                if backend is not None and backend.compile:  # compile (and record graphs) for this shape first
                    warm = run_vistool(backend, images[:batch], prompts[:batch], batch, budget, args.new_tokens)
                    if warm.note or not backend.compile:  # it failed, or fell back to eager: do not time it
                        cell.runs[name] = Run(wall=float("inf"), note=f"compile failed or fell back: {warm.note}"[:80])
                        del paths[name]
            for repeat in range(args.repeats):
                order = list(paths.items())
                shift = repeat % len(order)  # rotate who goes first, so no path always runs on a cold cache
                for name, backend in order[shift:] + order[:shift]:
                    if backend is None:
                        run = run_baseline(model, processor, images, prompts, batch, budget, args.new_tokens, device)
                    else:
                        run = run_vistool(backend, images, prompts, batch, budget, args.new_tokens)
                    if name not in cell.runs or run.wall < cell.runs[name].wall:
                        cell.runs[name] = run
            best = {name: f"{cell.images / run.wall:.2f}" for name, run in cell.runs.items()}
            print(f"  budget {budget} batch {batch}: img/s {best}  [{time.perf_counter() - started:.0f}s]", flush=True)
    print()
    print(format_table(cells, args.new_tokens, device))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
