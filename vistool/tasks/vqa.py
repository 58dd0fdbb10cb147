"""vqa: a free question about an image; the answer is text."""

from __future__ import annotations

from vistool.tasks.base import TaskSpec, required_text


VQA = TaskSpec(
    name="vqa",
    prompts={"default": "{question}"},
    kind=None,
    default_budget=280,
    max_new_tokens=512,
    fields=lambda options: {"question": required_text(options, "question", "question: ask something about the image")},
)
