"""Replayed answers for `eval.bench_speed --answers replay` (issue 19, items 2 and 6).

A random-weight model writes noise of random length; users' models write detection
answers of 5-40 boxes. To time what users run, each image gets a script: the token ids
of one realistic answer (`eval.realistic_answers`) followed by end-of-sequence, and a
logits processor forces every row to write its script. So each row stops where a real
answer would (the end-of-sequence token, or earlier with the JSON-close stop), the
log-probs, the answer decoding and the parsing see realistic text, and a static batch
keeps finished rows idle until its longest answer ends, as it does for users.

Rows find their script through a marker in the prompt (`Image 17.`), read once per
`generate` call, so the same forcing serves the plain loop and vistool's runtime
(which reorders requests into length buckets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from eval.realistic_answers import detection_answers

MARKER = re.compile(r"Image (\d+)\.")


def marked(prompt: str, index: int) -> str:
    """Return `prompt` with the marker of script `index` appended."""
    return f"{prompt} Image {index}."


def scripts_for(tokenizer: Any, count: int, eos_id: int, boxes: tuple[int, int] = (5, 40), seed: int = 0) -> list[list[int]]:
    """Return `count` scripts: the token ids of realistic detection answers with `boxes` items, each + EOS."""
    return [tokenizer(text, add_special_tokens=False)["input_ids"] + [eos_id] for text, _ in detection_answers(count, seed, boxes)]


class ForcedAnswers:
    """A logits processor that makes row r write script[marker(r)] token by token (then EOS).

    Takes the scripts, the tokenizer (to read each row's marker once, at the first step)
    and the end-of-sequence id. State is reset at every first step, so one instance can
    serve many `generate` calls (one at a time).
    """

    def __init__(self, scripts: Sequence[Sequence[int]], tokenizer: Any, eos_id: int) -> None:
        self.scripts = scripts
        self.tokenizer = tokenizer
        self.eos_id = eos_id
        self.prompt_length = -1
        self.table: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.table is None or input_ids.shape[1] <= self.prompt_length or input_ids.shape[0] != self.table.shape[0]:
            self._start(input_ids)
        assert self.table is not None
        step = min(input_ids.shape[1] - self.prompt_length, self.table.shape[1] - 1)
        forced = self.table[:, step : step + 1]
        scores = torch.full_like(scores, float("-inf"))
        scores.scatter_(1, forced, 0.0)
        return scores

    def _start(self, input_ids: torch.Tensor) -> None:
        rows = []
        for row in input_ids[:, -48:].tolist():
            found = MARKER.findall(self.tokenizer.decode(row, skip_special_tokens=True))
            if not found:
                raise ValueError("a prompt without a script marker reached the forced-answer processor")
            rows.append(list(self.scripts[int(found[-1]) % len(self.scripts)]))
        longest = max(len(row) for row in rows) + 1
        padded = [row + [self.eos_id] * (longest - len(row)) for row in rows]
        self.table = torch.tensor(padded, device=input_ids.device)
        self.prompt_length = input_ids.shape[1]


def idle_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Return the share of decode slots spent on rows that had already finished.

    Takes the micro-batches (lists of request indices) and each request's generated
    length. A static batch runs max(length) steps for all its rows: slots = rows x max,
    used = sum of lengths.
    """
    slots = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
    used = sum(lengths[i] for batch in batches for i in batch)
    return 1.0 - used / slots if slots else 0.0
