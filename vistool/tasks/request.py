"""From a task call to a generation request: the per-call `RunSettings` and `build_request`
(prompt in the family's wording, budget, token limits with the thought's share, the
answer's JSON schema, when to stop)."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from vistool.io.video import VideoFrames
from vistool.postprocess.duplicates import DEFAULT_DUPLICATE_IOU
from vistool.profiles.base import ModelProfile
from vistool.runtime.types import Decoding, GenerationRequest
from vistool.structured import answer_schema
from vistool.tasks.limits import check_text_length
from vistool.tasks.spec import Options, TaskSpec

# With thinking on, the thought gets its own token budget on top of the answer's limit
# (Gemma 4's thoughts run to hundreds or thousands of tokens; an answer starved by its
# thought is no answer).
DEFAULT_THOUGHT_TOKENS = 2048


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


__all__ = ["DEFAULT_THOUGHT_TOKENS", "RunSettings", "build_request"]
