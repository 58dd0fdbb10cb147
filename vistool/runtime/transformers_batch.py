"""One micro-batch on the local backend, before and after decoding, whoever decodes it.

`setup_batch` turns a prepared micro-batch into what decoding needs: the tensors
`generate` takes, where the generated tokens start, the `generate` keyword arguments
with their recorders (log-probs, JSON stop, answer controls), and per row the token
counts and resized image sizes a response records; the context check runs here.
`batch_responses` turns the decoded sequences back into one `GenerationResponse` per
row. A static `generate` call (vistool.runtime.transformers_backend) and a refilled group
(vistool.runtime.transformers_refill) share both. `generate_safely` runs a static
micro-batch with its failures isolated (one request at a time; halves on out of memory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from vistool.runtime import inputs as family_inputs
from vistool.runtime import speed
from vistool.runtime.progress import StepProgress
from vistool.runtime.transformers_controls import Controls
from vistool.runtime.types import GenerationRequest, GenerationResponse

logger = logging.getLogger(__name__)


@dataclass
class BatchSetup:
    """A micro-batch ready to decode: requests, model inputs, `generate` kwargs, recorders and per-row facts."""

    requests: list[GenerationRequest]
    model_inputs: dict[str, Any]
    prompt_length: int
    generate_kwargs: dict[str, Any]
    recorder: Any
    controls: Controls
    image_sizes: list[list[tuple[int, int]]]
    image_tokens: list[int]
    prompt_tokens: list[int]
    preprocess_seconds: float


def setup_batch(backend: Any, requests: list[GenerationRequest], prepared: Any, *, progress: bool = True) -> BatchSetup:
    """Return a micro-batch's `BatchSetup`.

    Takes the backend (a `TransformersBackend`), the requests, their prepared processor
    outputs (`_Prepared`) and whether `generate` reports its steps to the backend's
    progress callback. Raises RequestError when a prompt and its answer exceed the
    model's context.
    """
    from transformers import StoppingCriteriaList

    inputs = prepared.inputs
    image_sizes = backend._resized_sizes(inputs, requests)
    model_inputs = family_inputs.model_inputs(inputs, backend.processor, backend.device)
    # Where generated tokens start in the output: after the prompt, or after an encoder-decoder's decoder start.
    prompt_length = family_inputs.generated_start(backend.model, model_inputs)
    image_tokens, prompt_tokens = backend._token_counts(inputs)
    family_inputs.check_context(requests, prompt_tokens, backend.context_tokens, backend.encoder_decoder)
    kwargs, recorder, controls = backend._generate_kwargs(requests, prompt_length)
    if not progress:
        kwargs["stopping_criteria"] = StoppingCriteriaList(
            criterion for criterion in kwargs["stopping_criteria"] if not isinstance(criterion, StepProgress)
        )
    return BatchSetup(
        requests, model_inputs, prompt_length, kwargs, recorder, controls, image_sizes, image_tokens, prompt_tokens,
        prepared.seconds,
    )


def batch_responses(backend: Any, batch: BatchSetup, sequences: Any, timings: list[dict[str, float]]) -> list[GenerationResponse]:
    """Return one response per row of a decoded micro-batch.

    Takes the backend, the batch's setup, the decoded sequences (rows x (prompt +
    generated), as `generate` returns them) and each row's timings. Reads the log-prob
    recorder, the JSON stop and the answer controls of the batch.
    """
    generated = sequences[:, batch.prompt_length :].tolist()
    logprobs = None if batch.recorder is None else batch.recorder.collect(sequences, batch.prompt_length)
    json_stop = batch.controls.json_stop
    json_stops = None if json_stop is None else json_stop.stop_steps.tolist()
    responses = []
    for row, request in enumerate(batch.requests):
        responses.append(
            backend._response(
                request,
                generated[row],
                None if logprobs is None else logprobs[row],
                prompt_tokens=batch.prompt_tokens[row],
                image_tokens=batch.image_tokens[row],
                image_sizes=batch.image_sizes[row],
                timings=timings[row],
                json_stop=None if json_stops is None or json_stops[row] < 0 else json_stops[row],
                control=batch.controls.answer.row(row),
            )
        )
    return responses


def generate_safely(backend: Any, requests: list[GenerationRequest], prepared: Any = None) -> list[GenerationResponse]:
    """Run a micro-batch through `backend._generate_batch`; on failure retry each request alone and record its error.

    Takes the backend, the requests and, optionally, their prepared inputs (or the
    exception that preparing them raised). On out-of-memory the batch is halved and each
    half retried, down to single requests (the group's micro-batches stay at the size
    that fitted); any other failure is retried request by request; a compile failure
    turns compiling off and retries.
    """
    try:
        if isinstance(prepared, BaseException):
            raise prepared
        return backend._generate_batch(requests, prepared)
    except Exception as batch_error:
        if backend.compile and speed.is_compile_error(batch_error):
            logger.warning("torch.compile failed (%s); generating without it from now on", type(batch_error).__name__)
            backend.compile = False
            return backend._generate_safely(requests, prepared)
        prepared = None  # drop references to the batch's tensors before retrying
        if speed.is_out_of_memory(batch_error):
            backend._static_caches.clear()  # sized for the failed batch; smaller ones are made on demand
            speed.release_memory(backend.device)
            if len(requests) > 1:
                half = (len(requests) + 1) // 2
                key = backend._group_key(requests[0])
                backend._oom_batch_cap[key] = min(half, backend._oom_batch_cap.get(key, half))
                logger.warning("out of memory at micro-batch %d; retrying as %d + %d", len(requests), half, len(requests) - half)
                return backend._generate_safely(requests[:half]) + backend._generate_safely(requests[half:])
        if len(requests) == 1:
            message = f"{type(batch_error).__name__}: {batch_error}"
            return [GenerationResponse.failure(message, backend._settings(requests[0]))]
        return [backend._generate_safely([request])[0] for request in requests]


__all__ = ["BatchSetup", "batch_responses", "generate_safely", "setup_batch"]
