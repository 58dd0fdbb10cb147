"""The answer decoder as it was before issue 19 (prefix decoding, quadratic), kept verbatim
as the reference the linear decoder must match exactly (tests/test_detokenize.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vistool.runtime.thinking import DecodedAnswer, _clean_thought


def decode_answer_reference(
    token_ids: Sequence[int],
    decode: Callable[[Sequence[int]], str],
    special_ids: set[int],
    channel_open_id: int | None,
    channel_close_id: int | None,
    with_offsets: bool = True,
) -> DecodedAnswer:
    """Decode generated token ids into answer and thought with exact character offsets.

    Takes the generated ids (without padding or the stop token), a `decode` function
    (ids -> text, special tokens kept), the ids of special tokens, and the ids of the
    thought-channel markers. Tokens are grouped into runs (answer / thought); each run is
    decoded whole so that multi-byte characters split over tokens come out right, and a
    token's offset is the length of the decoded run prefix before it (computed only
    when `with_offsets`; otherwise the token lists are empty). Returns a
    `DecodedAnswer` whose `text` is the concatenation of answer runs, stripped of
    surrounding whitespace, with offsets adjusted to match.
    """
    runs: list[tuple[str, list[int]]] = []
    mode = "answer"
    for token_id in token_ids:
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
            if with_offsets:
                token_texts.extend(decode(ids[index : index + 1]) for index in range(len(ids)))
                token_offsets.extend([-1] * len(ids))
            continue
        previous = ""
        for index in range(len(ids) if with_offsets else 0):
            prefix = decode(ids[: index + 1])
            start = len(previous) if run_text.startswith(previous) else len(prefix)
            token_texts.append(prefix[len(previous) :] if prefix.startswith(previous) else decode(ids[index : index + 1]))
            token_offsets.append(answer_length + min(start, len(run_text)))
            previous = prefix
        answer_parts.append(run_text)
        answer_length += len(run_text)

    joined = "".join(answer_parts)
    leading = len(joined) - len(joined.lstrip())
    text = joined.strip()
    offsets = [
        -1 if offset < 0 else min(max(offset - leading, 0), len(text)) for offset in token_offsets
    ]
    raw_text = decode(list(token_ids))
    return DecodedAnswer(
        text=text,
        raw_text=raw_text,
        thought=_clean_thought(thought_parts),
        token_texts=token_texts,
        token_offsets=offsets,
    )
