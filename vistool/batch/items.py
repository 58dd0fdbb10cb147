"""A batch run's work items and what became of them.

`WorkItem` (an image, a task, its options), `PreparedItem` (an item made ready for the
model by `BatchRunner.plan` / `load`), `Outcome` (what happened to one item: its result,
or where and why it failed), `RunReport` (every outcome of a run, with counts),
`record_problem`, which says when a cached record cannot be read back, and
`answer_problem`, which says when a model answer is unusable. Engines
(`vistool.batch.runner`, `vistool.engines`) build and return these.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vistool.io.images import LoadedImage
from vistool.runtime.logprob_columns import TokenLogprobs
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks import TaskResult, TaskSpec

Status = Literal["done", "cached", "failed"]
# Where an item failed: reading the image, its options, the model call, the answer, or
# (with cache_only) a missing cached answer.
Stage = Literal["read", "options", "model", "answer", "cache"]

_SNIPPET = 60


@dataclass
class WorkItem:
    """One unit of work: an image file, a task name and that item's task options.

    `settings` optionally overrides the run's generation settings for this item (budget,
    max_new_tokens, decoding, thinking, logprobs, system, zoom). `id` is the caller's
    name for the item (e.g. a COCO image id); it defaults to the path.
    """

    image: str | Path
    task: str = "detect"
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def name(self) -> str:
        """The item's id, or its path."""
        return self.id if self.id is not None else str(self.image)


@dataclass
class Outcome:
    """What happened to one work item.

    status: "done" (answered now), "cached" (answer from the cache) or "failed".
    result: the task result (also set for a failed item whose answer was unusable, so
    its raw answer can be inspected). reason/stage: why and where it failed.
    key/image_sha256: the cache key and the file's content hash, when known.
    answered: where its answer came from, "model" or "cache" (also for an unusable
    answer, which fails at stage "answer"); None when no answer was had.
    """

    item: WorkItem
    status: Status
    result: TaskResult | None = None
    reason: str | None = None
    stage: Stage | None = None
    key: str | None = None
    image_sha256: str | None = None
    answered: Literal["model", "cache"] | None = None

    @property
    def ok(self) -> bool:
        """True when the item has a usable result."""
        return self.status != "failed"


@dataclass
class RunReport:
    """The outcome of every item (in input order), the backend `generate` calls made
    (`model_calls`), the wall time, the answers asked of the model in those calls
    (`generated`), and how many cached records could not be read back (asked again, or
    with cache_only failed: `unreadable_records`)."""

    outcomes: list[Outcome]
    model_calls: int
    seconds: float
    generated: int = 0
    unreadable_records: int = 0

    def count(self, status: Status) -> int:
        """Return how many items ended with `status`."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failures(self) -> list[Outcome]:
        """The failed items, in input order."""
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def answered(self, source: Literal["model", "cache"]) -> int:
        """Return how many items got their answer from `source` (usable or not)."""
        return sum(1 for outcome in self.outcomes if outcome.answered == source)

    def to_dict(self) -> dict[str, Any]:
        """Return the counts and timing as a JSON-able dict.

        images: work items; annotated: items with a usable result, of which `done` were
        answered now and `cached` came from the cache; failed: the others, by stage;
        answers_from_cache / answers_from_model: answers read from the cache / generated
        now, usable or not (an unusable cached answer counts here and in failed);
        model_calls: backend `generate` calls; generated: answers asked of the model;
        unreadable_cached_answers: cached records that could not be read back.
        """
        done = self.count("done")
        return {
            "images": len(self.outcomes),
            "annotated": done + self.count("cached"),
            "done": done,
            "cached": self.count("cached"),
            "failed": self.count("failed"),
            "failed_by_stage": dict(sorted(Counter(o.stage for o in self.failures if o.stage).items())),
            "answers_from_cache": self.answered("cache"),
            "answers_from_model": self.answered("model"),
            "model_calls": self.model_calls,
            "generated": self.generated,
            "unreadable_cached_answers": self.unreadable_records,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(len(self.outcomes) / self.seconds, 3) if self.seconds > 0 else None,
        }


@dataclass
class PreparedItem:
    """An item made ready for the model: its task, request and cache key, and (when the
    model must answer it) its decoded image; or where and why it failed before the model.

    `BatchRunner.plan` fills in the task and request, `BatchRunner.load` the key fields,
    key and image. Other engines (vistool.engines) build items with these two steps.
    """

    index: int
    item: WorkItem
    spec: TaskSpec | None = None
    request: GenerationRequest | None = None
    fields: dict[str, Any] | None = None
    key: str | None = None
    image: LoadedImage | None = None
    failure: tuple[Stage, str] | None = None
    unreadable: str | None = None  # why its cached record could not be read back


def record_problem(record: Mapping[str, Any] | None) -> str | None:
    """Say why a cached record cannot be turned back into an answer, or None when it can.

    Takes what `AnswerCache.get` returned. The record must hold a response that
    `GenerationResponse.from_dict` rebuilds (packed log-probs included), with text fields
    that are strings, token log-probs whose columns hold strings and numbers, and the
    image size as two positive whole numbers. (Whether the answer itself is usable is
    `answer_problem`'s question, asked later.)
    """
    if record is None:
        return "the line is no longer readable"
    try:
        response = GenerationResponse.from_dict(record["response"])
        width, height = record["image_size"]
        if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height:
            return f"image_size is not two whole numbers: {record['image_size']!r}"
        if width < 1 or height < 1:
            return f"image_size is not positive: {record['image_size']!r}"
    except Exception as exc:  # any shape of damage: a missing field, a wrong type, a string for a dict
        return f"{type(exc).__name__}: {exc}"
    for name in ("text", "raw_text"):
        if not isinstance(getattr(response, name), str):
            return f"response.{name} is not a string"
    if response.thought is not None and not isinstance(response.thought, str):
        return "response.thought is not a string"
    columns = None if response.logprobs is None else TokenLogprobs.from_items(response.logprobs)
    if columns is not None and not (
        all(isinstance(token, str) for token in columns.tokens)
        and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in columns.values)
        and all(isinstance(offset, int) and not isinstance(offset, bool) for offset in columns.offsets)
    ):
        return "response.logprobs hold tokens that are not strings or values that are not numbers"
    return None


def answer_problem(result: TaskResult) -> str | None:
    """Say why a model answer is unusable, or None when it is usable.

    Takes an interpreted result. An answer is unusable when it is empty or cut off inside
    the thought (the result carries `interpret`'s error), when a structured task's answer
    holds no JSON at all, or when every item in it was dropped (the reasons are counted).
    An empty list ("[]": nothing found) is a usable answer. Returns a one-line reason with
    the start of the answer.
    """
    text = result.text or ""
    start = json.dumps(text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else ""), ensure_ascii=False)
    if result.error:  # e.g. an empty answer, or one cut off inside the thought
        return result.error
    if not text.strip():
        return "empty answer: the model returned no text"
    if result.parsed is None:
        return None
    diagnostics = result.parsed.diagnostics
    if diagnostics.kept > 0:
        return None
    if diagnostics.found > 0:
        reasons = Counter(diagnostics.reasons())
        listed = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        return f"unparseable answer: no usable item ({listed}): {start}"
    if not re.search(r"[\[{]", text):
        return f"unparseable answer: no JSON in the answer: {start}"
    return None


__all__ = ["Outcome", "PreparedItem", "RunReport", "Stage", "Status", "WorkItem", "answer_problem", "record_problem"]
