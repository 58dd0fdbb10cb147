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

Equal work (`--answers fixed`, the default): every run generates exactly `--new-tokens` tokens per image. The baseline
passes `min_new_tokens = max_new_tokens`; vistool gets the same through the model's
generation config (`min_new_tokens`), which transformers merges into every `generate`
call, so end-of-sequence can never end a row early on either side. The vistool rows
check that every response has exactly that many tokens.

Shapes (no downloads): `tiny` is vistool's offline test model (saved and loaded back with
`from_pretrained`). `e2b` / `e4b` use the published Gemma 4 text and vision shapes (values in
eval/speed_models.py, with sources) and the real vocabulary size, 262,144: the embedding, the per-layer
embeddings and the LM head are sized to it, so their cost is real. The tokenizer stays
the small one of the tiny model (its special-token ids are wired into the config; the
real Gemma 4 image processor and chat format are used), so prompts tokenise the same on
both sides; a generated id the small tokenizer does not know decodes to "" (the
tokenizer skips unknown ids), which only makes the random answers shorter strings. The
audio tower is left out: image requests never run it.

    python -m eval.bench_speed                       # CPU, tiny shape, a few minutes
    python -m eval.bench_speed --budgets 70,140,280 --batch-sizes 1,8,32,auto --variant compiled:compile=1
    python -m eval.bench_speed --answers replay --logprobs --json-stop --budgets 70 --batch-sizes 8,32,128 --min-images 128
    python -m eval.bench_speed --gpu-table           # one GPU: E2B, bf16, replayed answers, < 9 min
    python -m eval.bench_speed --dry-run             # the GPU table on CPU with the tiny shape (a few minutes here)

Realistic work (issue 19): `--answers replay` makes every image write one realistic
detection answer (eval/realistic_answers.py: 5-40 boxes, `--answer-boxes`), forced token
by token (eval/speed_replay.py), so rows end at their own lengths as real answers do and
a static batch idles on finished rows; the `idle` column is that share of decode slots
(rows x longest answer, per micro-batch). `--logprobs` and `--json-stop` make the
vistool paths ask for token log-probs and stop when the answer's JSON list closes, as
vistool's tasks do; the baseline stays the plain loop (no log-probs, stops at EOS).
`img/s` is the best of `--repeats`, `med img/s` their median.

`--gpu-table` is `--device cuda --shape e2b --dtype bfloat16 --budgets 280,70,1120
--batch-sizes auto,64,32,8,1 --min-images 2 --repeats 2 --time-limit 480 --answers
replay --answer-boxes 5,40 --logprobs --json-stop` plus, on the budget-280 cell at
vistool's default batch size, a compiled vistool path (`compile=1`: static cache + CUDA
graphs), the same with `prefetch=3`, and vistool without row refilling (`refill=0`; a
cell holds one batch of images, so there refilling only drops finished rows). Cells are run in that order (the goal cell
first); those left when the time limit is reached are listed as skipped. `--dry-run`
runs the same table on CPU with the tiny shape, answers of 1-2 boxes, 2 images per cell
and batch columns auto and 1, so that every path and switch is exercised before a GPU
run starts.

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
- row refilling (issue 19; `--answers replay --logprobs --json-stop`, budget 70, best of 2
  interleaved runs; `--variant static:refill=0` is the path without it): see the table
  in the closing note of issue 19; the `idle` column of a refilling path is the share of
  slots x steps that held no row (the drain at the end of a call, and slots waiting
  for a group to join), of a static path the share spent on rows that had finished.
- GPU-only, not measurable here: CUDA graphs (compile on a GPU), reused static caches
  (stable addresses: graphs recorded once per shape), pixels cast to the model dtype and
  pinned in the worker, events instead of synchronisation for the prefill/decode split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import LogitsProcessorList

from eval.speed_models import SHAPES, build, make_images
from eval.speed_replay import ForcedAnswers, idle_fraction, marked, scripts_for
from vistool.runtime import refill, speed
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

GPU_TABLE = {
    "device": "cuda",
    "shape": "e2b",
    "dtype": "bfloat16",
    "new_tokens": 64,
    "budgets": "280,70,1120",
    "batch_sizes": "auto,64,32,8,1",
    "min_images": 2,
    "repeats": 2,
    "time_limit": 480.0,
    "answers": "replay",
    "answer_boxes": "5,40",
    "logprobs": True,
    "json_stop": True,
}
# `--dry-run`: the same table (every budget, batch column, path and switch) on CPU with the
# tiny shape and short replayed answers, to know a GPU run works before it starts.
DRY_RUN = {"device": "cpu", "shape": "tiny", "dtype": "float32", "batch_sizes": "auto,1", "answer_boxes": "1,2",
           "repeats": 1, "time_limit": 0.0, "max_images": 2}
# Extra vistool paths of the preset, on the budget-280 cell at vistool's default batch
# size only (compiling costs minutes): static cache + CUDA graphs, and the same with
# three micro-batches preprocessed ahead (does CPU preprocessing keep up?).
GPU_TABLE_EXTRA = {
    "vistool+compile": {"compile": True},
    "vistool+compile+prefetch3": {"compile": True, "prefetch": 3},
    "vistool static": {"refill": False},  # one generate call per micro-batch (row refilling off)
}


# ----------------------------------------------------------------- measurement
@dataclass
class Work:
    """What each row generates: exactly `new_tokens` (fixed), or its replayed answer script (`forcing`)."""

    new_tokens: int
    forcing: ForcedAnswers | None = None
    logprobs: bool = False
    json_stop: bool = False

    @property
    def max_new_tokens(self) -> int:
        """The token limit of every call: `new_tokens`, or room for the longest script."""
        return self.new_tokens if self.forcing is None else max(map(len, self.forcing.scripts)) + 1


@dataclass
class Run:
    """One timed run of one path over one cell's images."""

    wall: float
    preprocess: float = 0.0
    prefill: float = 0.0
    decode: float = 0.0
    peak_bytes: int = 0
    note: str = ""
    tokens: int = 0  # generated tokens, all rows
    idle: float = 0.0  # static: share of decode slots spent on finished rows; refilling: share of slots x steps empty


@dataclass
class Cell:
    """Results of one (budget, batch size) cell: the fastest run of each path."""

    budget: int
    batch: int
    images: int
    runs: dict[str, Run] = field(default_factory=dict)
    skipped: str = ""
    walls: dict[str, list[float]] = field(default_factory=dict)  # every repeat's wall seconds, per path


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
    work: Work,
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
    lengths: list[int] = []
    eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list) else [model.generation_config.eos_token_id])
    if work.forcing is None:
        limits: dict[str, Any] = {"max_new_tokens": work.new_tokens, "min_new_tokens": work.new_tokens}
    else:
        limits = {"max_new_tokens": work.max_new_tokens, "logits_processor": LogitsProcessorList([work.forcing])}
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
            out = model.generate(**inputs, **limits, do_sample=False, stopping_criteria=[timer])
        timer.stop()
        rows = out[:, inputs["input_ids"].shape[1] :].tolist()
        prefill, decode = timer.seconds()
        run.prefill += prefill
        run.decode += decode
        for row in rows:
            lengths.append(next((i + 1 for i, token in enumerate(row) if token in eos), len(row)))
        if work.forcing is None and len(rows[0]) != work.new_tokens:
            run.note = "token count differs"
    _sync(device)
    run.wall = time.perf_counter() - start
    run.peak_bytes = _peak_bytes(device)
    run.tokens = sum(lengths)
    run.idle = idle_fraction([range(i, min(i + batch, len(images))) for i in range(0, len(images), batch)], lengths)
    return run


def run_vistool(
    backend: TransformersBackend, images: list[Image.Image], prompts: list[str], batch: int | None, budget: int, work: Work
) -> Run:
    """The same work through `backend.generate` (one request per image, log-probs and JSON stop as `work` says)."""
    backend.batch_size = batch
    requests = [
        GenerationRequest(
            prompt, images=[image], budget=budget, max_new_tokens=work.max_new_tokens, return_logprobs=work.logprobs,
            stop_when_json_closes="array" if work.json_stop else False,
        )
        for prompt, image in zip(prompts, images)
    ]
    _reset_peak(backend.device)
    _sync(backend.device)
    steps = _RefillSteps() if backend._refills() else None
    start = time.perf_counter()
    if steps is None:
        responses = backend.generate(requests)
    else:
        with steps:
            responses = backend.generate(requests)
    _sync(backend.device)
    run = Run(wall=time.perf_counter() - start, peak_bytes=_peak_bytes(backend.device))
    for response in responses:
        if not response.ok:
            run.note = f"error: {response.error}"[:80]
        elif work.forcing is None and response.generated_tokens != work.new_tokens:
            run.note = f"{response.generated_tokens} tokens, not {work.new_tokens}"
        run.preprocess += response.timings.get("preprocess_s", 0.0)
        run.prefill += response.timings.get("prefill_s", 0.0)
        run.decode += response.timings.get("decode_s", 0.0)
    lengths = [response.generated_tokens for response in responses]
    run.tokens = sum(lengths)
    if steps is None:
        run.idle = idle_fraction(backend._plan(backend._validate(requests)), lengths)
    else:  # slots x steps the refiller ran (at most one slot per request), against the rows it decoded
        slots = min(backend.batch_size_for(budget), len(requests))
        run.idle = 1.0 - steps.rows / (slots * steps.steps) if steps.steps else 0.0
    return run


class _RefillSteps:
    """Counts, while active, the decode steps of every `RowRefiller` and the rows they decoded."""

    def __init__(self) -> None:
        self.steps = self.rows = 0

    def __enter__(self) -> "_RefillSteps":
        self._original = refill.RowRefiller.step
        counter, original = self, self._original

        def step(refiller: refill.RowRefiller, progress: Any = None) -> Any:
            counter.steps += 1
            counter.rows += refiller.rows
            return original(refiller, progress)

        refill.RowRefiller.step = step  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        refill.RowRefiller.step = self._original  # type: ignore[method-assign]


# ----------------------------------------------------------------- table
def format_table(cells: list[Cell], device: str) -> str:
    """Return the results as a fixed-width text table (one row per cell and path)."""
    memory = "peak GPU GiB" if device.startswith("cuda") else "peak RSS GiB"
    header = (
        f"{'budget':>6} | {'batch':>5} | {'path':<24} | {'images':>6} | {'img/s':>8} | {'med img/s':>9} | {'gen tok/s':>9} | "
        f"{'preproc s':>9} | {'prefill s':>9} | {'decode s':>8} | {'wall s':>7} | {'idle':>5} | {memory:>12} | {'vs base':>7} | note"
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
                f"{cell.images / statistics.median(cell.walls.get(name) or [run.wall]):9.2f} | "
                f"{run.tokens / run.wall:9.1f} | {run.preprocess:9.2f} | {run.prefill:9.2f} | {run.decode:8.2f} | "
                f"{run.wall:7.2f} | {run.idle:5.2f} | {run.peak_bytes / 2**30:12.2f} | {speedup:>7} | {run.note}"
            )
    return "\n".join(lines)


def _force_in_generate(model: Any, forcing: ForcedAnswers) -> None:
    """Make every `model.generate` call (vistool's included) write the replayed scripts: a fresh copy
    of `forcing` goes first (a refilling run holds several groups' calls open at once)."""
    original = model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        processors = kwargs.get("logits_processor") or LogitsProcessorList()
        if not any(isinstance(item, ForcedAnswers) for item in processors):
            processors = LogitsProcessorList([ForcedAnswers(forcing.scripts, forcing.tokenizer, forcing.eos_id), *processors])
        kwargs["logits_processor"] = processors
        return original(*args, **kwargs)

    model.generate = generate


def _describe_work(work: Work, args: argparse.Namespace) -> str:
    """One phrase for the header: what each row generates and with which switches."""
    if work.forcing is None:
        text = f"new_tokens={work.new_tokens}"
    else:
        lengths = [len(script) for script in work.forcing.scripts]
        text = (f"answers=replay ({args.answer_boxes} boxes, {min(lengths)}-{max(lengths)} tokens, "
                f"mean {sum(lengths) / len(lengths):.0f})")
    return f"{text} logprobs={work.logprobs} json_stop={work.json_stop}"


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
    parser.add_argument("--max-images", type=int, default=0, help="at most this many images per cell (0: no cap)")
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
    parser.add_argument("--dry-run", action="store_true", help="the GPU table on CPU, tiny shape, short answers (~1-2 min)")
    parser.add_argument("--answers", choices=["fixed", "replay"], default="fixed",
                        help="fixed: exactly --new-tokens per image; replay: each image writes a realistic detection answer")
    parser.add_argument("--answer-boxes", default="5,40", help="replay: min,max boxes per answer")
    parser.add_argument("--logprobs", action="store_true", help="vistool paths ask for token log-probs (as tasks do)")
    parser.add_argument("--json-stop", action="store_true", help="vistool paths stop when the answer's JSON list closes (as tasks do)")
    args = parser.parse_args(argv)
    if args.gpu_table or args.dry_run:
        for key, value in GPU_TABLE.items():
            setattr(args, key, value)
        args.gpu_table = True
    if args.dry_run:
        for key, value in DRY_RUN.items():
            setattr(args, key, value)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads if args.threads is not None else (0 if device.startswith("cuda") else 1)
    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.startswith("cuda") else "float32"))

    started = time.perf_counter()
    replay = args.answers == "replay"
    model, processor = build(args.shape, device, dtype, 0 if replay else args.new_tokens)
    work = Work(args.new_tokens, logprobs=args.logprobs, json_stop=args.json_stop)
    if replay:
        tokenizer = processor.tokenizer
        eos_id = tokenizer.convert_tokens_to_ids("<eos>")
        low, high = (int(v) for v in args.answer_boxes.split(","))
        scripts = scripts_for(tokenizer, 64, eos_id, (low, high))
        work.forcing = ForcedAnswers(scripts, tokenizer, eos_id)
        _force_in_generate(model, work.forcing)
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
        f"{_describe_work(work, args)} repeats={args.repeats} threads={torch.get_num_threads()} "
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
            images_in_cell = max(batch, args.min_images)
            cell = Cell(budget, batch, min(images_in_cell, args.max_images) if args.max_images else images_in_cell)
            cells.append(cell)
            if args.time_limit and time.perf_counter() - started > args.time_limit:
                cell.skipped = f"time limit ({args.time_limit:.0f}s) reached"
                continue
            images = make_images(cell.images)
            prompts = prompts_for(cell.images, args.mixed_prompts)
            if replay:
                prompts = [marked(prompt, index) for index, prompt in enumerate(prompts)]
            paths: dict[str, TransformersBackend | None] = {"baseline": None, **backends}
            if (budget, size) == (280, "auto"):
                paths.update(extra)
            if not warmed:  # first calls at a budget pay lazy initialisation; keep it out of the table
                run_baseline(model, processor, images[:2], prompts[:2], 2, budget, work, device)
                run_vistool(backends["vistool"], images[:2], prompts[:2], 2, budget, work)
                warmed = True
            for name, backend in list(paths.items()):
                if backend is not None and backend.compile:  # compile (and record graphs) for this shape first
                    warm = run_vistool(backend, images[:batch], prompts[:batch], batch, budget, work)
                    if warm.note or not backend.compile:  # it failed, or fell back to eager: do not time it
                        cell.runs[name] = Run(wall=float("inf"), note=f"compile failed or fell back: {warm.note}"[:80])
                        del paths[name]
            for repeat in range(args.repeats):
                order = list(paths.items())
                shift = repeat % len(order)  # rotate who goes first, so no path always runs on a cold cache
                for name, backend in order[shift:] + order[:shift]:
                    if backend is None:
                        run = run_baseline(model, processor, images, prompts, batch, budget, work, device)
                    else:
                        run = run_vistool(backend, images, prompts, batch, budget, work)
                    cell.walls.setdefault(name, []).append(run.wall)
                    if name not in cell.runs or run.wall < cell.runs[name].wall:
                        cell.runs[name] = run
            best = {name: f"{cell.images / run.wall:.2f}" for name, run in cell.runs.items()}
            print(f"  budget {budget} batch {batch}: img/s {best}  [{time.perf_counter() - started:.0f}s]", flush=True)
    print()
    print(format_table(cells, device))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
