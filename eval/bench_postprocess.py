"""Post-processing cost per realistic answer (issue 19, item 1): vistool vs the bare path.

    python -m eval.bench_postprocess [--answers 256] [--batch 32] [--rounds 5] [--threads 1] [--before DIR]

What is timed, per answer, on the generated token ids of `eval.realistic_answers`
(detection answers of 5-40 boxes, ~900 tiny-tokenizer tokens, + EOS), in micro-batches
of `--batch` answers as they leave `generate`:

- bare: `tokenizer.decode` + strip the fence + `orjson.loads` + map `box_2d` to pixels
  + `sv.Detections` (what a user's own loop does, without confidences);
- vistool, log-probs on: the backend's response building (cut at the stop token, decode
  answer/thought with per-token offsets, `TokenLogprob`s) + the task layer (parse, map,
  per-box confidence from log-probs, provenance) for the micro-batch;
- vistool, log-probs off: the same without per-token log-probs.

`--before DIR` runs the same measurement on another source tree (e.g. the commit before
a change, unpacked with `git archive`), in a subprocess per round, interleaved with the
current tree; the table gives both side by side (best and median over rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(model_dir: str, answers: int, batch: int, threads: int, seed: int) -> dict[str, float]:
    """Time the three paths once (order rotated by `seed`) in this process; return ms per answer each."""
    import numpy as np
    import orjson
    import supervision as sv
    import torch

    detection_answers = _load_answers_module().detection_answers  # from this file's tree; vistool from PYTHONPATH's
    from vistool import tasks
    from vistool.profiles import get_profile
    from vistool.runtime.transformers_backend import TransformersBackend
    from vistool.runtime.types import GenerationRequest

    torch.set_num_threads(threads)
    backend = TransformersBackend(model_dir, device="cpu", dtype="float32")
    tokenizer = backend.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<eos>")
    rows = []
    rng = random.Random(0)
    for text, size in detection_answers(answers, seed=0):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        rows.append((ids, [-rng.random() for _ in ids], size))
    spec, profile = tasks.TASKS["detect"], get_profile("gemma4")
    options = {"classes": None}
    many = getattr(tasks, "interpret_many", None)

    def vistool(logprobs: bool) -> None:
        request = GenerationRequest("Detect all objects.", budget=280, max_new_tokens=2048, return_logprobs=logprobs)
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            responses = [
                backend._response(
                    request, ids, lps if logprobs else None, prompt_tokens=300, image_tokens=256,
                    image_sizes=[(1056, 576)], timings={},
                )
                for ids, lps, _ in chunk
            ]
            sizes = [size for _, _, size in chunk]
            if many is not None:
                many(spec, profile, [options] * len(chunk), [request] * len(chunk), responses, sizes, ["x"] * len(chunk))
            else:
                for response, size in zip(responses, sizes):
                    tasks.interpret(spec, profile, options, request, response, size, "x")

    def bare() -> None:
        for ids, _, (width, height) in rows:
            text = tokenizer.decode(ids[:-1], skip_special_tokens=True).strip()
            body = text.removeprefix("```json").removesuffix("```")
            items = orjson.loads(body)
            boxes = np.array([item["box_2d"] for item in items], dtype=np.float64)
            xyxy = boxes[:, [1, 0, 3, 2]] / 1000.0 * np.array([width, height, width, height])
            names = [item["label"] for item in items]
            lookup = {name: index for index, name in enumerate(dict.fromkeys(names))}
            sv.Detections(xyxy=xyxy, class_id=np.array([lookup[n] for n in names]), data={"class_name": np.array(names)})

    paths = {"bare": bare, "vistool logprobs on": lambda: vistool(True), "vistool logprobs off": lambda: vistool(False)}
    vistool(True)  # warm: memoised token pieces, imports, regex caches
    bare()
    names = list(paths)
    names = names[seed % 3 :] + names[: seed % 3]
    out = {}
    for name in names:
        start = time.process_time()
        paths[name]()
        out[name] = (time.process_time() - start) * 1000.0 / len(rows)
    out["tokens_per_answer"] = sum(len(ids) for ids, _, _ in rows) / len(rows)
    return out


def _load_answers_module():
    """Import eval/realistic_answers.py by path (the measured tree may have no such module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("realistic_answers", Path(__file__).with_name("realistic_answers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _round(tree: Path, args: argparse.Namespace, model_dir: str, seed: int) -> dict[str, float]:
    """Run one measurement round in a subprocess that imports vistool from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads), "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model-dir", model_dir,
               "--answers", str(args.answers), "--batch", str(args.batch), "--threads", str(args.threads), "--seed", str(seed)]
    if hasattr(os, "sched_getaffinity"):
        command = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *command]
    result = subprocess.run(command, env=env, cwd=str(tree), capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run rounds (interleaved over trees) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--before", help="another source tree to measure in the same rounds (e.g. the previous commit)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import vistool

        print(f"vistool from {Path(vistool.__file__).parent}", file=sys.stderr)
        print(json.dumps(measure(args.model_dir, args.answers, args.batch, args.threads, args.seed)))
        return
    sys.path.insert(0, str(REPO))
    from vistool.runtime.tiny import make_tiny_model

    model_dir = str(make_tiny_model(tempfile.mkdtemp(prefix="vistool-bench-post-")))
    trees = {"after": REPO}
    if args.before:
        trees = {"before": Path(args.before).resolve(), **trees}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for index in range(args.rounds):
        order = list(trees.items())
        order = order[index % len(order) :] + order[: index % len(order)]
        for name, tree in order:
            rounds[name].append(_round(tree, args, model_dir, index))
        print(f"  round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    tokens = rounds["after"][0]["tokens_per_answer"]
    print(f"{args.answers} answers, {tokens:.0f} tokens each on average, micro-batches of {args.batch}, "
          f"{args.rounds} rounds, {args.threads} thread(s); ms of CPU per answer, best / median")
    header = f"{'path':<22} | " + " | ".join(f"{name:>17}" for name in trees)
    print(header)
    print("-" * len(header))
    for path in ("bare", "vistool logprobs on", "vistool logprobs off"):
        cells = []
        for name in trees:
            values = [r[path] for r in rounds[name]]
            cells.append(f"{min(values):7.2f} / {statistics.median(values):7.2f}")
        print(f"{path:<22} | " + " | ".join(cells))
    for name in trees:
        bare = statistics.median(r["bare"] for r in rounds[name])
        on = statistics.median(r["vistool logprobs on"] for r in rounds[name])
        off = statistics.median(r["vistool logprobs off"] for r in rounds[name])
        print(f"{name}: vistool / bare (medians): log-probs on {on / bare:.1f}x, off {off / bare:.1f}x")


if __name__ == "__main__":
    main()
