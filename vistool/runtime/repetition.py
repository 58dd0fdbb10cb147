"""Loops: an answer that repeats a whole item over and over (greedy decoding's usual failure).

A loop shows as a periodic tail: the last `copies` x p tokens (or characters) repeat a
period of p, and that period holds an item's end (`}` or `]`), so it is a whole item
(or a few), not a run of digits or letters inside one. Two tools, one rule:

  - `RepeatStop`, a transformers stopping criterion (local backend): it keeps, per row
    and per period p <= `max_period`, how many latest tokens equal the token p places
    before; a row stops when some period has repeated `copies` times. All on the
    device, one small tensor step per token, nothing read back to the host.
  - `repeated_tail` (server answers, already generated): finds the same pattern at the
    end of a text (a Z-function over the reversed text, linear time) and says where to
    cut so that one copy of the repeated item is kept.

Repeated items are exact duplicates, so cutting them loses nothing; the parser drops the
copies that remain (reported as duplicates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ITEM_END_CHARS = "}]"
DEFAULT_COPIES = 3  # a period must appear this many times in a row (an item and two copies)
DEFAULT_MAX_PERIOD = 256  # tokens: longer than any box or OCR item
DEFAULT_MIN_TOKENS = 12  # a repeated stretch this short is no loop (e.g. "]]]")
DEFAULT_MIN_CHARS = 24


def item_end_tokens(token_texts: Sequence[str], special_ids: Iterable[int] = ()) -> list[bool]:
    """Return, per token id, whether its text closes a JSON object or list (holds `}` or `]`).

    Takes the decoded text of every token id and the ids of special tokens (never item ends).
    """
    special = set(special_ids)
    return [bool(text) and token_id not in special and any(char in text for char in ITEM_END_CHARS)
            for token_id, text in enumerate(token_texts)]


class RepeatStop:
    """A stopping criterion: a row is done once its answer repeats a whole item `copies` times.

    Takes a bool tensor over the vocabulary (`item_end_tokens`, on the model's device),
    a bool tensor saying which rows may stop this way, the padded prompt length, and the
    rule's knobs. Rows that think first (`thinking`, a bool tensor, with the thought
    channel's opener and closer ids) are watched only once their answer has begun: a
    thought that repeats itself is the thought budget's business, and stopping there
    would leave no answer. `stop_steps` holds, per row, the number of generated tokens
    when it stopped (-1: it did not).
    """

    def __init__(
        self,
        item_end,
        enabled,
        prompt_length: int,
        *,
        thinking=None,
        channel_open: int | None = None,
        channel_close: int | None = None,
        copies: int = DEFAULT_COPIES,
        max_period: int = DEFAULT_MAX_PERIOD,
        min_tokens: int = DEFAULT_MIN_TOKENS,
    ) -> None:
        import torch

        device = enabled.device
        rows = enabled.shape[0]
        self.item_end = item_end
        self.enabled = enabled
        self.prompt_length = prompt_length
        self.periods = torch.arange(1, max_period + 1, device=device)
        self.needed = torch.clamp((copies - 1) * self.periods, min=min_tokens)
        self.runs = torch.zeros(rows, max_period, dtype=torch.long, device=device)
        self.last_end = torch.full((rows,), -(10**9), dtype=torch.long, device=device)
        self.stop_steps = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.watching = torch.ones(rows, dtype=torch.bool, device=device)
        self.channel_open, self.channel_close = channel_open, channel_close
        if thinking is not None and channel_open is not None and channel_close is not None:
            self.watching = ~thinking.to(device)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        step = input_ids.shape[1] - self.prompt_length  # tokens generated so far, this one included
        max_period = self.periods.shape[0]
        window = min(max_period, step - 1)  # compare with generated tokens only
        last = input_ids[:, -1]
        same = torch.zeros_like(self.runs, dtype=torch.bool)
        if window > 0:
            earlier = input_ids[:, -1 - window : -1].flip(1)  # column p-1 holds the token p places back
            same[:, :window] = earlier == last[:, None]
        if self.channel_close is not None:
            closes = last == self.channel_close
            if step == 1:  # a thinking row that does not open the channel answers at once
                closes = closes | (last != self.channel_open)
            same = same & ~closes[:, None]
            self.watching = self.watching | closes
        self.runs = torch.where(same, self.runs + 1, 0)
        self.last_end = torch.where(self.item_end[last], step, self.last_end)
        holds_end = (step - self.last_end)[:, None] < self.periods  # the latest period holds an item end
        looping = ((self.runs >= self.needed) & holds_end).any(dim=1) & self.enabled & self.watching
        self.stop_steps = torch.where(looping & (self.stop_steps < 0), step, self.stop_steps)
        return looping


def _z_function(text: str) -> list[int]:
    """Return z, where z[i] is the length of the longest common prefix of text and text[i:]."""
    n = len(text)
    z = [0] * n
    if n:
        z[0] = n
    left = right = 0
    for i in range(1, n):
        if i < right:
            z[i] = min(right - i, z[i - left])
        while i + z[i] < n and text[z[i]] == text[i + z[i]]:
            z[i] += 1
        if i + z[i] > right:
            left, right = i, i + z[i]
    return z


def _closings(text: str) -> list[tuple[int, int, int]]:
    """Return (position, position of its opening bracket, depth after it) for every closing bracket.

    Brackets inside JSON strings are skipped; a closer without an opener is ignored.
    """
    found: list[tuple[int, int, int]] = []
    stack: list[int] = []
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(position)
        elif char in "]}" and stack:
            found.append((position, stack.pop(), len(stack)))
    return found


def repeated_tail(
    text: str,
    *,
    copies: int = DEFAULT_COPIES,
    max_period: int = 4096,
    min_chars: int = DEFAULT_MIN_CHARS,
) -> int | None:
    """Find a loop at the end of `text`; return where to cut it, or None when there is none.

    A loop is a tail made of at least `copies` repetitions of a period of at most
    `max_period` characters that holds an item end (`}` or `]`), at least `min_chars`
    long. The cut keeps everything before the loop and one whole copy of the repeated
    item: it falls after the first item (a bracket pair at the loop's outermost level)
    that lies wholly inside the repeating tail.
    """
    reverse = text[::-1]
    z = _z_function(reverse)
    n = len(text)
    for period in range(1, min(max_period, n // copies) + 1):
        run = z[period]  # the tail repeats with this period over run + period characters
        if run < max((copies - 1) * period, min_chars):
            continue
        if not any(char in text[n - period :] for char in ITEM_END_CHARS):
            continue
        start = n - run - period  # where the periodic tail begins
        inside = [(end, opened, depth) for end, opened, depth in _closings(text) if end >= start]
        if not inside:
            continue
        outermost = min(depth for _, _, depth in inside)
        for end, opened, depth in inside:
            if depth == outermost and opened >= start:
                return end + 1
        return None
    return None
