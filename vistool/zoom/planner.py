"""The planner: one task call on one image -> passes (tile / crop requests) -> one result.

A `ZoomJob` holds the passes of one image. `pending()` gives the passes whose requests
are ready (all tiles at once; refine one pass at a time, each built from the answer
before), `feed(pass, response)` hands a pass its answer, and once `done`, `result()`
returns the task's result in pixels of the whole image, with every pass (crop box,
prompt, answer, image tokens) and the cost in `provenance["zoom"]`. `run_jobs` drives a
list of jobs with any `generate` function, batching the ready passes of all jobs
together; the batch engine drives them through its answer cache instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from vistool.errors import VistoolError
from vistool.profiles.base import ModelProfile
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks import TASKS, RunSettings, TaskResult, TaskSpec, build_request, interpret
from vistool.zoom.compose import merge_tiles, zoom_provenance
from vistool.zoom.mapping import crop, shift_result
from vistool.zoom.refine import REFINE_TARGETS, refine_crop, step_scale, view_size
from vistool.zoom.settings import ZoomLike, ZoomSettings
from vistool.zoom.tiling import Box, TileGrid, seen_scale, tile_grid

# The zoom modes each task supports: tiles for tasks that find every instance, refine
# for tasks that look for one target.
ZOOM_MODES: dict[str, tuple[str, ...]] = {
    "detect": ("tiles",),
    "ground": ("tiles", "refine"),
    "point": ("tiles",),
    "ocr_regions": ("tiles",),
    "gui_elements": ("tiles",),
    "gui_ground": ("refine",),
}


def check_zoom(task: str, zoom: ZoomLike) -> ZoomSettings:
    """Return the zoom settings for `task`; raise VistoolError when the task has no such mode."""
    settings = ZoomSettings.parse(zoom)
    if settings.on and settings.mode not in ZOOM_MODES.get(task, ()):
        supported = [f"{name} ({', '.join(modes)})" for name, modes in ZOOM_MODES.items()]
        what = "no zoom" if task not in ZOOM_MODES else f"zoom {' or '.join(ZOOM_MODES[task])} only"
        raise VistoolError(f"zoom={settings.mode!r} does not apply to task {task!r} ({what}); zoom works for: {'; '.join(supported)}")
    return settings


@dataclass
class Pass:
    """One model call of a zoomed task.

    index: its position in the job; purpose: "tile", "whole" (the whole-image pass of
    tiles), "region" (refine: where is the target?) or "task" (refine: the task on the
    last crop); box: the crop in pixels of the whole image; spec/options: the task asked;
    request: the request (its image is the crop); response/result: the answer, and the
    result interpreted in the crop's pixels, once fed.
    """

    index: int
    purpose: str
    box: Box
    spec: TaskSpec
    options: dict[str, Any]
    request: GenerationRequest
    response: GenerationResponse | None = None
    result: TaskResult | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The crop's (width, height)."""
        return (self.box[2] - self.box[0], self.box[3] - self.box[1])


class ZoomJob:
    """The passes of one zoomed task call on one image (see the module doc).

    Takes the task, the model family, the task options, the generation settings, the
    displayed image (RGB, EXIF orientation applied), its source name and the zoom
    settings (mode "tiles" or "refine"). Raises VistoolError when the task does not
    support the mode.
    """

    def __init__(self, spec: TaskSpec, profile: ModelProfile, options: dict[str, Any], settings: RunSettings,
                 image: Image.Image, source: str, zoom: ZoomSettings) -> None:
        self.spec, self.profile, self.options, self.settings = spec, profile, dict(options), settings
        self.zoom = check_zoom(spec.name, zoom)
        if not self.zoom.on:
            raise VistoolError("a zoom job needs zoom 'tiles' or 'refine'")
        self.image, self.source = image, source
        self.size = (image.width, image.height)
        self.task_request = build_request(spec, profile, self.options, settings)
        self.budget = self.task_request.budget
        self.passes: list[Pass] = []
        self.grid: TileGrid | None = None
        self.failed: str | None = None
        self.finished = False
        if self.zoom.mode == "tiles":
            self._plan_tiles()
        else:
            self._plan_refine()

    # ------------------------------------------------------------------ planning
    def _add(self, purpose: str, box: Box, spec: TaskSpec | None = None, options: dict[str, Any] | None = None) -> Pass:
        """Add a pass on `box` asking `spec` (default: the task itself) and return it."""
        if spec is None or spec is self.spec:
            spec, options, request = self.spec, self.options, self.task_request
        else:  # the region question: the task's budget, its own token limit
            request = build_request(spec, self.profile, options or {}, replace(self.settings, budget=self.budget, max_new_tokens=None))
        step = Pass(len(self.passes), purpose, tuple(int(v) for v in box), spec, dict(options or {}), replace(request, images=[crop(self.image, box)]))
        self.passes.append(step)
        return step

    def _plan_tiles(self) -> None:
        """Every tile at once (and the whole image too, with `whole`)."""
        self.grid = tile_grid(self.size, self.profile, self.budget, self.zoom)
        for box in self.grid.boxes:
            self._add("tile", box)
        if self.zoom.whole and len(self.grid.boxes) > 1:
            self._add("whole", (0, 0, *self.size))

    def _plan_refine(self) -> None:
        """The first pass: the region question on the whole image (the task itself when
        the whole image is already seen at the wanted resolution)."""
        whole = (0, 0, *self.size)
        self.whole_scale = seen_scale(self.profile, self.size, self.budget)
        if self.whole_scale >= self.zoom.resolution:
            self._add("task", whole)
            return
        self._ask_region(whole)

    def _ask_region(self, box: Box) -> None:
        """Ask where the target is within `box` (the task itself when the family has no
        wording for the region question)."""
        target = REFINE_TARGETS[self.spec.name](self.options)
        region = TASKS["region"]
        try:
            region.prompt(self.profile, {"target": target})
        except VistoolError:
            self._add("region", box)
            return
        self._add("region", box, region, {"target": target})

    def _after_region(self, step: Pass) -> None:
        """Plan the next pass from a region answer: a narrower region question, or the task."""
        regions = 1 + sum(1 for other in self.passes[: step.index] if other.purpose == "region")
        found = step.result.detections if step.result is not None else None
        if found is None or len(found) == 0:
            self._add("task", step.box)  # no region named: ask the task on this view
            return
        x1, y1, x2, y2 = (float(v) for v in found.xyxy[0])
        region = (x1 + step.box[0], y1 + step.box[1], x2 + step.box[0], y2 + step.box[1])
        wanted = step_scale(self.whole_scale, self.zoom, regions)
        box = refine_crop(region, self.size, view_size(self.size, self.profile, self.budget, wanted), self.zoom.margin)
        narrower = (box[2] - box[0]) * (box[3] - box[1]) < step.size[0] * step.size[1]
        if regions < self.zoom.depth and narrower and seen_scale(self.profile, _size(box), self.budget) < self.zoom.resolution:
            self._ask_region(box)
        else:
            self._add("task", box if narrower else step.box)

    # ------------------------------------------------------------------ running
    def pending(self) -> list[Pass]:
        """The passes whose request is ready and not yet answered."""
        if self.done:
            return []
        return [step for step in self.passes if step.response is None]

    @property
    def done(self) -> bool:
        """True when every pass is answered (or one failed)."""
        return self.finished or self.failed is not None

    def feed(self, step: Pass, response: GenerationResponse) -> None:
        """Give a pass its answer; plan the next pass (refine) or finish."""
        step.response = response
        if not response.ok:
            self.failed = f"zoom {step.purpose} pass {step.index} on {list(step.box)}: {response.error}"
            return
        step.result = interpret(step.spec, self.profile, step.options, step.request, response, step.size, self.source, self.settings)
        if self.zoom.mode == "refine" and step.purpose == "region":
            self._after_region(step)
        if all(other.response is not None for other in self.passes):
            self.finished = True

    def result(self) -> TaskResult:
        """Return the task's result on the whole image (raises VistoolError before `done`)."""
        if not self.done:
            raise VistoolError("the zoom job has passes still waiting for answers")
        answered = [step for step in self.passes if step.result is not None]
        if self.failed is not None:
            result = TaskResult(task=self.spec.name, source=self.source, image_size=self.size, error=self.failed)
        elif self.zoom.mode == "tiles":
            result = merge_tiles(self.spec, self.profile, self.options, answered, self.size, self.zoom, self.budget)
        else:
            final = self.passes[-1]
            assert final.result is not None
            result = shift_result(final.result, final.box, self.size)
        result.provenance = zoom_provenance(
            self.passes, result.provenance, self.task_request, self.zoom,
            None if self.grid is None else self.grid.to_dict(), result.parsed, self.size,
        )
        return result


def _size(box: Box) -> tuple[int, int]:
    """The (width, height) of a box."""
    return (box[2] - box[0], box[3] - box[1])


def run_jobs(jobs: Sequence[ZoomJob], generate: Callable[[list[GenerationRequest]], list[GenerationResponse]]) -> None:
    """Answer every pass of every job: the ready passes of all jobs go to `generate`
    together, round after round, until every job is done."""
    while True:
        ready = [(job, step) for job in jobs for step in job.pending()]
        if not ready:
            return
        responses = generate([step.request for _, step in ready])
        if len(responses) != len(ready):
            raise VistoolError(f"the backend returned {len(responses)} answers for {len(ready)} requests")
        for (job, step), response in zip(ready, responses):
            job.feed(step, response)


__all__ = ["Pass", "ZOOM_MODES", "ZoomJob", "check_zoom", "run_jobs"]
