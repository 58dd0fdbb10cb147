"""What every task shares, in one place to import from.

A task module declares one or more `TaskSpec`s: its prompt templates, default budget and
token limit, the answer kind it parses (boxes, points, OCR regions, or plain text), the
shape of one answer item (for structured generation), and optionally a `finish` step for
what is specific to it. Everything else (prompt choice per model family, the answer's
JSON schema, the thought budget, parsing, duplicates, confidence from log-probs,
provenance) happens once, in the modules this one gathers:
  - vistool.tasks.spec: `TaskSpec` (and `Options`), the prompt for a family;
  - vistool.tasks.result: `TaskResult`, its views, drawing and JSON form;
  - vistool.tasks.request: `RunSettings` and `build_request` (task call -> request);
  - vistool.tasks.interpretation: `interpret` / `interpret_many` (response -> result),
    `provenance`, `item_fields`, `empty_answer_reason`, `cut_off_in_thought`;
  - vistool.tasks.limits: the text limits and option helpers (`required_text`, ...).
"""

from __future__ import annotations

from vistool.tasks.interpretation import (
    cut_off_in_thought,
    empty_answer_reason,
    interpret,
    interpret_many,
    item_fields,
    provenance,
)
from vistool.tasks.limits import (
    MAX_CLASS_CHARS,
    MAX_CLASS_LIST_CHARS,
    MAX_CLASSES,
    MAX_TEXT_CHARS,
    check_text_length,
    required_text,
    split_list,
)
from vistool.tasks.request import DEFAULT_THOUGHT_TOKENS, RunSettings, build_request
from vistool.tasks.result import TaskResult
from vistool.tasks.spec import Options, TaskSpec

__all__ = [
    "DEFAULT_THOUGHT_TOKENS",
    "MAX_CLASSES",
    "MAX_CLASS_CHARS",
    "MAX_CLASS_LIST_CHARS",
    "MAX_TEXT_CHARS",
    "Options",
    "RunSettings",
    "TaskResult",
    "TaskSpec",
    "build_request",
    "check_text_length",
    "cut_off_in_thought",
    "empty_answer_reason",
    "interpret",
    "interpret_many",
    "item_fields",
    "provenance",
    "required_text",
    "split_list",
]
