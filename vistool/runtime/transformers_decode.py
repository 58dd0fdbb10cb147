"""From one row of generated token ids to a `GenerationResponse`, and the tokenizer facts
that takes: the ids that end an answer, the special ids decoding leaves out (a family's
location tokens excepted), the thought channel's markers, and memoised per-token texts
(answer offsets in linear time, vistool.runtime.detokenize)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vistool.profiles.base import ModelProfile
from vistool.runtime.detokenize import TokenPieces, plain_decoder
from vistool.runtime.logprob_columns import TokenLogprobs
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, decode_answer
from vistool.runtime.types import GenerationResponse


def token_id(tokenizer: Any, token: str) -> int | None:
    """Return the id of a single special token, or None if the vocabulary lacks it."""
    found = tokenizer.convert_tokens_to_ids(token)
    return None if found is None or found == tokenizer.unk_token_id else int(found)


def special_ids(tokenizer: Any, profile: ModelProfile) -> set[int]:
    """Return the ids decoding leaves out of the answer: the tokenizer's special tokens,
    except the family's location tokens (some checkpoints mark `<loc_123>` special),
    which carry the answer's coordinates."""
    special = set(tokenizer.all_special_ids) | {
        number for number, token in tokenizer.added_tokens_decoder.items() if token.special
    }
    loc = profile.loc_format
    if loc is not None:
        pattern = re.compile(loc.token)
        special -= {number for number, token in tokenizer.added_tokens_decoder.items() if pattern.fullmatch(str(token))}
    return special


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Return the ids that end an answer (the generation config's eos ids, else the tokenizer's)."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos])


@dataclass(frozen=True)
class TokenFacts:
    """What decoding needs to know about a tokenizer: `stop_ids`, `special_ids`, the
    channel markers' ids (`channel_open` / `channel_close`, None when absent), `decode`
    (ids -> text) and `pieces` (memoised per-token texts)."""

    stop_ids: set[int]
    special_ids: set[int]
    channel_open: int | None
    channel_close: int | None
    decode: Callable[[list[int]], str]
    pieces: TokenPieces

    @classmethod
    def of(cls, tokenizer: Any, model: Any, profile: ModelProfile) -> "TokenFacts":
        """Return the facts of `tokenizer` for `model` (its eos ids) and `profile` (its location tokens)."""
        decode = plain_decoder(tokenizer)
        return cls(
            stop_ids=stop_ids(model, tokenizer),
            special_ids=special_ids(tokenizer, profile),
            channel_open=token_id(tokenizer, CHANNEL_OPEN),
            channel_close=token_id(tokenizer, CHANNEL_CLOSE),
            decode=decode,
            pieces=TokenPieces(decode, tokenizer.convert_ids_to_tokens),
        )


def row_response(
    facts: TokenFacts,
    token_ids: list[int],
    token_logprobs: list[float] | None,
    *,
    settings: dict[str, Any],
    prompt_tokens: int,
    image_tokens: int,
    image_sizes: list[tuple[int, int]],
    timings: dict[str, float],
    json_stop: int | None = None,
    control: Any = None,
) -> GenerationResponse:
    """Build the response of one row: cut at the stop token, decode, split the thought.

    Takes the tokenizer facts, the row's generated ids and (optionally) their
    log-probs, the settings the response records (before the row control's own), the
    counts, sizes and timings. `json_stop` is the number of tokens generated when the
    row's JSON answer closed (None: it did not stop that way); those tokens are all part
    of the answer. `control` is the row's `RowControl` (where the loop stop ended it,
    what to record).
    """
    length, finish = len(token_ids), "length"
    for position, number in enumerate(token_ids):
        if number in facts.stop_ids:
            length, finish = position, "stop"
            break
    eos = 1 if finish == "stop" else 0
    if json_stop is not None and json_stop <= length:
        length, finish, eos = json_stop, "stop", 0
    repeat_step = None if control is None else control.repeat_step
    if repeat_step is not None and repeat_step <= length:
        length, finish, eos = repeat_step, "repetition", 0
    answer_ids = token_ids[:length]  # padding only ever follows the stop token
    decoded = decode_answer(
        answer_ids,
        facts.decode,
        facts.special_ids,
        facts.channel_open,
        facts.channel_close,
        with_offsets=token_logprobs is not None,
        pieces=facts.pieces,
    )
    logprobs = None
    if token_logprobs is not None:  # columns, not one object per token (see vistool.runtime.logprob_columns)
        values = list(map(float, token_logprobs[: len(answer_ids)]))
        logprobs = TokenLogprobs(decoded.token_texts, values, decoded.token_offsets, list(answer_ids))
    return GenerationResponse(
        text=decoded.text,
        raw_text=decoded.raw_text,
        thought=decoded.thought,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        image_tokens=image_tokens,
        generated_tokens=length + eos,
        logprobs=logprobs,
        timings=timings,
        settings={**settings, **(control.settings if control is not None else {})},
        image_sizes=image_sizes,
    )


__all__ = ["TokenFacts", "row_response", "special_ids", "stop_ids", "token_id"]
