"""`vistool eval score BENCHMARK ...`: score an existing predictions file with that benchmark's scorer.

Kept apart from `vistool.evaluation.run` (which loads models and the batch engine, and
with them torch-free but heavy imports such as supervision and scipy: ~2.4 s here), so
scoring a file imports only the benchmark's own module (issue 19).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("coco", "screenspot", "ocr", "refexp")

SCORE_HELP = """usage: vistool eval score BENCHMARK ARGS...

Score an existing predictions file with a benchmark's own scorer (no model runs).

benchmarks:
  coco GT.json RESULTS.json           COCO results json against an instances json
  screenspot PREDICTIONS.jsonl        a self-contained ScreenSpot log, or --annotations A with {id, pred} lines
  ocr GT.jsonl PREDICTIONS.jsonl      predicted texts against references
  refexp GT.jsonl PREDICTIONS.jsonl   predicted boxes against targets

`vistool eval score BENCHMARK --help` lists each scorer's options.
"""


def main(argv: list[str]) -> int:
    """Run `vistool eval score ARGV...` (ARGV: the benchmark, then its scorer's arguments;
    none or --help prints SCORE_HELP). Returns the exit code (see `score_existing`)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(SCORE_HELP, end="")
        return 0
    return score_existing(argv[0], argv[1:])


def score_existing(benchmark: str, argv: list[str]) -> int:
    """Run `vistool.evaluation.<benchmark> score ARGV...`; return its exit code: 0 scored (or
    its help), 2 for an unknown benchmark, a usage error or an unreadable file (one line on stderr)."""
    if benchmark not in BENCHMARKS:
        print(f"error: unknown benchmark {benchmark!r} to score; use coco, screenspot, ocr or refexp "
              "(see 'vistool eval score --help')", file=sys.stderr)
        return 2
    scorer = importlib.import_module(f"vistool.evaluation.{benchmark}").main
    try:
        return int(scorer(["score", *argv]) or 0)
    except SystemExit as exc:  # argparse: usage error or help
        return int(exc.code or 0)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


__all__ = ["BENCHMARKS", "SCORE_HELP", "main", "score_existing"]
