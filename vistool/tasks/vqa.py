"""vqa: a free question about an image; the answer is text."""

from __future__ import annotations

from vistool.errors import VistoolError
from vistool.tasks.base import Options, TaskSpec


def _question(options: Options) -> str:
    """The question, stripped; raise VistoolError when empty."""
    question = str(options.get("question") or "").strip()
    if not question:
        raise VistoolError("empty question: ask something about the image")
    return question


VQA = TaskSpec(
    name="vqa",
    prompts={"default": "{question}"},
    kind=None,
    default_budget=280,
    max_new_tokens=512,
    fields=lambda options: {"question": _question(options)},
)
