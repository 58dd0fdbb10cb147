"""What every task shares: the declarative `TaskSpec`, the `TaskResult`, and the two steps
that turn a task into a generation request and a response into a result.

A task module declares one or more `TaskSpec`s: its prompt templates, default budget and
token limit, the answer kind it parses (boxes, points, OCR regions, or plain text), and
optionally a `finish` step for what is specific to it. Everything else (prompt choice per
model family, parsing, confidence from log-probs, provenance) happens here, once.
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
from vistool.postprocess import OCRResult, ParseResult, PointsResult, draw, parse
from vistool.profiles.base import ModelProfile
from vistool.runtime.types import Decoding, GenerationRequest, GenerationResponse
from vistool.tasks.confidence import item_confidences

Options = Mapping[str, Any]

# Limits on what a user's text may add to a prompt (checked before any image or model is
# touched). Past them a prompt is no longer a question but a memory bill: 10,000 class
# names made a 40k-token prompt; a 100 KB question tried to allocate 40 GB of attention.
MAX_TEXT_CHARS = 10_000  # a question, an instruction, an expression, a description, an event, a system prompt
MAX_CLASSES = 1_000  # class names in one detect prompt (more: split them over several calls)
MAX_CLASS_CHARS = 200  # one class name
MAX_CLASS_LIST_CHARS = 20_000  # all class names of one prompt together


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
    media: "image" or "video", the input the task takes.
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
    media: str = "image"

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
    """Generation settings a caller may override per call (None: the task's default)."""

    budget: int | None = None
    max_new_tokens: int | None = None
    decoding: Decoding = field(default_factory=Decoding)
    thinking: bool = False
    logprobs: bool = True
    system: str | None = None


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
    request; log-probs are asked for only when the task parses structured items.
    """
    budget = settings.budget
    if budget is None and profile.budgets:
        budget = spec.default_budget if spec.default_budget in profile.budgets else profile.default_budget
    if settings.system is not None:
        check_text_length(settings.system, "system prompt")
    return GenerationRequest(
        prompt=spec.prompt(profile, options),
        images=[image] if image is not None else [],
        video=video,
        system=settings.system,
        budget=profile.check_budget(budget) if budget is not None else None,
        max_new_tokens=settings.max_new_tokens or spec.max_new_tokens,
        decoding=settings.decoding,
        thinking=settings.thinking,
        return_logprobs=settings.logprobs and spec.kind is not None,
        choices=tuple(spec.choices(options)) if spec.choices is not None else None,
    )


def provenance(request: GenerationRequest, response: GenerationResponse, task: str) -> dict[str, Any]:
    """Return the record of how a result was produced: settings, prompt, answer, counts,
    and the size (W, H) the processor resized each image to (`image_sizes`; [] when unknown)."""
    return {
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


def interpret(
    spec: TaskSpec,
    profile: ModelProfile,
    options: Options,
    request: GenerationRequest,
    response: GenerationResponse,
    image_size: tuple[int, int],
    source: str,
) -> TaskResult:
    """Turn a backend response into the task's result.

    Parses structured answers in pixels of the displayed image (`image_size`, W x H),
    sets per-item confidence from the token log-probs when present, records provenance,
    and runs the task's `finish` step. A failed response gives a result with `error`,
    and so does an empty one (no text at all, e.g. a server's `content: null`): that is
    no answer, in every task and command (an empty list "[]" is an answer: nothing found).
    """
    result = TaskResult(
        task=spec.name,
        source=source,
        image_size=image_size,
        text=response.text,
        provenance=provenance(request, response, spec.name),
        error=response.error,
    )
    if not response.ok:
        return result
    if request.choices is not None:
        if response.choice_logprobs is None or len(response.choice_logprobs) != len(request.choices):
            result.error = "the backend returned no score for each choice"
            return result
        result.extras.update(choices=list(request.choices), choice_logprobs=list(response.choice_logprobs))
    elif not response.text.strip():  # a scored choice needs no text; anything else without text is no answer
        result.error = empty_answer_reason(response)
        return result
    if spec.kind is not None:
        resized = response.image_sizes[0] if response.image_sizes else None
        parsed = parse(
            response.text,
            image_size=image_size,
            profile=profile,
            kind=spec.kind,
            classes=spec.classes(options),
            resized_size=resized if profile.needs_resized_size else None,
        )
        if response.logprobs:
            scores = item_confidences(response.text, parsed.spans, response.logprobs)
            if scores and all(score is not None for score in scores):
                parsed.set_confidence(scores)
        result.parsed = parsed
    if spec.finish is not None:
        spec.finish(result, options)
    return result


def empty_answer_reason(response: GenerationResponse) -> str:
    """Say why a response with no answer text is empty, as far as it tells (the one wording everywhere)."""
    if response.finish_reason == "length":
        where = "while thinking" if response.thought else "before any answer"
        return f"empty answer: the token limit ({response.generated_tokens} tokens) was reached {where}; raise max_new_tokens"
    if response.thought:
        return "empty answer: the model only thought (its thought is in the provenance) and gave no answer"
    return "empty answer: the model returned no text"


def check_text_length(text: str, what: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Return `text` when it is at most `limit` characters; raise VistoolError naming `what` otherwise."""
    if len(text) > limit:
        raise VistoolError(f"the {what} is {len(text)} characters long; at most {limit} are accepted")
    return text


def required_text(options: Options, key: str, what: str) -> str:
    """Return the option `key` stripped; raise VistoolError("empty <what>: ...") when it is
    empty, and when it is longer than MAX_TEXT_CHARS."""
    value = str(options.get(key) or "").strip()
    if not value:
        raise VistoolError(f"empty {what}")
    return check_text_length(value, what.split(":")[0])


def split_list(value: str | Sequence[str] | None, what: str) -> list[str]:
    """Turn "a, b" or ["a", "b"] into a clean list of names; raise VistoolError when empty,
    or past MAX_CLASSES names, MAX_CLASS_CHARS per name or MAX_CLASS_LIST_CHARS in all."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise VistoolError(f"empty {what}: give at least one name")
    if len(names) > MAX_CLASSES:
        raise VistoolError(f"the {what} has {len(names)} names; at most {MAX_CLASSES} fit in one prompt "
                           "(split them over several calls, e.g. eval coco --chunk-size)")
    longest = max(names, key=len)
    if len(longest) > MAX_CLASS_CHARS:
        raise VistoolError(f"a name in the {what} is {len(longest)} characters long ({longest[:40]!r}...); "
                           f"at most {MAX_CLASS_CHARS} are accepted")
    total = sum(map(len, names))
    if total > MAX_CLASS_LIST_CHARS:
        raise VistoolError(f"the {what} is {total} characters long; at most {MAX_CLASS_LIST_CHARS} fit in one prompt")
    return names


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
