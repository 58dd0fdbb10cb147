"""Server token log-probabilities (`choices[0].logprobs.content`) as `TokenLogprob`s with
offsets into the answer text, so that per-item confidence works as it does locally."""

from __future__ import annotations

import codecs
from typing import Any

from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN
from vistool.runtime.types import TokenLogprob


def _token_spans(entries: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """Rebuild the generated text from log-prob entries and return (text, start of each token).

    Uses each entry's UTF-8 `bytes` when every entry has them (exact even when a
    character is split over tokens), else concatenates the `token` strings.
    """
    starts: list[int] = []
    if entries and all(isinstance(entry.get("bytes"), list) for entry in entries):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        length = 0
        for entry in entries:
            starts.append(length)
            piece = decoder.decode(bytes(entry["bytes"]))
            pieces.append(piece)
            length += len(piece)
        pieces.append(decoder.decode(b"", final=True))
        return "".join(pieces), starts
    length = 0
    for entry in entries:
        starts.append(length)
        length += len(str(entry.get("token", "")))
    return "".join(str(entry.get("token", "")) for entry in entries), starts


def map_logprobs(entries: list[dict[str, Any]], answer: str) -> list[TokenLogprob]:
    """Turn `choices[0].logprobs.content` entries into `TokenLogprob`s with offsets into `answer`.

    Takes the entries (each with `token`, `logprob`, optionally `bytes`) and the answer
    text (thought removed, stripped). The generated text is rebuilt from the tokens; the
    answer is located after the last thought-channel close marker (or, without markers,
    as the last occurrence, since the answer follows the thought). A token overlapping
    the answer gets the offset of its first character in it (clamped to 0 for a token
    that starts with whitespace before the answer); tokens of the thought, the markers
    and trailing special tokens get -1. When the answer cannot be located in the rebuilt
    text, tokens are matched one by one from left to right (approximate). Returns one
    `TokenLogprob` per entry.
    """
    joined, starts = _token_spans(entries)
    ends = starts[1:] + [len(joined)]
    close = joined.rfind(CHANNEL_CLOSE)
    search_from = close + len(CHANNEL_CLOSE) if close >= 0 else 0
    if CHANNEL_OPEN in joined[search_from:]:  # a channel left open: no answer tokens
        at = -1 if answer else 0
    else:
        at = joined.rfind(answer, search_from) if answer else 0
    offsets: list[int] = []
    if not answer:
        offsets = [-1] * len(entries)
    elif at >= 0:
        for start, end in zip(starts, ends):
            inside = end > at and start < at + len(answer)
            offsets.append(min(max(start - at, 0), len(answer) - 1) if inside else -1)
    else:
        cursor = 0
        for entry in entries:
            token = str(entry.get("token", ""))
            found = answer.find(token, cursor) if token.strip() else -1
            offsets.append(found)
            if found >= 0:
                cursor = found + len(token)
    return [
        TokenLogprob(token=str(entry.get("token", "")), logprob=float(entry.get("logprob", 0.0)), offset=offset)
        for entry, offset in zip(entries, offsets)
    ]


__all__ = ["map_logprobs"]
