"""The declarative `TaskSpec`: what a task module declares, and the prompt it gives a model family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vistool.errors import UnsupportedTaskError, VistoolError
from vistool.profiles.base import ModelProfile
from vistool.structured import AnswerShape
from vistool.tasks.result import TaskResult

Options = Mapping[str, Any]


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
    finish: Callable[[TaskResult, Options], None] | None = None
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


__all__ = ["Options", "TaskSpec"]
