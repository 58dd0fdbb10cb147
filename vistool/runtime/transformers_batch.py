"""One micro-batch on the local backend, before and after decoding, whoever decodes it.

`setup_batch` turns a prepared micro-batch into what decoding needs: the tensors
`generate` takes, where the generated tokens start, the `generate` keyword arguments
with their recorders (log-probs, JSON stop, answer controls), and per row the token
counts and resized image sizes a response records; the context check runs here.
`batch_responses` turns the decoded sequences back into one `GenerationResponse` per
row. A static `generate` call (vistool.runtime.transformers_backend) and a refilled group
(vistool.runtime.transformers_refill) share both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vistool.runtime import inputs as family_inputs
from vistool.runtime.progress import StepProgress
from vistool.runtime.transformers_controls import Controls
from vistool.runtime.types import GenerationRequest, GenerationResponse


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


__all__ = ["BatchSetup", "batch_responses", "setup_batch"]
