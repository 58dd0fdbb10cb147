"""What every task shares: the declarative `TaskSpec`, the `TaskResult`, and the two steps
that turn a task into a generation request and a response into a result.

A task module declares one or more `TaskSpec`s: its prompt templates, default budget and
token limit, the answer kind it parses (boxes, points, OCR regions, or plain text), the
shape of one answer item (for structured generation), and optionally a `finish` step for
what is specific to it. Everything else (prompt choice per model family, the answer's
JSON schema, the thought budget, parsing, duplicates, confidence from log-probs,
provenance) happens here, once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from vistool.errors import UnsupportedTaskError, VistoolError
from vistool.io.video import VideoFrames
from vistool.postprocess import OCRResult, ParseResult, PointsResult, draw, parse, parse_many
from vistool.postprocess.duplicates import DEFAULT_DUPLICATE_IOU
from vistool.profiles.base import ModelProfile
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN
from vistool.runtime.types import Decoding, GenerationRequest, GenerationResponse
from vistool.structured import AnswerShape, answer_schema
from vistool.tasks.confidence import item_confidences
from vistool.tasks.limits import (  # noqa: F401  (the limits and text helpers, re-exported: tasks import them from here)
    MAX_CLASS_CHARS,
    MAX_CLASS_LIST_CHARS,
    MAX_CLASSES,
    MAX_TEXT_CHARS,
    check_text_length,
    required_text,
    split_list,
)

Options = Mapping[str, Any]

# With thinking on, the thought gets its own token budget on top of the answer's limit
# (Gemma 4's thoughts run to hundreds or thousands of tokens; an answer starved by its
# thought is no answer).
DEFAULT_THOUGHT_TOKENS = 2048


@dataclass(frozen=True)
class TaskSpec:
    """One task, declared.

    name: the task's name ("detect", "ocr", ...).
    prompts: variant -> prompt template (str.format fields from the task's options);
      "default" is required. They follow Gemma 4's conventions (JSON, `box_2d` as
      [y1, x1, y2, x2] and `point_2d` as [y, x] on 0..1000); a model profile can
      override any of them under the key "<task>" or "<task>.<variant>".
    kind: the answer kind to parse ("boxes", "points", "ocr_regions"), None for text.
    default_budget / max_new_tokens: defaults, overridable per call.
    variant: picks the prompt variant from the options.
    fields: turns the options into the template's fields.
    classes: the class names the answer's labels are matched to (None: no list).
    finish: optional step that adds task-specific extras to the result.
    choices: when set, the task does not generate: the backend scores each of these
      answers (e.g. the labels of a classification) and `interpret` puts their
      log-probabilities in `extras["choice_logprobs"]` for `finish` to read.
    json_stop: how generation may stop once the answer's JSON is complete (the local
      backend's `stop_when_json_closes`): "array" (the default for structured kinds,
      whose prompts ask for one JSON list), True (one JSON object or list), False
      (never; text tasks). Only for families that answer in JSON (no location tokens).
    media: "image" or "video", the input the task takes.
    answer: the shape of one item of the JSON answer (vistool.structured), from which
      structured generation builds the schema in the model family's keys; None for
      answers that are plain text.
    """

    name: str
    prompts: Mapping[str, str]
    kind: str | None = None
    default_budget: int = 280
    max_new_tokens: int = 512
    variant: Callable[[Options], str] = lambda options: "default"
    fields: Callable[[Options], dict[str, Any]] = lambda options: dict(options)
    classes: Callable[[Options], list[str] | None] = lambda options: None
    finish: Callable[["TaskResult", Options], None] | None = None
    choices: Callable[[Options], list[str]] | None = None
    json_stop: bool | str | None = None  # None: "array" when `kind` is set, else False
    media: str = "image"
    answer: AnswerShape | None = None

    def stop_rule(self, profile: ModelProfile) -> bool | str:
        """Return the request's `stop_when_json_closes` for this task on `profile`'s family."""
        if profile.loc_format is not None:  # location-token answers hold no JSON
            return False
        if self.json_stop is None:
            return "array" if self.kind is not None else False
        return self.json_stop

    def _family_template(self, profile: ModelProfile, variant: str) -> str | None:
        """The family's own prompt for `variant`, or None."""
        overrides = profile.prompts
        return overrides.get(f"{self.name}.{variant}") or (overrides.get(self.name) if variant == "default" else None)

    def refusal(self, profile: ModelProfile, variant: str = "default") -> str | None:
        """Say why `profile` cannot run this task (in this variant), or None when it can.

        A family cannot run a task whose input it does not take (video), whose answer
        kind it has no format for, or for which it has no prompt of its own where the
        default wording does not fit it (`ModelProfile.default_prompts`).
        """
        if self.media == "video" and not profile.video:
            return f"{profile.title or profile.name} takes no video input"
        if self.kind is not None and self.kind not in profile.kinds:
            return f"{profile.title or profile.name} has no answer format for {self.kind.replace('_', ' ')}"
        if self._family_template(profile, variant) is not None:
            return None
        own_only = profile.default_prompts == "none" or (profile.default_prompts == "text" and self.kind is not None)
        if own_only:
            what = "" if variant == "default" else f" (variant {variant!r})"
            return f"{profile.title or profile.name} has no prompt of its own for this task{what}"
        return None

    def prompt(self, profile: ModelProfile, options: Options) -> str:
        """Return the prompt for `options`, in the wording of `profile` where it has its own.

        Raises UnsupportedTaskError when the family cannot run the task, and
        VistoolError when an option the prompt needs is missing or invalid.
        """
        variant = self.variant(options)
        reason = self.refusal(profile, variant)
        if reason is not None:
            raise UnsupportedTaskError(f"model family {profile.name!r} cannot run task {self.name!r}: {reason}")
        template = self._family_template(profile, variant) or self.prompts.get(variant) or self.prompts["default"]
        try:
            return template.format(**self.fields(options))
        except (KeyError, IndexError) as exc:
            raise VistoolError(f"task {self.name!r}: prompt template needs the option {exc}") from exc


@dataclass
class TaskResult:
    """The result of one task on one image (or video).

    text: the answer text (the caption, the reply, the plain OCR text; for structured
      tasks the raw JSON answer). parsed: the structured result in pixels of the
      displayed image, when the task parses one. extras: task-specific values (count,
      GUI elements, click point, start/end seconds). provenance: how it was produced
      (model, profile, prompt, budget, decoding, raw answer, thought, token counts,
      timings). error: set when this item failed (then the rest may be empty).
    """

    task: str
    source: str
    image_size: tuple[int, int]
    text: str = ""
    parsed: ParseResult | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task produced an answer."""
        return self.error is None

    @property
    def detections(self) -> sv.Detections:
        """Boxes as `sv.Detections` in pixels (empty when the task has none)."""
        if self.parsed is None:
            return sv.Detections.empty()
        return self.parsed.detections

    @property
    def points(self) -> PointsResult | None:
        """Points (pointing, GUI clicks), or None."""
        if self.parsed is not None and isinstance(self.parsed.result, PointsResult):
            return self.parsed.result
        click = self.extras.get("click")
        if click is not None:
            return PointsResult(np.array([click], dtype=np.float64), np.array([0]), [self.extras.get("label") or "click"])
        return None

    @property
    def regions(self) -> OCRResult | None:
        """OCR regions, or None."""
        if self.parsed is not None and isinstance(self.parsed.result, OCRResult):
            return self.parsed.result
        return None

    @property
    def diagnostics(self) -> dict[str, Any] | None:
        """The parse diagnostics as a dict (None for text tasks)."""
        return None if self.parsed is None else self.parsed.diagnostics.to_dict()

    def annotate(self, image: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
        """Draw the result on a copy of `image` (the displayed image) and return it."""
        scene = image
        if self.parsed is not None:
            scene = draw(scene, self.parsed)
        points = self.points
        if points is not None and (self.parsed is None or self.parsed.result is not points):
            scene = draw(scene, points)
        return scene

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of the whole result."""
        return {
            "task": self.task,
            "source": self.source,
            "image_size": list(self.image_size),
            "text": self.text,
            "parsed": None if self.parsed is None else self.parsed.to_dict(),
            "extras": self.extras,
            "provenance": self.provenance,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskResult":
        """Rebuild a result written by `to_dict`."""
        parsed = data.get("parsed")
        width, height = data["image_size"]
        return cls(
            task=data["task"],
            source=data["source"],
            image_size=(int(width), int(height)),
            text=data.get("text", ""),
            parsed=None if parsed is None else ParseResult.from_dict(parsed),
            extras=dict(data.get("extras") or {}),
            provenance=dict(data.get("provenance") or {}),
            error=data.get("error"),
        )

    def to_json(self, indent: int | None = None) -> str:
        """Return the result as a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "TaskResult":
        """Rebuild a result from `to_json` output."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class RunSettings:
    """Generation and parsing settings a caller may override per call (None: the task's default).

    max_new_tokens: the answer's token limit; with `thinking`, the thought gets
    `thought_tokens` more (None: DEFAULT_THOUGHT_TOKENS). structured: constrain the
    answer to the task's JSON schema (where the family answers in JSON). stop_on_repeat:
    stop an answer that repeats a whole item. duplicate_iou: drop an item with the same
    label as an earlier one and at least this IoU (None: keep copies). nms_iou: apply
    class-wise non-maximum suppression at this IoU (None: off).
    """

    budget: int | None = None
    max_new_tokens: int | None = None
    decoding: Decoding = field(default_factory=Decoding)
    thinking: bool = False
    logprobs: bool = True
    system: str | None = None
    structured: bool = True
    thought_tokens: int | None = None
    stop_on_repeat: bool = True
    duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU
    nms_iou: float | None = None


def build_request(
    spec: TaskSpec,
    profile: ModelProfile,
    options: Options,
    settings: RunSettings,
    image: Image.Image | None = None,
    video: VideoFrames | None = None,
) -> GenerationRequest:
    """Build the generation request for one task call.

    Takes the task, the model family, the task options (classes, question, ...), the
    settings and the media (one displayed image, or sampled video frames). Returns the
    request; log-probs are asked for only when the task parses structured items. With
    `settings.structured`, a task that declares its answer's shape gets the JSON schema
    built from it and the family's profile (a family that does not answer in JSON gets
    none, and the request says why). With thinking, the token limit is the answer's plus
    the thought's. Generation stops once a JSON answer is complete (`TaskSpec.stop_rule`).
    """
    budget = settings.budget
    if budget is None and profile.budgets:
        budget = spec.default_budget if spec.default_budget in profile.budgets else profile.default_budget
    if settings.system is not None:
        check_text_length(settings.system, "system prompt")
    max_new_tokens = settings.max_new_tokens or spec.max_new_tokens
    thought_tokens = None
    if settings.thinking:
        thought_tokens = settings.thought_tokens or DEFAULT_THOUGHT_TOKENS
        max_new_tokens += thought_tokens + 2  # the thought channel's opening and closing tokens
    schema, free_reason = None, ""
    if settings.structured and spec.answer is not None:
        plan = answer_schema(spec.answer, profile, spec.classes(options), allow_other=bool(options.get("allow_other")))
        schema, free_reason = plan.schema, plan.reason
    return GenerationRequest(
        prompt=spec.prompt(profile, options),
        images=[image] if image is not None else [],
        video=video,
        system=settings.system,
        budget=profile.check_budget(budget) if budget is not None else None,
        max_new_tokens=max_new_tokens,
        decoding=settings.decoding,
        thinking=settings.thinking,
        return_logprobs=settings.logprobs and spec.kind is not None,
        choices=tuple(spec.choices(options)) if spec.choices is not None else None,
        stop_when_json_closes=spec.stop_rule(profile),
        json_schema=schema,
        free_reason=free_reason,
        stop_on_repeat=settings.stop_on_repeat and spec.kind is not None,
        thought_tokens=thought_tokens,
    )


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
