"""Scoring fixed answers with a local model: the log-probability of each choice.

For a request with `choices` (e.g. the labels of a classification), the prompt and its
image are run through the model ONCE; its key-value cache is then repeated once per
choice and every choice's tokens are scored in ONE more forward pass. Each choice is
scored as the whole answer: its tokens followed by the family's end-of-answer token
(`ModelProfile.answer_end`, else the tokenizer's end of sequence), so "cat" is not
favoured over "cats" just for being a prefix of it. The result is exactly what scoring
each choice in a forward pass of its own gives (tests/test_classify.py checks it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from vistool.errors import RequestError
from vistool.runtime.types import GenerationRequest, GenerationResponse


def choice_token_ids(tokenizer: Any, choices: Sequence[str], end_token: str | None) -> list[list[int]]:
    """Return the token ids of each choice as a whole answer: its text, then the end token.

    Takes the tokenizer, the choices and the end-of-answer token (None: the tokenizer's
    eos). Raises RequestError for an empty choice or an end token the vocabulary lacks.
    """
    end_id = tokenizer.convert_tokens_to_ids(end_token) if end_token else tokenizer.eos_token_id
    if end_id is None or (end_token and end_id == tokenizer.unk_token_id):
        raise RequestError(f"the tokenizer has no end-of-answer token {end_token!r} to score choices with")
    ids = []
    for choice in choices:
        tokens = tokenizer(str(choice), add_special_tokens=False).input_ids
        if not tokens:
            raise RequestError(f"choice {choice!r} has no tokens")
        ids.append(list(tokens) + [int(end_id)])
    return ids


def score_request(backend: Any, request: GenerationRequest) -> GenerationResponse:
    """Score the choices of one request on a `TransformersBackend`.

    Takes the backend (its model, tokenizer, profile and `_prepare`) and a request with
    `choices`. Returns a response whose `choice_logprobs` are the summed log-probs of
    each choice's tokens (end token included), whose `text` is the best choice, and
    with token counts and timings. Raises what the model raises.
    """
    import torch

    if not request.choices:
        raise RequestError("a scoring request needs at least one choice")
    start = time.perf_counter()
    prepared = backend._prepare([request])
    inputs = prepared.inputs
    model_inputs = {
        key: value.to(backend.device) if hasattr(value, "to") else value
        for key, value in inputs.items()
        if key not in getattr(backend.processor, "unused_input_names", ())
    }
    ids = choice_token_ids(backend.tokenizer, request.choices, backend.profile.answer_end)
    count, longest = len(ids), max(len(tokens) for tokens in ids)
    prompt_length = int(model_inputs["input_ids"].shape[1])
    with torch.inference_mode():
        prefix = backend.model(**model_inputs, use_cache=True, logits_to_keep=1)
        prefill_seconds = time.perf_counter() - start
        first = torch.log_softmax(prefix.logits[0, -1].float(), dim=-1)
        totals = [float(first[tokens[0]]) for tokens in ids]
        if longest > 1:
            cache = getattr(prefix, "cache", None) or prefix.past_key_values
            cache.batch_repeat_interleave(count)
            pad = backend.tokenizer.pad_token_id or 0
            rest = torch.full((count, longest - 1), pad, dtype=torch.long)
            for row, tokens in enumerate(ids):
                rest[row, : len(tokens) - 1] = torch.tensor(tokens[:-1])
            # No attention mask: the padding is on the right, after every scored token, which causal attention
            # never lets a scored token see. Without one, each model places the new tokens after the cached
            # prompt its own way (Qwen's M-RoPE adds its rope delta; with a mask it would rebuild positions for
            # the whole sequence and fail).
            output = backend.model(input_ids=rest.to(backend.device), cache=cache, use_cache=False)
            logprobs = torch.log_softmax(output.logits.float(), dim=-1)
            for row, tokens in enumerate(ids):
                following = torch.tensor(tokens[1:], device=logprobs.device)
                totals[row] += float(logprobs[row, : len(tokens) - 1].gather(-1, following[:, None]).sum())
    seconds = time.perf_counter() - start
    image_tokens, prompt_tokens = backend._token_counts(inputs)
    best = max(range(count), key=totals.__getitem__)
    return GenerationResponse(
        text=str(request.choices[best]),
        raw_text=str(request.choices[best]),
        finish_reason="stop",
        prompt_tokens=int(prompt_tokens[0]),
        image_tokens=int(image_tokens[0]),
        generated_tokens=0,
        timings={
            "preprocess_s": prepared.seconds,
            "prefill_s": prefill_seconds - prepared.seconds,
            "score_s": seconds - prefill_seconds,
            "generate_s": seconds - prepared.seconds,
            "forward_passes": 2 if longest > 1 else 1,
            "choice_tokens": sum(len(tokens) for tokens in ids),
        },
        settings=backend._settings(request),
        image_sizes=backend._resized_sizes(inputs, [request])[0],
        choice_logprobs=totals,
    )


def score_requests(backend: Any, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
    """Score every request's choices, one request at a time; a request that fails gets a
    response with `error` set and the others go on."""
    responses = []
    for request in requests:
        try:
            responses.append(score_request(backend, request))
        except Exception as error:  # one bad request must not take the others down
            responses.append(GenerationResponse.failure(f"{type(error).__name__}: {error}", backend._settings(request)))
    return responses


__all__ = ["choice_token_ids", "score_request", "score_requests"]
