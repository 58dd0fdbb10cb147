"""Parse time on hostile answers: the slowest single answer, and ms per 10 KB, per source tree.

    python -m eval.bench_parse_hostile [--baseline /work/main] [--rounds 3] [--seed 0]

The corpus (seeded) is what the reliability probe of issue 20 found slow, plus the
shapes that stress the same code paths:
  - an unclosed single-quoted label full of `\\'`, at 8 and 32 KB;
  - 1 MB of random bytes (decoded as Latin-1, every code point 0-255);
  - 256 KB of random JSON punctuation, quotes, digits and letters;
  - single-quoted objects nested 30 deep (bare, and with 20 items a level), a wrapper holding 400 broken items (trailing commas);
  - 64 KB of items full of stray quotes, and of empty objects nested 8 deep (the two
    shapes json_repair is quadratic on);
  - one item written 6,000 times (a loop: 18 million same-label pairs for the duplicate
    search), and 3,000 distinct boxes of one label;
  - a 200-answer batch mixing the above at ~8 KB each, through `parse_many`;
  - for comparison, a clean 50-item answer and a messy one (prose, single quotes).

Every answer is parsed by `vistool.postprocess.parse` (the batch by `parse_many`) in a
worker process whose `PYTHONPATH` is one source tree: this tree and, with `--baseline`,
another checkout (e.g. the code before the fix). The trees are run alternately, round
after round (interleaved, so a machine that slows down slows both), on one core where
the OS allows it; the table shows best and median CPU time per answer and the cost per
10 KB of the best (the target: at most ~50 ms per 10 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
LABEL = "view recipe element"


def corpus(seed: int) -> dict[str, list[str]]:
    """Return {case name: answers}; every case is one answer except the batch."""
    rng = random.Random(seed)

    def single_quoted(size: int) -> str:
        return '[{"box_2d": [10, 20, 30, 40], \'label\': \'' + "it\\'s " * (size // 6)

    def random_bytes(size: int) -> str:
        return bytes(rng.randrange(256) for _ in range(size)).decode("latin-1")

    def punctuation(size: int) -> str:
        alphabet = '[]{}"\',:\\ \n0123456789abcdefghij'
        return "".join(rng.choice(alphabet) for _ in range(size))

    def nested(depth: int, filler: int = 0) -> str:
        item = "{'box_2d': [1, 2, 3, 4], 'label': 'x',}"
        return ("{'a': [" + item * filler) * depth + item + "]}" * depth

    def broken_wrapper(items: int) -> str:
        body = ", ".join(f"{{'box_2d': [{i % 900}, 5, {i % 900 + 50}, 60], 'label': 'it\\'s {i}',}}" for i in range(items))
        return '{"boxes": [' + body + ",]}"

    def stray_quotes(size: int) -> str:
        item = "{'box_2d': [1, 2, 3, 4], 'label': '" + '"a' * 40 + "'}, "
        return "[" + item * (size // len(item)) + "]"

    def nested_objects(size: int) -> str:
        item = "{" * 8 + "}" * 8 + ", "
        return "[" + item * (size // len(item)) + "]"

    def loop(items: int) -> str:
        return json.dumps([{"box_2d": [100, 100, 200, 200], "label": "cat"}] * items)

    def one_label(items: int) -> str:
        return json.dumps([{"box_2d": [i // 60 * 16, i % 60 * 16, i // 60 * 16 + 8, i % 60 * 16 + 8], "label": "cat"}
                           for i in range(items)])

    def clean(items: int) -> str:
        return "```json\n" + json.dumps([{"box_2d": [i, i, i + 50, i + 60], "label": LABEL} for i in range(items)]) + "\n```"

    makers = [
        lambda: single_quoted(8_000),
        lambda: random_bytes(8_000),
        lambda: punctuation(8_000),
        lambda: nested(30, 3),
        lambda: broken_wrapper(60),
        lambda: stray_quotes(8_000),
    ]
    return {
        "single-quoted label, 8 KB": [single_quoted(8 * 1024)],
        "single-quoted label, 32 KB": [single_quoted(32 * 1024)],
        "random bytes, 1 MB": [random_bytes(1024 * 1024)],
        "random punctuation, 256 KB": [punctuation(256 * 1024)],
        "nested 30 deep": [nested(30)],
        "nested 30 deep with 20 items a level": [nested(30, 20)],
        "wrapper of 400 broken items": [broken_wrapper(400)],
        "items full of stray quotes, 64 KB": [stray_quotes(64 * 1024)],
        "empty objects 8 deep, 64 KB": [nested_objects(64 * 1024)],
        "one item 6,000 times (a loop)": [loop(6_000)],
        "3,000 boxes of one label": [one_label(3_000)],
        "200-answer batch (parse_many)": [makers[i % len(makers)]() for i in range(200)],
        "clean, 50 items": [clean(50)],
        "messy, 50 items": ["Here you go:\n" + clean(50).replace('"', "'").replace("}", "},", 3)],
    }


def worker(seed: int) -> None:
    """Time every case once with the `vistool` on sys.path; print {case: [seconds per answer...], ...} as JSON."""
    from vistool.postprocess import parse, parse_many

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    times: dict[str, list[float]] = {}
    for name, answers in corpus(seed).items():
        if len(answers) > 1:
            start = time.process_time()
            parse_many(answers, [(640, 480)] * len(answers))
            times[name + " total"] = [time.process_time() - start]
            per_answer = []
            for text in answers:
                start = time.process_time()
                parse(text, (640, 480))
                per_answer.append(time.process_time() - start)
            times[name] = per_answer
        else:
            start = time.process_time()
            parse(answers[0], (640, 480))
            times[name] = [time.process_time() - start]
    print(json.dumps(times))


def run_tree(tree: Path, seed: int) -> dict[str, list[float]]:
    """Run the worker with `tree` on PYTHONPATH (its `vistool` is the one timed); return its timings."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--seed", str(seed)],
        env=env, cwd=tree, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the interleaved rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another source tree to compare with (e.g. an export of main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.seed)
        return 0
    trees = {"this tree": HERE}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    sizes = {name: [len(text) for text in answers] for name, answers in corpus(args.seed).items()}
    rounds: dict[str, list[dict[str, list[float]]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            rounds[name].append(run_tree(tree, args.seed))
    print(f"parse CPU time, {args.rounds} interleaved rounds, one core. Per case: the slowest answer, best / median of the "
          "rounds (ms), and the worst ms per 10 KB of any answer in the best round")
    header = f"  {'case':38s} {'size':>8s}"
    for name in trees:
        header += f" | {name + ': best / median':>26s} {'ms/10KB':>8s}"
    print(header)
    for case in rounds[next(iter(trees))][0]:
        total = case.endswith(" total")
        lengths = [sum(sizes[case.removesuffix(" total")])] if total else sizes[case]
        line = f"  {case:38s} {max(lengths) / 1024:7.1f}K"
        for name in trees:
            slowest = [max(timing[case]) for timing in rounds[name]]
            best_round = rounds[name][slowest.index(min(slowest))][case]
            per_10kb = max(seconds * 1e3 / max(length / 10240, 1e-9) for seconds, length in zip(best_round, lengths))
            line += f" | {min(slowest) * 1e3:12.1f} / {statistics.median(slowest) * 1e3:11.1f} {per_10kb:8.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
