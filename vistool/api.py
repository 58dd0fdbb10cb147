"""The public Python API: `vistool.load(...)` and the `Vistool` object's task methods.

    import vistool
    vt = vistool.load("google/gemma-4-E2B-it")
    result = vt.detect("street.jpg", ["bicycle", "person"])
    result.detections          # sv.Detections in pixels of the displayed image
    result.annotate(image)     # drawn copy
    result.to_json()

Every task method takes one image (returns one `TaskResult`) or a list (returns a list,
generated in batches). In a list, an image that cannot be read gives a result with
`error` set instead of stopping the others; a single bad image raises `ImageLoadError`.

Box, point and GUI tasks take `zoom=` ("off", "tiles", "refine", or "tiles:tile=1024,..."
see `vistool.zoom.ZoomSettings`): several model calls per image, for small objects,
dense scenes and 4K screens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vistool.errors import RequestError, VistoolError
from vistool.io.images import ImageInput, LoadedImage, load_image
from vistool.io.video import sample_video
from vistool.postprocess.duplicates import DEFAULT_DUPLICATE_IOU
from vistool.profiles import ModelProfile, get_profile, resolve_profile
from vistool.runtime.backend import Backend, answer_requests
from vistool.runtime.types import Decoding, GenerationRequest
from vistool.tasks import TASKS, RunSettings, TaskResult, TaskSpec, build_request, check_task, interpret, interpret_many
from vistool.zoom import ZOOM_MODES, ZoomJob, ZoomLike, ZoomSettings, check_zoom, run_jobs

DEFAULT_MODEL = "google/gemma-4-E2B-it"


def load(
    model: str = DEFAULT_MODEL,
    *,
    backend: str = "transformers",
    base_url: str | Sequence[str] | None = None,
    budget: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    profile: str | ModelProfile | None = None,
    thinking: bool = False,
    max_new_tokens: int | None = None,
    max_pixels: int | None = None,
    zoom: ZoomLike = None,
    lazy: bool = False,
    allow_urls: bool = False,
    structured: bool = True,
    thought_tokens: int | None = None,
    **backend_options: Any,
) -> "Vistool":
    """Load a model and return a `Vistool` ready to run tasks.

    Takes a Hugging Face id or local folder (or, with backend="openai", the served model
    name and the server's `base_url`), an optional default image-token budget (None: each
    task's own default), device/dtype for local runs, the micro-batch size (None: a
    default per budget and device), the model family profile (a name or record; when
    None, read from the checkpoint's config.json, the name only as a fallback: see
    `vistool.profiles.resolve_profile`), whether to think first, a default token limit
    (None: each task's own), the pixel limit for input images, the default zoom (applied
    to the tasks that support its mode), `lazy` (load the weights on the first call
    instead of now, so that a task the family cannot run is refused without loading
    them; the backend is a picklable `DeferredBackend`, and with the Ray engine,
    vistool.engines, each worker builds its own), whether image arguments may be http(s)
    URLs to fetch (`allow_urls`, off by default), whether to constrain answers to their
    JSON schema (`structured`, default True: on the tiny random model every structured
    task's answers validate with it and none without, see README), the thought's token
    budget with thinking (None: 2048) and further backend options (for "openai":
    timeout=, retries=, api_key_env=, max_response_bytes=, ...). Several server
    addresses (a list, or comma-separated) spread requests over them. Raises
    ModelLoadError when the model cannot be loaded, UnknownFamilyError for a checkpoint
    of an unknown architecture.
    """
    from vistool.runtime.deferred import BackendRecipe, DeferredBackend
    from vistool.runtime.pool import split_base_urls

    family = resolve_profile(model, profile, backend=backend, revision=backend_options.get("revision"))
    if budget is not None:
        family.check_budget(budget)  # before anything is loaded
    _check_prompt_format(family, thinking, None)
    recipe = BackendRecipe(model, backend, tuple(split_base_urls(base_url)), device, dtype, batch_size, family.name,
                           dict(backend_options))
    runner: Backend = DeferredBackend(recipe) if lazy else recipe.build()
    return Vistool(
        runner,
        budget=budget,
        thinking=thinking,
        max_new_tokens=max_new_tokens,
        max_pixels=max_pixels,
        zoom=zoom,
        allow_urls=allow_urls,
        structured=structured,
        thought_tokens=thought_tokens,
    )


class Vistool:
    """Task methods over one backend.

    Takes the backend, and defaults for every call: image-token budget (None: the task's
    default), max new tokens (None: the task's), decoding (greedy), thinking, whether to
    ask for log-probs (they give detections a confidence), the pixel limit for images,
    the zoom (`vistool.zoom.ZoomSettings` or its text; a task whose zoom modes do not
    include it runs unzoomed, while a per-call `zoom=` it does not support is an error),
    whether a string image may be an http(s) URL to fetch (`allow_urls`; off, so that
    user strings passed through cannot make the application fetch from its network),
    structured generation (on by default), the thought's token budget, and the
    duplicate and NMS thresholds (see `RunSettings`).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        budget: int | None = None,
        max_new_tokens: int | None = None,
        decoding: Decoding | None = None,
        thinking: bool = False,
        logprobs: bool = True,
        max_pixels: int | None = None,
        zoom: ZoomLike = None,
        allow_urls: bool = False,
        structured: bool = True,
        thought_tokens: int | None = None,
        duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
        nms_iou: float | None = None,
    ) -> None:
        self.backend = backend
        self.profile = get_profile(backend.profile_name)
        self.settings = RunSettings(
            budget=self.profile.check_budget(budget) if budget is not None else None,
            max_new_tokens=max_new_tokens,
            decoding=decoding or Decoding(),
            thinking=thinking,
            logprobs=logprobs,
            structured=structured,
            thought_tokens=thought_tokens,
            duplicate_iou=duplicate_iou,
            nms_iou=nms_iou,
        )
        self.max_pixels = max_pixels
        self.zoom = ZoomSettings.parse(zoom)
        self.allow_urls = allow_urls

    # ------------------------------------------------------------------ engine
    def zoom_for(self, task: str, zoom: ZoomLike = None) -> ZoomSettings:
        """Return the zoom a call of `task` runs with: the per-call `zoom` (checked: an
        unsupported mode raises VistoolError), else this object's default where the task
        supports its mode, else off."""
        if zoom is not None:
            return check_zoom(task, zoom)
        if self.zoom.on and self.zoom.mode in ZOOM_MODES.get(task, ()):
            return self.zoom
        return self.zoom.with_mode("off")

    def _settings(self, overrides: dict[str, Any]) -> RunSettings:
        """Return this object's settings with the non-None per-call overrides applied.

        `duplicate_iou` and `nms_iou` may also be set to False to turn them off for a call.
        """
        unknown = set(overrides) - set(RunSettings.__dataclass_fields__)
        if unknown:
            raise VistoolError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {key: value for key, value in overrides.items() if value is not None}
        for key in ("duplicate_iou", "nms_iou"):
            if values.get(key) is False:
                values[key] = None
        settings = replace(self.settings, **values)
        if settings.budget is not None:
            self.profile.check_budget(settings.budget)
        _check_prompt_format(self.profile, settings.thinking, settings.system)
        return settings

    def run(
        self,
        task: str | TaskSpec,
        images: ImageInput | Sequence[ImageInput],
        options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> TaskResult | list[TaskResult]:
        """Run a task (name or spec) over one image or a list of images.

        Takes the task, the image(s) (anything `load_image` accepts), the task options
        (e.g. {"classes": [...]}) and per-call settings (budget, max_new_tokens, decoding,
        thinking, logprobs, system, zoom, structured, thought_tokens, stop_on_repeat,
        duplicate_iou, nms_iou). Returns one result, or a list in input order.
        """
        spec = TASKS[task] if isinstance(task, str) else task
        options = dict(options or {})
        zoom = self.zoom_for(spec.name, settings.pop("zoom", None))
        run_settings = self._settings(settings)
        single = not isinstance(images, (list, tuple))
        inputs = [images] if single else list(images)
        check_task(spec, self.profile, options)  # refuse the task, or bad options, before touching any image
        loaded: list[LoadedImage | TaskResult] = []
        for item in inputs:
            try:
                loaded.append(load_image(item, max_pixels=self.max_pixels, allow_urls=self.allow_urls))
            except VistoolError as error:
                if single:
                    raise
                loaded.append(TaskResult(task=spec.name, source=_describe(item), image_size=(0, 0), error=str(error)))
        pending = [(index, item) for index, item in enumerate(loaded) if isinstance(item, LoadedImage)]
        results: list[TaskResult] = [item for item in loaded]  # type: ignore[misc]
        if zoom.on:
            jobs: list[tuple[int, ZoomJob]] = []
            for index, image in pending:
                try:  # e.g. fixed tiles that would cut this image into more than max_tiles
                    jobs.append((index, ZoomJob(spec, self.profile, options, run_settings, image.image, image.source, zoom)))
                except VistoolError as error:
                    if single:
                        raise
                    results[index] = TaskResult(task=spec.name, source=image.source, image_size=image.size, error=str(error))
            run_jobs([job for _, job in jobs], lambda batch: answer_requests(self.backend, batch))
            for index, job in jobs:
                results[index] = job.result()
            return results[0] if single else results
        requests = [build_request(spec, self.profile, options, run_settings, image=item.image) for _, item in pending]
        responses = answer_requests(self.backend, requests) if requests else []
        images_done = [image for _, image in pending]
        interpreted = interpret_many(
            spec, self.profile, [options] * len(requests), requests, responses,
            [image.size for image in images_done], [image.source for image in images_done], [run_settings] * len(requests),
        )
        for (index, _), result in zip(pending, interpreted):
            results[index] = result
        return results[0] if single else results

    # ------------------------------------------------------------------- tasks
    def detect(
        self, images: Any, classes: str | Sequence[str] | None = None, *, allow_other: bool = False, **settings: Any
    ) -> Any:
        """Detect the given classes (one prompt for all; None: all objects). Returns boxes.

        With structured generation a label must be one of the classes; `allow_other=True`
        also offers "other" (kept as an unknown label) for objects outside them.
        """
        if classes is not None and not isinstance(classes, str) and len(classes) == 0:
            raise VistoolError("empty class list: give at least one class name, or None for all objects")
        if isinstance(classes, str) and not classes.strip():
            raise VistoolError("empty class list: give at least one class name, or None for all objects")
        options: dict[str, Any] = {"classes": classes}
        if allow_other:
            options["allow_other"] = True
        return self.run("detect", images, options, **settings)

    def ground(self, images: Any, expression: str, **settings: Any) -> Any:
        """Find the box(es) a referring expression names."""
        return self.run("ground", images, {"expression": expression}, **settings)

    def point(self, images: Any, description: str, **settings: Any) -> Any:
        """Point at every instance of `description`; `extras["count"]` says how many."""
        return self.run("point", images, {"description": description}, **settings)

    def ocr(self, images: Any, regions: bool = False, granularity: str = "line", **settings: Any) -> Any:
        """Read text: plain text in reading order, or regions (lines or words) with boxes."""
        if regions:
            return self.run("ocr_regions", images, {"granularity": granularity}, **settings)
        return self.run("ocr", images, {}, **settings)

    def caption(self, images: Any, length: str = "normal", **settings: Any) -> Any:
        """Describe the image: length "short", "normal" or "detailed"."""
        return self.run("caption", images, {"length": length}, **settings)

    def ask(self, images: Any, question: str, **settings: Any) -> Any:
        """Answer a free question about the image."""
        return self.run("vqa", images, {"question": question}, **settings)

    def gui_elements(self, images: Any, **settings: Any) -> Any:
        """List a screenshot's elements: type, visible text, box, interactive."""
        return self.run("gui_elements", images, {}, **settings)

    def gui_ground(self, images: Any, instruction: str, *, marks: bool = False,
                   elements: Sequence[dict] | None = None, **settings: Any) -> Any:
        """Find the element to act on for an instruction: its box and click point.

        With `marks=True` (set-of-marks), the screenshot's elements (`elements`, else
        found first with `gui_elements`) are drawn as numbered marks, the model picks a
        mark id on that marked image, and the id is mapped back to the element's box and
        click (its centre): `extras` mark, box, label, click, element and elements.
        With marks, `zoom="tiles"` lists the elements tile by tile (the mark is still
        picked on the whole marked screenshot); refine does not combine with marks.
        """
        if not marks:
            return self.run("gui_ground", images, {"instruction": instruction}, **settings)
        from vistool.postprocess.marks import draw_marks

        zoom = settings.pop("zoom", None)
        if zoom is not None and ZoomSettings.parse(zoom).mode == "refine":
            raise VistoolError("zoom='refine' does not combine with marks=True (the model picks a mark on the whole "
                               "screenshot); zoom='tiles' lists the elements tile by tile")

        single = not isinstance(images, (list, tuple))
        results = []
        for item in [images] if single else list(images):
            try:
                loaded = load_image(item, max_pixels=self.max_pixels, allow_urls=self.allow_urls)
            except VistoolError as error:
                if single:
                    raise
                results.append(TaskResult(task="gui_mark", source=_describe(item), image_size=(0, 0), error=str(error)))
                continue
            found = elements
            if found is None:
                listed = self.gui_elements(loaded, zoom=zoom, **settings)
                if not listed.ok or not listed.extras.get("elements"):
                    results.append(replace(listed, task="gui_mark", error=listed.error or "no user-interface elements found to mark"))
                    continue
                found = listed.extras["elements"]
            marked = LoadedImage(draw_marks(loaded.image, found), loaded.width, loaded.height, loaded.source)
            results.append(self.run("gui_mark", marked, {"instruction": instruction, "elements": list(found)}, **settings))
        return results[0] if single else results

    def classify(self, images: Any, labels: str | Sequence[str], **settings: Any) -> Any:
        """Choose each image's label from `labels`, with a probability for every label.

        Each label is scored as the model's whole answer (its token log-probability; one
        forward pass over the prompt and one over all the labels, on backends that can
        score: the local one). Returns results with `extras` labels, probabilities (sum
        to 1), logprobs, label (the most probable), confidence and coverage.
        """
        return self.run("classify", images, {"labels": labels}, **settings)

    def video(
        self,
        path: str | Path,
        question: str | None = None,
        *,
        locate: str | None = None,
        frames: int = 32,
        fps: float | None = None,
        audio: bool = False,
        **settings: Any,
    ) -> TaskResult:
        """Ask about a video (frames sampled with their timestamps), or with `locate=` find
        when an event happens (`extras["start_s"]`, `extras["end_s"]`).

        Takes the video path, the question (or the event to locate), and how to sample:
        `frames` uniformly (at most 32) or `fps`, and whether the model also hears the
        clip's sound track (`audio=True`: up to the family's limit, 30 s for Gemma 4, from
        the start; families and models without audio refuse). Returns one result; the
        sampled frames' timestamps are in `extras["timestamps"]`, the seconds of audio
        heard in `extras["audio_seconds"]`.
        """
        if (question is None) == (locate is None):
            raise VistoolError("give a question, or an event with locate=, (one of the two)")
        spec = TASKS["video_locate" if locate else "video"]
        check_task(spec, self.profile, {"event": locate} if locate else {"question": question})
        sound = self._audio_of(path) if audio else None
        decode_size = getattr(self.backend, "video_frame_size", None)  # frames decoded near the model's size
        clip = sample_video(path, num_frames=frames, fps=fps, max_frames=max(1, min(frames, 32)), decode_size=decode_size)
        options = {"event": locate, "duration": clip.duration} if locate else {"question": question}
        run_settings = self._settings(settings)
        request = build_request(spec, self.profile, options, run_settings, video=clip)
        request = replace(request, budget=self.profile.video_budget, audio=sound)  # frames use the family's video budget
        response = self.backend.generate([request])[0]
        result = interpret(spec, self.profile, options, request, response, clip.size, clip.source, run_settings)
        result.extras["timestamps"] = list(clip.timestamps)
        if sound is not None:
            result.extras.update(audio_seconds=sound.duration, audio_clipped=sound.clipped)
        return result

    def _audio_of(self, path: str | Path):
        """Read a video's sound track, up to the family's limit; refuse clearly when the
        family or the model does not hear."""
        from vistool.io.audio import read_audio

        if self.profile.audio_seconds is None:
            raise VistoolError(f"model family {self.profile.name!r} takes no audio (use audio=False)")
        if not getattr(self.backend, "accepts_audio", False):
            raise VistoolError(
                f"{self.backend.model_id!r} on the {type(self.backend).__name__} cannot hear audio "
                "(Gemma 4 E2B/E4B on the local transformers backend do; 26B and 31B have no audio encoder)"
            )
        return read_audio(path, max_seconds=self.profile.audio_seconds)

    def generate(self, requests: Sequence[GenerationRequest]):
        """Pass raw generation requests to the backend (for prompts of your own)."""
        return self.backend.generate(requests)


def _check_prompt_format(profile: ModelProfile, thinking: bool, system: str | None) -> None:
    """Refuse thinking or a system prompt for a family whose prompt is a plain task prefix."""
    if profile.prompt_format.chat or not (thinking or system):
        return
    what = "thinking" if thinking else "a system prompt"
    raise RequestError(f"model family {profile.name!r} takes a plain task prompt (no chat template), so it cannot take {what}")


def _describe(item: Any) -> str:
    """A short name for an input that failed to load."""
    if isinstance(item, (str, Path)):
        return str(item)
    return f"<{type(item).__name__}>"
