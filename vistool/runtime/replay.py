"""A backend that answers from recorded or constructed answers instead of a model.

Used to re-score cached answers, and in tests to drive everything after generation with
exactly known answers (e.g. "oracle" answers written from ground truth).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vistool.errors import RequestError
from vistool.runtime.thinking import split_thought
from vistool.runtime.types import GenerationRequest, GenerationResponse

Answer = str | GenerationResponse
AnswerSource = Callable[[GenerationRequest], Answer] | Sequence[Answer]


class ReplayBackend:
    """Return prepared answers, one per request, in the order requests arrive.

    `answers` is either a sequence (consumed in order across calls) or a function from a
    request to its answer. An answer is a string (the raw model output; a thinking
    channel in it is split off) or a full `GenerationResponse`. `calls` counts requests
    answered, so tests can check that cached work is not redone.
    """

    def __init__(self, answers: AnswerSource, model_id: str = "replay", profile_name: str = "gemma4") -> None:
        self.model_id = model_id
        self.profile_name = profile_name
        self._answers = answers
        self._position = 0
        self.calls = 0

    def _next_answer(self, request: GenerationRequest) -> Answer:
        """Return the answer for one request (from the function or the next in sequence)."""
        if callable(self._answers):
            return self._answers(request)
        if self._position >= len(self._answers):
            raise RequestError(f"replay backend ran out of answers after {self._position}")
        answer = self._answers[self._position]
        self._position += 1
        return answer

    def score(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Answer scoring requests (with `choices`) from the prepared answers too: give
        them as `GenerationResponse`s with `choice_logprobs` set."""
        return self.generate(requests)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Answer each request from the prepared answers; raise RequestError on an empty batch."""
        if not requests:
            raise RequestError("empty batch: give at least one generation request")
        responses = []
        for request in requests:
            self.calls += 1
            answer = self._next_answer(request)
            settings = {**request.settings(), "model": self.model_id, "profile": self.profile_name, "backend": "replay"}
            if isinstance(answer, GenerationResponse):
                if not answer.settings:
                    answer.settings = settings
                responses.append(answer)
                continue
            text, thought = split_thought(answer)
            responses.append(
                GenerationResponse(
                    text=text,
                    raw_text=answer,
                    thought=thought,
                    finish_reason="stop",
                    settings=settings,
                    image_sizes=[image.size for image in request.images],
                )
            )
        return responses
