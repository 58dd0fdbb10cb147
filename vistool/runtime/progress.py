"""A hook that reports generation progress from inside `model.generate`, for progress displays.

`StepProgress` is a stopping criterion that never stops anything (like `speed.PhaseTimer`):
after each decode step it calls `callback(tokens_so_far, token_limit)`. It reads only the
shape of the ids, so nothing waits on the device inside the decode loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[int, int], None]


class StepProgress:
    """Call `callback(generated, limit)` after every decode step of one `generate` call.

    Takes the callback, the padded prompt length of the micro-batch and its
    max_new_tokens. Returns False at every step (never ends generation).
    """

    def __init__(self, callback: ProgressCallback, prompt_length: int, limit: int) -> None:
        self.callback = callback
        self.prompt_length = prompt_length
        self.limit = limit

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        self.callback(int(input_ids.shape[1]) - self.prompt_length, self.limit)
        return False
