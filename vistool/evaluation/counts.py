"""What an evaluation run did, counted once and consistently: images and prompts apart.

A benchmark asks one or more prompts per image (COCO with --chunk-size asks one per class
chunk), so "images" and "prompts" are different numbers; every count here says which it
is. `nothing_evaluated` tells a run that got no answer at all (every image unreadable, the
server down, nothing cached for these settings) from one whose answers were merely wrong.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vistool.batch.runner import RunReport
from vistool.errors import VistoolError

# The 12 numbers COCOeval.summarize() prints, in STAT_NAMES order: (kind, IoU, area, max detections).
COCO_STAT_ROWS: tuple[tuple[str, str, str, int], ...] = (
    ("AP", "0.50:0.95", "all", 100), ("AP", "0.50", "all", 100), ("AP", "0.75", "all", 100),
    ("AP", "0.50:0.95", "small", 100), ("AP", "0.50:0.95", "medium", 100), ("AP", "0.50:0.95", "large", 100),
    ("AR", "0.50:0.95", "all", 1), ("AR", "0.50:0.95", "all", 10), ("AR", "0.50:0.95", "all", 100),
    ("AR", "0.50:0.95", "small", 100), ("AR", "0.50:0.95", "medium", 100), ("AR", "0.50:0.95", "large", 100),
)


class NothingEvaluated(VistoolError):
    """A run in which no prompt got an answer: there is nothing to score (exit 1, no report written)."""


def run_counts(report: RunReport) -> dict[str, Any]:
    """Return the run's counts: images and prompts, how prompts ended, where answers came from.

    images: distinct image files; prompts: model prompts (work items); images_evaluated:
    images with at least one answered prompt; prompts_answered: prompts with an answer
    (usable or not: an unusable answer scores as a format error); prompts_without_answer:
    prompts with no answer at all, by stage (read, model, cache, ...), which the scorer
    counts as wrong; answers_from_cache / answers_from_model; model_calls: backend
    `generate` calls; plus the runner's done / cached / failed counts per prompt.
    """
    outcomes = report.outcomes
    images = {str(outcome.item.image) for outcome in outcomes}
    answered = [outcome for outcome in outcomes if outcome.answered is not None]
    without = [outcome for outcome in outcomes if outcome.answered is None]
    per_prompt = report.to_dict()
    per_prompt.pop("images")
    return {
        "images": len(images),
        "prompts": len(outcomes),
        "images_evaluated": len({str(outcome.item.image) for outcome in answered}),
        "prompts_answered": len(answered),
        "prompts_without_answer": len(without),
        "without_answer_by_stage": dict(sorted(Counter(o.stage for o in without if o.stage).items())),
        **per_prompt,
    }


def nothing_evaluated(report: RunReport) -> str | None:
    """Say why a run has nothing to score (no prompt got an answer), or None when something was answered."""
    if not report.outcomes or any(outcome.answered is not None for outcome in report.outcomes):
        return None
    stages = Counter(outcome.stage for outcome in report.outcomes)
    listed = ", ".join(f"{stage}: {count}" for stage, count in stages.most_common())
    first = report.outcomes[0]
    return (f"nothing was evaluated: none of the {len(report.outcomes)} prompts got an answer ({listed}); "
            f"e.g. {first.item.image}: {first.reason}")


def coco_summary_table(stats: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Return COCOeval's 12-line summary as table rows: name -> kind, IoU, area, max dets, value
    (-1 where pycocotools had nothing to average, e.g. no small objects)."""
    names = list(stats)
    return {
        name: {"kind": kind, "IoU": iou, "area": area, "max_dets": max_dets, "value": stats[name]}
        for name, (kind, iou, area, max_dets) in zip(names, COCO_STAT_ROWS)
    }
