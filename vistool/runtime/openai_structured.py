"""Structured answers and loops over the OpenAI-compatible API.

  - `response_format`: the JSON schema of a request, as the OpenAI API's
    `{"type": "json_schema", ...}` field (vLLM, SGLang and llama.cpp's server enforce it
    with a grammar; Ollama and others may or may not).
  - `plan`: whether a request sends it, and what its response records. A request that
    thinks is sent without it (a server without a reasoning parser would constrain the
    thought too, leaving the model no room to think); a backend whose server refused
    the field once sends it no more.
  - `is_refusal`: whether an HTTP error is the server saying it does not take the field
    (then the request is sent again without it, and the response says so).
  - `cut_loop`: the answer with a repeated tail cut off (vistool.runtime.repetition), and
    what the response records about it.
"""

from __future__ import annotations

from typing import Any

from vistool.runtime.repetition import repeated_tail
from vistool.runtime.types import GenerationRequest

RESPONSE_FORMAT = "response_format"
_REFUSAL_WORDS = ("response_format", "json_schema", "structured", "guided", "grammar", "schema")


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """Return the `response_format` body field that asks for answers matching `schema`."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def plan(request: GenerationRequest, refused: str | None) -> tuple[bool, dict[str, Any]]:
    """Return (send `response_format`?, settings the response records) for one request.

    Takes the request and why the server refused the field before (None: it has not).
    """
    if request.json_schema is None:
        if request.free_reason:
            return False, {"structured": "free", "structured_note": request.free_reason}
        return False, {}
    if request.thinking:
        note = "thinking over HTTP: the server would constrain the thought too, so the answer was generated free"
        return False, {"structured": "free", "structured_note": note}
    if refused is not None:
        return False, {"structured": "free", "structured_note": refused}
    return True, {"structured": RESPONSE_FORMAT}


def is_refusal(status: int | None, detail: str) -> bool:
    """True when an HTTP error says the server does not take `response_format` (or its schema)."""
    if status not in (400, 422, 501):
        return False
    lowered = detail.lower()
    return any(word in lowered for word in _REFUSAL_WORDS)


def cut_loop(answer: str) -> tuple[str, dict[str, Any]]:
    """Return the answer with a repeated tail cut off, and the settings that record the cut ({} when none)."""
    cut = repeated_tail(answer)
    if cut is None:
        return answer, {}
    return answer[:cut], {"repeat_cut_chars": len(answer) - cut}
