"""Limits on the text a user adds to a prompt, and the helpers that clean and check it.

A task's options carry user text (a question, an instruction, a class list); past these
limits a prompt is no longer a question but a memory bill, so the helpers refuse it with
a message naming the option, before any image or model is touched (API, CLI and demo
all build requests through them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vistool.errors import VistoolError

Options = Mapping[str, Any]

# Limits on what a user's text may add to a prompt (checked before any image or model is
# touched). Past them a prompt is no longer a question but a memory bill: 10,000 class
# names made a 40k-token prompt; a 100 KB question tried to allocate 40 GB of attention.
MAX_TEXT_CHARS = 10_000  # a question, an instruction, an expression, a description, an event, a system prompt
MAX_CLASSES = 1_000  # class names in one detect prompt (more: split them over several calls)
MAX_CLASS_CHARS = 200  # one class name
MAX_CLASS_LIST_CHARS = 20_000  # all class names of one prompt together

def check_text_length(text: str, what: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Return `text` when it is at most `limit` characters; raise VistoolError naming `what` otherwise."""
    if len(text) > limit:
        raise VistoolError(f"the {what} is {len(text)} characters long; at most {limit} are accepted")
    return text


def required_text(options: Options, key: str, what: str) -> str:
    """Return the option `key` stripped; raise VistoolError("empty <what>: ...") when it is
    empty, and when it is longer than MAX_TEXT_CHARS."""
    value = str(options.get(key) or "").strip()
    if not value:
        raise VistoolError(f"empty {what}")
    return check_text_length(value, what.split(":")[0])


def split_list(value: str | Sequence[str] | None, what: str) -> list[str]:
    """Turn "a, b" or ["a", "b"] into a clean list of names; raise VistoolError when empty,
    or past MAX_CLASSES names, MAX_CLASS_CHARS per name or MAX_CLASS_LIST_CHARS in all."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise VistoolError(f"empty {what}: give at least one name")
    if len(names) > MAX_CLASSES:
        raise VistoolError(f"the {what} has {len(names)} names; at most {MAX_CLASSES} fit in one prompt "
                           "(split them over several calls, e.g. eval coco --chunk-size)")
    longest = max(names, key=len)
    if len(longest) > MAX_CLASS_CHARS:
        raise VistoolError(f"a name in the {what} is {len(longest)} characters long ({longest[:40]!r}...); "
                           f"at most {MAX_CLASS_CHARS} are accepted")
    total = sum(map(len, names))
    if total > MAX_CLASS_LIST_CHARS:
        raise VistoolError(f"the {what} is {total} characters long; at most {MAX_CLASS_LIST_CHARS} fit in one prompt")
    return names


__all__ = [
    "MAX_CLASSES",
    "MAX_CLASS_CHARS",
    "MAX_CLASS_LIST_CHARS",
    "MAX_TEXT_CHARS",
    "check_text_length",
    "required_text",
    "split_list",
]
