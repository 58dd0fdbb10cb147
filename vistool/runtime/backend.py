"""The backend interface: a batch of requests in, a batch of responses out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from vistool.runtime.types import GenerationRequest, GenerationResponse


@runtime_checkable
class Backend(Protocol):
    """Anything that turns generation requests into responses.

    `generate` returns exactly one response per request, in order. A request that fails
    on its own (a model error, an HTTP error) yields a response with `error` set rather
    than an exception, so one bad item never takes a batch down. An empty batch or an
    invalid setting (e.g. an unsupported budget) raises `RequestError`/`BudgetError`.
    """

    model_id: str
    profile_name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate one response per request."""
        ...


# A backend that can also score fixed answers has `score(requests) -> list[GenerationResponse]`:
# for each request with `choices`, the response's `choice_logprobs` hold the log-probability
# of each choice as the whole answer (the local transformers backend has it).
# A backend that finishes requests at different times may have `generate_iter(requests)`,
# yielding lists of (request index, response) as they finish (the local backend has it).


Answered = list[tuple[int, GenerationResponse]]  # (request index, response) pairs finished together


def answer_requests(
    backend: Backend, requests: Sequence[GenerationRequest], on_answers: Callable[[Answered], None] | None = None
) -> list[GenerationResponse]:
    """Send each request where it belongs and return one response per request, in order.

    Requests with `choices` are scored (`backend.score`); the others are generated
    (`backend.generate`). `on_answers`, when given, is called with each group of
    (request index, response) as soon as it is done: a backend with `generate_iter`
    (the local one) gives its micro-batches as they finish, others all at once. Raises
    RequestError when there are scoring requests and the backend cannot score fixed
    answers (it has no `score` method).
    """
    scored = [index for index, request in enumerate(requests) if request.choices is not None]
    if not scored:
        return _generated(backend, list(requests), on_answers)
    score = getattr(backend, "score", None)
    if score is None:
        from vistool.errors import RequestError

        raise RequestError(
            f"the {type(backend).__name__} cannot score fixed answers (classification needs the log-probability "
            "of each label as the whole answer); use the local transformers backend"
        )
    responses: list[GenerationResponse | None] = [None] * len(requests)
    for index, response in zip(scored, score([requests[index] for index in scored])):
        responses[index] = response
    if on_answers is not None:
        on_answers([(index, responses[index]) for index in scored])  # type: ignore[misc]
    generated = [index for index in range(len(requests)) if responses[index] is None]
    if generated:
        def forward(answered: Answered) -> None:
            if on_answers is not None:
                on_answers([(generated[index], response) for index, response in answered])

        for index, response in zip(generated, _generated(backend, [requests[index] for index in generated], forward)):
            responses[index] = response
    return [response for response in responses if response is not None]


def _generated(
    backend: Backend, requests: list[GenerationRequest], on_answers: Callable[[Answered], None] | None
) -> list[GenerationResponse]:
    """Generate one response per request; report groups to `on_answers` as they finish (see `answer_requests`)."""
    stream = getattr(backend, "generate_iter", None) if on_answers is not None else None
    if stream is None:
        responses = backend.generate(requests)
        if on_answers is not None:
            on_answers(list(enumerate(responses)))
        return responses
    collected: list[GenerationResponse | None] = [None] * len(requests)
    for answered in stream(requests):
        for index, response in answered:
            collected[index] = response
        on_answers(answered)  # type: ignore[misc]
    return [response for response in collected if response is not None]


def validate_requests(requests: Sequence[GenerationRequest], profile) -> list[GenerationRequest]:
    """Check a batch and resolve default budgets, as every backend must.

    Takes the requests and the model family profile. Returns the requests with their
    budget resolved (the family's default for None). Raises RequestError for an empty
    batch, a non-request, max_new_tokens < 1, or images and a video together, and
    BudgetError for a budget the family does not support.
    """
    from dataclasses import replace

    from vistool.errors import RequestError

    if not requests:
        raise RequestError("empty batch: give at least one generation request")
    resolved = []
    for index, request in enumerate(requests):
        if not isinstance(request, GenerationRequest):
            raise RequestError(f"request {index} is a {type(request).__name__}, not a GenerationRequest")
        if request.max_new_tokens < 1:
            raise RequestError(f"request {index}: max_new_tokens must be >= 1 (got {request.max_new_tokens})")
        if request.images and request.video is not None:
            raise RequestError(f"request {index}: give images or a video, not both")
        budget = profile.check_budget(request.budget)
        resolved.append(request if budget == request.budget else replace(request, budget=budget))
    return resolved
