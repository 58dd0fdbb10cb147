"""`vistool eval score BENCHMARK ...`: score an existing predictions file with that benchmark's scorer.

Kept apart from `vistool.evaluation.run` (which loads models and the batch engine, and
with them torch-free but heavy imports such as supervision and scipy: ~2.4 s here), so
scoring a file imports only the benchmark's own module (issue 19).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("coco", "screenspot", "ocr", "refexp")


def score_existing(benchmark: str, argv: list[str]) -> int:
    """Run `vistool.evaluation.<benchmark> score ARGV...`; return its exit code (2 for an unknown benchmark)."""
    if benchmark not in BENCHMARKS:
        print(f"error: unknown benchmark {benchmark!r}; use coco, screenspot, ocr or refexp", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"vistool.evaluation.{benchmark}").main(["score", *argv]) or 0)
