"""Task adapters: one module per task, each declaring its `TaskSpec`(s).

`check_task(task, profile, options)` is what every entry point calls before a model is
loaded: it refuses a task the family cannot run, with the list of those it can.
"""

from __future__ import annotations

from typing import Any

from vistool.errors import UnsupportedTaskError
from vistool.profiles.base import ModelProfile
from vistool.tasks.base import RunSettings, TaskResult, TaskSpec, build_request, interpret, interpret_many
from vistool.tasks.caption import CAPTION
from vistool.tasks.classify import CLASSIFY
from vistool.tasks.detect import DETECT
from vistool.tasks.ground import GROUND
from vistool.tasks.gui import GUI_ELEMENTS, GUI_GROUND
from vistool.tasks.gui_marks import GUI_MARK
from vistool.tasks.ocr import OCR_REGIONS, OCR_TEXT
from vistool.tasks.point import POINT
from vistool.tasks.region import REGION
from vistool.tasks.video import VIDEO_LOCATE, VIDEO_QA
from vistool.tasks.vqa import VQA

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (DETECT, GROUND, POINT, OCR_TEXT, OCR_REGIONS, CAPTION, VQA, GUI_ELEMENTS, GUI_GROUND, VIDEO_QA, VIDEO_LOCATE,
                 CLASSIFY, GUI_MARK, REGION)
}


def _runnable(spec: TaskSpec, profile: ModelProfile) -> str | None:
    """None when `profile` can run some variant of `spec`, else the reason of its default variant."""
    if any(spec.refusal(profile, variant) is None for variant in spec.prompts):
        return None
    return spec.refusal(profile, "default") or spec.refusal(profile, next(iter(spec.prompts)))


def supported_tasks(profile: ModelProfile) -> list[str]:
    """Return the names of the tasks `profile` can run (in at least one variant), in `TASKS` order."""
    return [name for name, spec in TASKS.items() if _runnable(spec, profile) is None]


def check_task(task: str | TaskSpec, profile: ModelProfile, options: dict[str, Any] | None = None) -> TaskSpec:
    """Refuse a task the family cannot run, before any model is loaded or any image read.

    Takes the task (name or spec), the family and, optionally, the task options (then
    the prompt is built once, which also checks them). Returns the spec. Raises
    UnsupportedTaskError naming the family, the task, the reason and the tasks the
    family can run, and VistoolError for invalid options.
    """
    spec = TASKS[task] if isinstance(task, str) else task
    reason = _runnable(spec, profile) if options is None else spec.refusal(profile, spec.variant(options))
    if reason is not None:
        runs = ", ".join(supported_tasks(profile)) or "none"
        raise UnsupportedTaskError(
            f"model family {profile.name!r} cannot run task {spec.name!r}: {reason} ({profile.name} runs: {runs})"
        )
    if options is not None:
        spec.prompt(profile, options)
    return spec


__all__ = ["TASKS", "RunSettings", "TaskResult", "TaskSpec", "build_request", "check_task", "interpret", "interpret_many", "supported_tasks"]
