"""From a backend response to a task's result: errors for answers that are no answer (cut
off in the thought, empty, unscored), parsing in pixels of the displayed image,
duplicates, per-item confidence from log-probs, NMS, provenance, and the task's own
`finish` step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vistool.errors import VistoolError
from vistool.postprocess import parse, parse_many
from vistool.profiles.base import ModelProfile
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks.confidence import item_confidences
from vistool.tasks.request import RunSettings
from vistool.tasks.result import TaskResult
from vistool.tasks.spec import Options, TaskSpec


def provenance(request: GenerationRequest, response: GenerationResponse, task: str) -> dict[str, Any]:
    """Return the record of how a result was produced: settings, prompt, answer, counts,
    and the size (W, H) the processor resized each image to (`image_sizes`; [] when unknown).

    `structured` says how the answer was constrained: the grammar engine (local), or
    "response_format" (a server), or "free"; `structured_note` says why a task that
    wanted a schema got none.
    """
    record = {
        **response.settings,
        "task": task,
        "prompt": request.prompt,
        "system": request.system,
        "raw_answer": response.raw_text or response.text,
        "thought": response.thought,
        "finish_reason": response.finish_reason,
        "prompt_tokens": response.prompt_tokens,
        "image_tokens": response.image_tokens,
        "image_sizes": [list(size) for size in response.image_sizes],
        "generated_tokens": response.generated_tokens,
        "timings": response.timings,
    }
    record["structured"] = response.settings.get("structured") or "free"
    note = response.settings.get("structured_note") or request.free_reason
    if note:
        record["structured_note"] = note
    return record


def cut_off_in_thought(response: GenerationResponse, profile: ModelProfile) -> bool:
    """True when the token limit ended the answer inside the thought, before any answer was written.

    Takes a successful response and the family's profile (its thought markers; Gemma 4's
    channel when it declares none). A thought channel opened and never closed, or (for
    servers that return the thought apart) a thought with an empty answer, both at the
    token limit, count.
    """
    if response.finish_reason != "length" or response.text.strip():
        return False
    raw = response.raw_text or ""
    for open_marker, close_marker in profile.thought_markers or ((CHANNEL_OPEN, CHANNEL_CLOSE),):
        if open_marker in raw and raw.rfind(open_marker) > raw.rfind(close_marker):
            return True
    return bool(response.thought)


def interpret(
    spec: TaskSpec,
    profile: ModelProfile,
    options: Options,
    request: GenerationRequest,
    response: GenerationResponse,
    image_size: tuple[int, int],
    source: str,
    settings: RunSettings | None = None,
) -> TaskResult:
    """Turn a backend response into the task's result.

    Parses structured answers in pixels of the displayed image (`image_size`, W x H),
    dropping duplicates as `settings` say (default `RunSettings()`), sets per-item
    confidence from the token log-probs when present, applies class-wise NMS when asked,
    records provenance, and runs the task's `finish` step. A failed response gives a
    result with `error`; so does an answer the token limit cut off inside the thought
    (the thought is kept in the provenance), and an empty one (no text at all, e.g. a
    server's `content: null`): that is no answer, in every task and command (an empty
    list "[]" is an answer: nothing found).
    """
    return interpret_many(spec, profile, [options], [request], [response], [image_size], [source], [settings])[0]


def interpret_many(
    spec: TaskSpec,
    profile: ModelProfile,
    options: Sequence[Options],
    requests: Sequence[GenerationRequest],
    responses: Sequence[GenerationResponse],
    image_sizes: Sequence[tuple[int, int]],
    sources: Sequence[str],
    settings: Sequence[RunSettings | None] | None = None,
) -> list[TaskResult]:
    """`interpret` for a batch of answers of one task: the same results, in order.

    Takes one options mapping, request, response, displayed image size, source and
    (optionally) settings per answer (None: `RunSettings()`). Structured answers that
    share a class list and a duplicate threshold are parsed together with `parse_many`
    (which maps clean JSON answers for the whole batch at once); a single answer goes
    through `parse`.
    """
    run_settings = [item or RunSettings() for item in (settings if settings is not None else [None] * len(responses))]
    results = [
        TaskResult(
            task=spec.name,
            source=source,
            image_size=size,
            text=response.text,
            provenance=provenance(request, response, spec.name),
            error=response.error,
        )
        for request, response, size, source in zip(requests, responses, image_sizes, sources, strict=True)
    ]
    if len(run_settings) != len(results) or len(options) != len(results):
        raise VistoolError(f"interpret_many: {len(options)} options and {len(run_settings)} settings for {len(results)} answers")
    usable = [response.ok for response in responses]
    for index, (request, response) in enumerate(zip(requests, responses)):
        if usable[index] and request.choices is not None:  # a scoring request: one log-prob per choice
            if response.choice_logprobs is None or len(response.choice_logprobs) != len(request.choices):
                results[index].error = "the backend returned no score for each choice"
                usable[index] = False
            else:
                results[index].extras.update(choices=list(request.choices), choice_logprobs=list(response.choice_logprobs))
        if usable[index] and cut_off_in_thought(response, profile):
            results[index].error = (
                f"the answer was cut off inside the thought ({response.generated_tokens} tokens generated, no answer "
                f"written): raise thought_tokens (thought budget {request.thought_tokens}) or max_new_tokens"
            )
        elif usable[index] and request.choices is None and not response.text.strip():
            results[index].error = empty_answer_reason(response)  # a scored choice needs no text; else no text is no answer
            usable[index] = False
    if spec.kind is not None:
        groups: dict[tuple[tuple[str, ...] | None, float | None], list[int]] = {}
        for index, response in enumerate(responses):
            if usable[index]:
                classes = spec.classes(options[index])
                key = (None if classes is None else tuple(classes), run_settings[index].duplicate_iou)
                groups.setdefault(key, []).append(index)
        for (classes, duplicate_iou), indices in groups.items():
            resized = [_resized_size(profile, responses[index]) for index in indices]
            if len(indices) == 1:
                parsed = [
                    parse(
                        responses[indices[0]].text,
                        image_size=image_sizes[indices[0]],
                        profile=profile,
                        kind=spec.kind,
                        classes=classes,
                        resized_size=resized[0],
                        duplicate_iou=duplicate_iou,
                    )
                ]
            else:
                parsed = parse_many(
                    [responses[index].text for index in indices],
                    [image_sizes[index] for index in indices],
                    profile=profile,
                    kind=spec.kind,
                    classes=classes,
                    resized_sizes=resized,
                    duplicate_iou=duplicate_iou,
                )
            for index, answer in zip(indices, parsed):
                response = responses[index]
                if response.logprobs:
                    scores = item_confidences(response.text, answer.spans, response.logprobs)
                    if scores and all(score is not None for score in scores):
                        answer.set_confidence(scores)
                if run_settings[index].nms_iou is not None:
                    answer.suppress_overlaps(run_settings[index].nms_iou, response.text)
                results[index].parsed = answer
    if spec.finish is not None:
        for result, item, ok in zip(results, options, usable):
            if ok:
                spec.finish(result, item)
    return results


def _resized_size(profile: ModelProfile, response: GenerationResponse) -> tuple[int, int] | None:
    """The processor-resized size of the answer's image, for families that answer in resized pixels."""
    if not profile.needs_resized_size:
        return None
    return response.image_sizes[0] if response.image_sizes else None


def empty_answer_reason(response: GenerationResponse) -> str:
    """Say why a response with no answer text is empty, as far as it tells (the one wording everywhere)."""
    if response.finish_reason == "length":
        where = "while thinking" if response.thought else "before any answer"
        return f"empty answer: the token limit ({response.generated_tokens} tokens) was reached {where}; raise max_new_tokens"
    if response.thought:
        return "empty answer: the model only thought (its thought is in the provenance) and gave no answer"
    return "empty answer: the model returned no text"


def item_fields(text: str, spans: Sequence[tuple[int, int] | None], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Return the JSON object written at each span of `text` ({} where there is none).

    Used by tasks that need more of an item than its coordinates and label (a GUI
    element's visible text, a video segment's start and end). `keys` are the keys that
    mark an object as an item.
    """
    from vistool.postprocess import extract_json_items

    found = extract_json_items(text, keys)
    by_span = {span: item for span, item in zip(found.spans, found.items) if span is not None and isinstance(item, dict)}
    return [by_span.get(span, {}) if span is not None else {} for span in spans]


__all__ = ["cut_off_in_thought", "empty_answer_reason", "interpret", "interpret_many", "item_fields", "provenance"]
