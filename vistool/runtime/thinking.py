"""Separate the thinking channel from the answer, on text or on generated tokens.

Gemma 4 writes its reasoning as `<|channel>thought\\n...<channel|>` before the answer
(26B/31B may emit an empty channel even with thinking off). The answer is what comes
outside the channel; the thought is kept for the user in its own field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vistool.runtime.detokenize import TokenPieces, run_texts_and_offsets

CHANNEL_OPEN = "<|channel>"
CHANNEL_CLOSE = "<channel|>"
_CHANNEL_RE = re.compile(re.escape(CHANNEL_OPEN) + r"(.*?)(?:" + re.escape(CHANNEL_CLOSE) + r"|\Z)", re.DOTALL)
_CHANNEL_NAME_RE = re.compile(r"^\s*thought\s*\n?")


def _clean_thought(parts: Sequence[str]) -> str | None:
    """Join thought-channel parts, dropping the leading channel name; None when empty."""
    text = "".join(_CHANNEL_NAME_RE.sub("", part, count=1) for part in parts).strip()
    return text or None


def split_thought(text: str) -> tuple[str, str | None]:
    """Split text into (answer, thought).

    Takes decoded model output that may contain thought channels (closed, or left open
    by the token limit). Returns the text outside every channel, stripped, and the
    channel contents without the `thought` name (None when there is no thought).
    """
    thoughts = [match.group(1) for match in _CHANNEL_RE.finditer(text)]
    answer = _CHANNEL_RE.sub("", text)
    return answer.strip(), _clean_thought(thoughts)


@dataclass
class DecodedAnswer:
    """Generated tokens turned into answer text, thought text and per-token offsets.

    `token_offsets[i]` is where token i starts in `text`, or -1 for tokens that are not
    part of the answer (thought channel, special tokens).
    """

    text: str
    raw_text: str
    thought: str | None
    token_texts: list[str]
    token_offsets: list[int]


def decode_answer(
    token_ids: Sequence[int],
    decode: Callable[[Sequence[int]], str],
    special_ids: set[int],
    channel_open_id: int | None,
    channel_close_id: int | None,
    with_offsets: bool = True,
    pieces: TokenPieces | None = None,
) -> DecodedAnswer:
    """Decode generated token ids into answer and thought with exact character offsets.

    Takes the generated ids (without padding or the stop token), a `decode` function
    (ids -> text, special tokens kept), the ids of special tokens, and the ids of the
    thought-channel markers. Tokens are grouped into runs (answer / thought); each run is
    decoded whole so that multi-byte characters split over tokens come out right, and a
    token's offset is the length of the decoded run prefix before it (computed only
    when `with_offsets`, in linear time, see `vistool.runtime.detokenize`; otherwise the
    token lists are empty). `pieces` is the tokenizer's memoised `TokenPieces` (a
    long-lived one makes repeated calls cheap; None: one for this call). Returns a
    `DecodedAnswer` whose `text` is the concatenation of answer runs, stripped of
    surrounding whitespace, with offsets adjusted to match.
    """
    runs: list[tuple[str, list[int]]] = []
    mode = "answer"
    plain = bool(token_ids) and special_ids.isdisjoint(token_ids) and not {channel_open_id, channel_close_id} & set(token_ids)
    if plain:  # the common case, checked at C speed: one answer run
        runs.append(("answer", list(token_ids)))
    for token_id in token_ids if not plain else ():
        if token_id == channel_open_id:
            mode = "thought"
            runs.append(("special", [token_id]))
            continue
        if token_id == channel_close_id:
            mode = "answer"
            runs.append(("special", [token_id]))
            continue
        kind = "special" if token_id in special_ids else mode
        if runs and runs[-1][0] == kind and kind != "special":
            runs[-1][1].append(token_id)
        else:
            runs.append((kind, [token_id]))

    if not with_offsets:
        pieces = None
    elif pieces is None:
        pieces = TokenPieces(decode)
    answer_parts: list[str] = []
    thought_parts: list[str] = []
    token_texts: list[str] = []
    token_offsets: list[int] = []
    answer_length = 0
    for kind, ids in runs:
        run_text = decode(ids)
        if kind != "answer":
            if kind == "thought":
                thought_parts.append(run_text)
            if pieces is not None:
                token_texts.extend(map(pieces.single, ids))
                token_offsets.extend([-1] * len(ids))
            continue
        if pieces is not None:
            texts, offsets = run_texts_and_offsets(ids, run_text, pieces)
            token_texts.extend(texts)
            token_offsets.extend([answer_length + offset for offset in offsets] if answer_length else offsets)
        answer_parts.append(run_text)
        answer_length += len(run_text)

    joined = "".join(answer_parts)
    text = joined.strip()
    leading = len(joined) - len(joined.lstrip())
    if leading or len(text) != len(joined):
        token_offsets = [-1 if offset < 0 else min(max(offset - leading, 0), len(text)) for offset in token_offsets]
    raw_text = joined if plain else decode(list(token_ids))
    return DecodedAnswer(
        text=text,
        raw_text=raw_text,
        thought=_clean_thought(thought_parts),
        token_texts=token_texts,
        token_offsets=token_offsets,
    )
