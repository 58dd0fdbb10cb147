"""One chat completion as a `GenerationResponse`.

The answer is the message's `content` (text, or text parts) with the thought split off:
a server's reasoning parser returns the thought apart (`reasoning_content` /
`reasoning`), which `raw_text` puts back in Gemma 4's channel markers; a thought left in
the content is split there (vistool.runtime.thinking). A request with `stop_on_repeat`
whose answer ends in a loop (one item over and over) has the repeated tail cut off
(`raw_text` keeps all of it; settings say how many characters). Token log-probs, when
asked for and sent, are mapped onto the answer (vistool.runtime.openai_logprobs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vistool.runtime import openai_structured
from vistool.runtime.openai_logprobs import map_logprobs
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, split_thought
from vistool.runtime.types import GenerationRequest, GenerationResponse


def completion_response(
    request: GenerationRequest,
    data: dict[str, Any],
    settings: dict[str, Any],
    timings: dict[str, float],
    image_sizes: list[tuple[int, int]] | None,
    strip_tokens: Sequence[str],
    warn: Callable[[str, str], None],
) -> GenerationResponse:
    """Turn one chat completion into a `GenerationResponse` (thought split, loop cut, log-probs mapped).

    Takes the request, the completion (`choices[0].message` present), the settings and
    timings the response records, the client-computed resized image sizes, the family's
    tokens to strip from the answer, and `warn(key, message)` (warns once per key; used
    when log-probs were asked for and the server sent none). Returns the response.
    """
    choice = data["choices"][0]
    message = choice["message"]
    content = message.get("content") or ""
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    reasoning = message.get("reasoning_content") or message.get("reasoning") or None
    answer, inline_thought = split_thought(str(content))
    for token in strip_tokens:
        answer = answer.replace(token, "")
    answer = answer.strip()
    if request.stop_on_repeat:
        answer, cut = openai_structured.cut_loop(answer)
        settings = {**settings, **cut}
    thoughts = [part.strip() for part in (reasoning, inline_thought) if isinstance(part, str) and part.strip()]
    thought = "\n\n".join(thoughts) or None
    raw_text = str(content)
    if isinstance(reasoning, str) and reasoning:
        raw_text = f"{CHANNEL_OPEN}thought\n{reasoning}{CHANNEL_CLOSE}{raw_text}"

    finish = choice.get("finish_reason")
    if finish not in ("stop", "length", None):
        settings = {**settings, "server_finish_reason": finish}
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    logprobs = None
    if request.return_logprobs and "logprobs" not in settings.get("not_sent", []):
        entries = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        if isinstance(entries, list) and entries:
            logprobs = map_logprobs([entry for entry in entries if isinstance(entry, dict)], answer)
        else:
            warn(
                "no-logprobs",
                f"the server ({settings.get('engine')}) returned no token log-probabilities; "
                "vLLM, SGLang and llama-server return them, transformers serve does not",
            )
    generated = int(usage.get("completion_tokens") or 0) or (len(logprobs) if logprobs else 0)
    return GenerationResponse(
        text=answer,
        raw_text=raw_text,
        thought=thought,
        finish_reason="length" if finish == "length" else "stop",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        image_tokens=0,
        generated_tokens=generated,
        logprobs=logprobs,
        timings=timings,
        settings=settings,
        image_sizes=list(image_sizes or []),
    )


__all__ = ["completion_response"]
