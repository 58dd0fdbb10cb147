"""The Gradio demo: `build_app(vt)` turns a `Vistool` (any backend) into a `gr.Blocks` app.

Every tab is built by `_build_tab` from its declaration in `vistool.app.tabs`. Requests
go through one `DemoRunner`, which holds the model lock: one model, one call at a time;
the Gradio queue makes further users wait their turn instead of failing.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from vistool.api import Vistool
from vistool.app.tabs import TABS, Field, Options, TabSpec
from vistool.app.views import clock, json_view, result_rows, stats_line, summary, warnings_for
from vistool.errors import UnsupportedTaskError, VistoolError
from vistool.io.images import load_image
from vistool.io.video import VideoFrames, sample_video
from vistool.tasks import TASKS, TaskResult, check_task
from vistool.tasks.limits import MAX_CLASS_LIST_CHARS
from vistool.zoom.draw import draw_passes

logger = logging.getLogger(__name__)

# Where the example inputs live in a source checkout (absent from a wheel install).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# Images with more pixels are refused with a message (checked from the file header).
DEFAULT_MAX_PIXELS = 40_000_000
MAX_FRAMES = 32
KEEP_FILES_S = 3600  # how long the files of a request (result JSON, images) are kept
BUDGET_HINT = (
    "Image tokens the picture is turned into. Fewer is faster but coarser (captions, large objects); "
    "more is slower but sees small text and dense screens. Default for this task: {default}."
)
BUDGET_NOTES = {70: "fastest", 280: "balanced", 1120: "finest, slowest"}
TABLE_HEADERS = ["#", "kind", "label", "text", "x1", "y1", "x2", "y2", "confidence"]
OUTPUT_NAMES = ("visual", "answer", "stats", "table", "json", "download", "raw", "thought")
ZOOM_LABELS = {"tiles": "Tiles (every object, tile by tile)", "refine": "Refine (find the area, then zoom in)"}
ZOOM_HINT = ("Several model calls per image for small objects and 4K screens: tiles seen near full resolution, "
             "or a second look at the area the first answer names. The tiles / crops are framed on the image.")
READY = "Ready: upload an image (or pick an example) and press Run."
KEPT_SESSIONS = 512  # status lines kept, one per browser session (the oldest are dropped)


class DemoRunner:
    """Runs the demo's requests on one `Vistool`, one at a time.

    Takes the `Vistool`, the pixel limit for uploaded images and the folder where result
    JSON downloads are written (a new temporary folder when None).
    """

    def __init__(self, vt: Vistool, max_pixels: int = DEFAULT_MAX_PIXELS, download_dir: Path | None = None) -> None:
        self.vt = vt
        self.max_pixels = max_pixels
        self.download_dir = Path(download_dir or tempfile.mkdtemp(prefix="vistool-demo-"))
        self.download_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._status: OrderedDict[str, str] = OrderedDict()
        self._status_lock = threading.Lock()

    def status(self, session: str | None) -> str:
        """Return the status line of a session's last request (READY before its first)."""
        with self._status_lock:
            return self._status.get(session or "", READY)

    def _set_status(self, session: str | None, text: str) -> None:
        """Record a session's status line (kept until its next request)."""
        with self._status_lock:
            self._status[session or ""] = text
            self._status.move_to_end(session or "")
            while len(self._status) > KEPT_SESSIONS:
                self._status.popitem(last=False)

    def check_upload(self, spec: TabSpec, media: Any) -> str | None:
        """Check an upload as soon as it arrives; return why it cannot be used (one line,
        naming the file), or None when it is fine (or nothing was uploaded)."""
        path, name = _upload_path(media)
        if path is None:
            return None
        try:
            if spec.media == "video":
                sample_video(path, num_frames=1)
            else:
                load_image(path, max_pixels=self.max_pixels)
        except VistoolError as error:
            message = str(error).replace(path, name)
            logger.info("refused upload (%s): %s", spec.name, message)
            return message
        return None

    def defaults(self, spec: TabSpec, options: Options) -> tuple[int | None, int]:
        """Return the (budget, max new tokens) the task chosen by `options` uses by default;
        the budget is None when the model family has no budget setting."""
        task = TASKS[spec.task(options)]
        budgets = self.vt.profile.budgets
        budget = task.default_budget if task.default_budget in budgets else self.vt.profile.default_budget
        return (budget if budgets else None), task.max_new_tokens

    def run(self, spec: TabSpec, media: Any, values: Sequence[Any], session: str | None = None) -> list[Any]:
        """Run one tab request and return its outputs in `OUTPUT_NAMES` order.

        Takes the tab, the upload as Gradio sends it unprocessed (a file record with the
        path of the file in Gradio's upload cache, or None) and the raw values of the
        tab's fields followed by its settings (budget or frames, max new tokens,
        thinking and, optionally, structured generation). Raises `gr.Error` with a
        readable message for a missing or unreadable upload (not an image, too many
        pixels, not a video), an invalid option or setting, and a model failure, so the
        user sees it and the server carries on.
        `session` (Gradio's session hash) keys the status line `status(session)` shows:
        the error, or what was done, until the session's next request.
        """
        self._set_status(session, "Running...")
        try:
            outputs, seconds, notes = self._run(spec, media, values)
        except gr.Error as error:
            self._set_status(session, f"Error: {error.message}")
            raise
        self._set_status(session, " ".join([f"Done in {seconds:.1f} s.", *notes]))
        return outputs

    def _run(self, spec: TabSpec, media: Any, values: Sequence[Any]) -> tuple[list[Any], float, list[str]]:
        """Run one request; return (outputs, wall seconds, warnings); raise gr.Error (see `run`)."""
        options, settings = self._inputs(spec, values)
        try:  # a task the model family cannot run is refused before the upload is read or the model called
            check_task(spec.task(options), self.vt.profile)
        except UnsupportedTaskError as error:
            raise gr.Error(str(error), title="Not supported by this model") from error
        path, name = _upload_path(media)
        if path is None:
            raise gr.Error(f"Upload {'a video' if spec.media == 'video' else 'an image'} first, or pick an example.",
                           print_exception=False)
        started = time.perf_counter()
        clip: VideoFrames | None = None
        try:
            if spec.media == "video":
                frames = int(settings.get("frames", MAX_FRAMES))
                clip = sample_video(path, num_frames=frames, max_frames=max(1, min(frames, MAX_FRAMES)))
                source: Any = path
            else:
                source = replace(load_image(path, max_pixels=self.max_pixels), source=name)
            with self._lock:
                result = spec.run(self.vt, source, options, settings)
        except VistoolError as error:  # show the uploaded file's name, not its cache path
            message = str(error).replace(path, name)
            logger.info("refused request (%s): %s", spec.name, message)  # the user's mistake: one line, no traceback
            raise gr.Error(message, title="Cannot run this request", print_exception=False) from error
        except Exception as error:  # a model or backend failure must not take the app down
            logger.exception("demo request failed (%s)", spec.name)
            raise gr.Error(
                f"The model call failed: {type(error).__name__}: {error}. The app is still running; try again.",
                title="Model failure", print_exception=False,
            ) from error
        if not result.ok:
            logger.warning("model failure (%s): %s", spec.name, result.error)
            raise gr.Error(f"The model failed: {result.error}", title="Model failure", print_exception=False)
        notes = warnings_for(result)
        for note in notes:
            gr.Warning(note)
        visual, json_path = self._save(result, clip if clip is not None else source.image)
        rows = result_rows(result)
        outputs = [
            visual,
            summary(result),
            stats_line(result, time.perf_counter() - started),
            pd.DataFrame(rows) if rows else pd.DataFrame(columns=["#", "item"]),
            json_view(result),
            json_path,
            result.provenance.get("raw_answer") or result.text,
            result.provenance.get("thought") or "",
        ]
        return outputs, time.perf_counter() - started, notes

    @staticmethod
    def _inputs(spec: TabSpec, values: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check and split the raw input values into (options, settings); raise gr.Error
        for a choice that is not offered or a setting that is not a number."""
        names = [field.name for field in spec.fields]
        # After budget (or frames), max new tokens and thinking: the zoom toggle (tabs that zoom)
        # and the structured switch, each of which may be left out (older API clients).
        extra = len(values) - len(names) - 3
        if not 0 <= extra <= (2 if spec.zoom else 1):
            expected = len(names) + 3 + (2 if spec.zoom else 1)
            raise gr.Error(f"expected {expected} inputs after the {spec.media}, got {len(values)}", print_exception=False)
        options = dict(zip(names, values))
        for field in spec.fields:
            allowed = [value for _, value in field.choices]
            if field.kind == "radio" and options[field.name] not in allowed:
                raise gr.Error(f"{field.label}: {options[field.name]!r} is not one of {', '.join(allowed)}", print_exception=False)
        first, max_new_tokens, thinking = values[len(names) : len(names) + 3]
        zoom, structured = None, None
        for value in values[len(names) + 3 :]:  # the switch is a bool; the zoom is a mode name
            if isinstance(value, bool):
                structured = value
            else:
                zoom = value
        if zoom not in (None, "", "off", *spec.zoom):
            raise gr.Error(f"Zoom: {zoom!r} is not one of off, {', '.join(spec.zoom)}", print_exception=False)
        try:
            settings = {
                "frames" if spec.media == "video" else "budget": None if first in (None, "") else int(first),
                "max_new_tokens": None if max_new_tokens in (None, "") else int(max_new_tokens),
                "thinking": bool(thinking),
                "structured": structured,
            }
        except (TypeError, ValueError) as error:
            raise gr.Error(f"settings must be whole numbers: {error}", print_exception=False) from error
        if settings["max_new_tokens"] is not None and settings["max_new_tokens"] < 1:
            raise gr.Error("max new tokens must be at least 1", print_exception=False)
        if not 1 <= settings.get("frames", 1) <= MAX_FRAMES:
            raise gr.Error(f"frames must be between 1 and {MAX_FRAMES}", print_exception=False)
        if zoom not in (None, "", "off"):
            settings["zoom"] = zoom
        return options, {key: value for key, value in settings.items() if value is not None}

    def _save(self, result: TaskResult, media: Image.Image | VideoFrames) -> tuple[Any, str]:
        """Write this request's files into a new folder: the full result JSON, and the
        annotated image (PNG) or the sampled frames (JPEG, captioned with their timestamps,
        frames inside a located event marked). Returns (image path or gallery items, JSON
        path). Gradio gets paths rather than pictures: it caches a returned picture under
        the hash of its bytes and rewrites that file on every request, so two users with
        the same output could download a half-written file; files are copied safely."""
        self._prune()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = self.download_dir / f"{stamp}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        json_path = folder / f"vistool-{result.task}-{stamp}.json"
        json_path.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        if isinstance(media, Image.Image):
            annotated = folder / "annotated.png"
            result.annotate(draw_passes(media, result)).save(annotated)  # a zoom's tiles or crops framed first
            return str(annotated), str(json_path)
        start, end = result.extras.get("start_s"), result.extras.get("end_s")
        visual = []
        for index, (frame, stamp_s) in enumerate(zip(media.frames, media.timestamps)):
            inside = start is not None and end is not None and start <= stamp_s <= end
            path = folder / f"frame-{index:02d}.jpg"
            frame.save(path, quality=85)
            visual.append((str(path), f"{clock(stamp_s)}{'  * event' if inside else ''}"))
        return visual, str(json_path)

    def _prune(self) -> None:
        """Delete request folders older than `KEEP_FILES_S` (Gradio has its own copies)."""
        cutoff = time.time() - KEEP_FILES_S
        for folder in self.download_dir.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def _upload_path(record: Any) -> tuple[str | None, str]:
    """Return (path, original file name) of an unprocessed upload record; the path is
    None when nothing was uploaded."""
    if isinstance(record, dict) and record.get("path"):
        path = str(record["path"])
        return path, str(record.get("orig_name") or Path(path).name)
    return None, ""


def _model_line(vt: Vistool) -> str:
    """Return a Markdown line naming the model, its family profile and where it runs
    (locally on a device, or the server's address)."""
    backend = vt.backend
    parts = [f"model `{backend.model_id}`", f"family `{vt.profile.name}`"]
    base_url = getattr(backend, "base_url", None)
    device = getattr(backend, "device", None)
    if base_url:
        parts.append(f"served by `{base_url}`")
    elif device:
        dtype = str(getattr(backend, "dtype", "")).replace("torch.", "")
        parts.append(f"running locally on `{device}`" + (f" ({dtype})" if dtype else ""))
    return " · ".join(parts)


def _field(field: Field, tab: str) -> gr.components.Component:
    """Build the Gradio input for one declared field."""
    elem_id = f"{tab}-{field.name}"
    if field.kind == "radio":
        return gr.Radio(list(field.choices), value=field.default, label=field.label, info=field.info or None, elem_id=elem_id)
    return gr.Textbox(value=field.default, label=field.label, info=field.info or None, lines=1, elem_id=elem_id,
                      max_length=MAX_CLASS_LIST_CHARS)  # the browser stops a huge paste; the task checks the exact limit


def _settings_controls(spec: TabSpec, runner: DemoRunner) -> list[gr.components.Component]:
    """Build the settings row: the budget (images) or the frame count (video), max new
    tokens, thinking and structured generation; return the four components."""
    options = {field.name: field.default for field in spec.fields}
    budget, max_new_tokens = runner.defaults(spec, options)
    with gr.Row():
        if spec.media == "video":
            first = gr.Slider(1, MAX_FRAMES, value=MAX_FRAMES, step=1, label="Frames",
                              info="Frames sampled uniformly, 70 image tokens each: more is finer in time but slower.",
                              elem_id=f"{spec.name}-frames")
        else:
            budgets = [(f"{value} · {BUDGET_NOTES[value]}" if value in BUDGET_NOTES else str(value), value)
                       for value in runner.vt.profile.budgets]
            first = gr.Dropdown(budgets, value=budget, label="Image-token budget", visible=bool(budgets),
                                info=BUDGET_HINT.format(default=budget), elem_id=f"{spec.name}-budget")
        tokens = gr.Slider(1, 4096, value=max_new_tokens, step=1, label="Max new tokens",
                           info="Longest answer allowed; long lists of boxes need more.", elem_id=f"{spec.name}-max-tokens")
    with gr.Row():
        thinking = gr.Checkbox(value=runner.vt.settings.thinking, label="Thinking (reason before answering; slower)",
                               elem_id=f"{spec.name}-thinking")
        structured = gr.Checkbox(value=runner.vt.settings.structured, label="Structured (answer held to the task's JSON)",
                                 elem_id=f"{spec.name}-structured")
    if not spec.zoom:
        return [first, tokens, thinking, structured]
    choices = [("Off", "off")] + [(ZOOM_LABELS[mode], mode) for mode in spec.zoom]
    zoom = gr.Radio(choices, value="off", label="Zoom", info=ZOOM_HINT, elem_id=f"{spec.name}-zoom")
    return [first, tokens, thinking, zoom, structured]


def _outputs(spec: TabSpec) -> list[gr.components.Component]:
    """Build the output column; return its components in `OUTPUT_NAMES` order."""
    tab = spec.name
    if spec.media == "video":
        visual = gr.Gallery(label="Sampled frames (mm:ss)", columns=4, height=360, object_fit="contain",
                            elem_id=f"{tab}-visual")
    else:
        visual = gr.Image(label="Annotated image", type="filepath", interactive=False, height=360,
                          buttons=["download", "fullscreen"], elem_id=f"{tab}-visual")
    answer = gr.Textbox(label="Answer", lines=3, interactive=False, elem_id=f"{tab}-answer")
    stats = gr.Markdown(label="Tokens and timings", elem_id=f"{tab}-stats")
    table = gr.Dataframe(value=pd.DataFrame(columns=TABLE_HEADERS), label="Items (pixels of the original image)",
                         interactive=False, wrap=True, elem_id=f"{tab}-table")
    result_json = gr.JSON(label="Result", elem_id=f"{tab}-json")
    download = gr.File(label="Download the full result (JSON)", interactive=False, elem_id=f"{tab}-download")
    with gr.Accordion("Raw answer and thought", open=False, elem_id=f"{tab}-raw-accordion"):
        raw = gr.Textbox(label="Raw answer", lines=4, interactive=False, elem_id=f"{tab}-raw")
        thought = gr.Textbox(label="Thought", lines=4, interactive=False, elem_id=f"{tab}-thought")
    return [visual, answer, stats, table, result_json, download, raw, thought]


def _build_tab(spec: TabSpec, runner: DemoRunner, examples_dir: Path | None) -> None:
    """Build one tab from its declaration and wire its Run button (API name `/<tab>`)."""
    names = [field.name for field in spec.fields]
    with gr.Tab(spec.title, id=spec.name, elem_id=f"tab-{spec.name}"):
        gr.Markdown(spec.intro)
        try:
            check_task(spec.task({field.name: field.default for field in spec.fields}), runner.vt.profile)
        except UnsupportedTaskError as error:
            gr.Markdown(f"**Not available with this model:** {error}.", elem_id=f"{spec.name}-unsupported")
        with gr.Row():
            with gr.Column(scale=1):
                if spec.media == "video":
                    media = gr.Video(label="Video clip", sources=["upload"], include_audio=True, format=None, height=300,
                                     elem_id=f"{spec.name}-input")
                else:
                    media = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=300,
                                     elem_id=f"{spec.name}-input")
                fields = [_field(field, spec.name) for field in spec.fields]
                settings = _settings_controls(spec, runner)
                button = gr.Button("Run", variant="primary", elem_id=f"{spec.name}-run")
                status = gr.Textbox(value=READY, label="Status", interactive=False, lines=1, max_lines=4,
                                    elem_id=f"{spec.name}-status")
                rows = [[str(examples_dir / row[0]), *row[1:]] for row in spec.examples
                        if examples_dir is not None and (examples_dir / row[0]).is_file()]
                if rows:
                    gr.Examples(rows, inputs=[media, *fields], label="Examples", api_name=f"{spec.name}_example",
                                api_visibility="private")
            with gr.Column(scale=1):
                outputs = _outputs(spec)

        first_setting = "frames" if spec.media == "video" else "budget"

        def run(*arguments: Any) -> list[Any]:
            *values, request = arguments  # Gradio passes the gr.Request last (see the signature)
            return runner.run(spec, values[0], values[1:], session=getattr(request, "session_hash", None))

        # Name the API parameters after the inputs (gradio_client shows these names); the
        # last, a gr.Request, is filled in by Gradio and is not an API input.
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for name in (spec.media, *names, first_setting, "max_new_tokens", "thinking", *(["zoom"] if spec.zoom else []),
                          "structured")]
            + [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
        )
        run.__annotations__ = {"request": gr.Request}

        def show_status(request: gr.Request) -> str:
            return runner.status(getattr(request, "session_hash", None))

        def check_upload(media_record: Any, request: gr.Request) -> tuple[Any, str]:
            problem = runner.check_upload(spec, media_record)
            if problem is None:
                return gr.update(), READY if media_record is None else "Ready: press Run."
            gr.Warning(problem)
            return None, f"Error: {problem} Upload another file."

        # preprocess=False: the upload reaches `run` as Gradio's file record, and vistool's
        # own loader reads it, so a non-image or an oversized image gets a clear message.
        button.click(lambda: "Running...", outputs=status, queue=False, api_visibility="private")
        event = button.click(run, inputs=[media, *fields, *settings], outputs=outputs, api_name=spec.name,
                             preprocess=False, concurrency_limit=1, concurrency_id="model")
        # The status box keeps the outcome (the error message, or what was done) until the next run.
        event.success(show_status, outputs=status, queue=False, api_visibility="private")
        event.failure(show_status, outputs=status, queue=False, api_visibility="private")
        media.upload(check_upload, inputs=media, outputs=[media, status], preprocess=False, queue=False,
                     api_visibility="private")

        def update_defaults(*values: Any) -> list[Any]:
            budget, max_new_tokens = runner.defaults(spec, dict(zip(names, values)))
            tokens = gr.update(value=max_new_tokens)
            if spec.media == "video":
                return [tokens]
            return [gr.update(value=budget, info=BUDGET_HINT.format(default=budget)), tokens]

        targets = settings[1:2] if spec.media == "video" else settings[:2]
        for field, component in zip(spec.fields, fields):
            if field.kind == "radio":
                component.change(update_defaults, inputs=fields, outputs=targets, queue=False,
                                 api_name=f"{spec.name}_{field.name}_defaults", api_visibility="private")


def build_app(
    vt: Vistool,
    *,
    examples_dir: Path | None = EXAMPLES_DIR,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_queue: int = 32,
    tabs: tuple[TabSpec, ...] = TABS,
) -> gr.Blocks:
    """Build the demo around a `Vistool` (any backend).

    Takes the `Vistool`, the folder of example inputs (None or missing: no examples), the
    pixel limit for uploaded images, how many requests may wait in the queue, and the
    tabs to show. Returns the `gr.Blocks`, queued with one model call at a time; launch
    it with `.launch(server_name="127.0.0.1", ...)`. Each tab's Run button is the API
    endpoint `/<tab name>` (detect, point, ocr, caption, ask, gui, video).
    """
    runner = DemoRunner(vt, max_pixels=max_pixels)
    if examples_dir is not None and not Path(examples_dir).is_dir():
        logger.info("no example inputs at %s; tabs will have no examples", examples_dir)
        examples_dir = None
    with gr.Blocks(title="vistool demo", analytics_enabled=False, delete_cache=(KEEP_FILES_S, KEEP_FILES_S)) as demo:
        gr.Markdown(f"## vistool: detection, grounding, OCR and GUI parsing with vision-language models\n{_model_line(vt)}")
        with gr.Tabs():
            for spec in tabs:
                _build_tab(spec, runner, None if examples_dir is None else Path(examples_dir))
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    return demo
