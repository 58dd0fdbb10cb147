"""The `vistool` command line.

Every command prints its result on stdout (JSON where it is structured); progress and
messages go to stderr. Usage errors (unknown option, missing argument, bad value) and
`VistoolError`s end in one line on stderr and exit code 2, so scripts can rely on it
(see `vistool.commandline.errors`). Option values that can be checked without a model
(image, --save, --budget, --device, --dtype) are checked before any model loads.
"""

from __future__ import annotations

import inspect
import json
import platform
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vistool.commandline.options import (
    COMMON_OPTIONS,
    DEFAULT_MODEL,
    ApiKeyEnvOption,
    BackendOption,
    BaseUrlOption,
    BudgetOption,
    DeviceOption,
    DtypeOption,
    ImageArgument,
    MaxTokensOption,
    ModelOption,
    ProfileOption,
    ProgressOption,
    RetriesOption,
    StructuredOption,
    ThinkingOption,
    ThoughtTokensOption,
    TimeoutOption,
    ZoomOption,
    check_classes,
    http_options,
)
from vistool.errors import VistoolError

app = typer.Typer(
    name="vistool",
    help="Grounding, OCR and GUI detection with open vision-language models (Gemma 4 first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print a one-line error on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command("make-tiny-model")
def make_tiny_model_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the tiny model to.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model).")] = 0,
    family: Annotated[
        str, typer.Option("--family", help="gemma4, qwen25vl, qwen3vl, paligemma2 or florence2.")
    ] = "gemma4",
) -> None:
    """Build a tiny random-weight checkpoint of a model family (offline, a few MB) to try the pipeline without a download."""
    from vistool.runtime.tiny import make_tiny_model

    try:
        path = make_tiny_model(directory, seed=seed, family=family)
    except OSError as exc:
        fail(f"cannot write the tiny model to {directory}: {exc.strerror or exc}")
    typer.echo(str(path))


@app.command("generate")
def generate_command(
    image: Annotated[str, typer.Argument(help="Image path or URL.")],
    prompt: Annotated[str, typer.Argument(help="The prompt text.")],
    model: ModelOption = DEFAULT_MODEL,
    budget: BudgetOption = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Maximum number of generated tokens.")] = 256,
    thinking: Annotated[bool, typer.Option("--thinking/--no-thinking", help="Let the model think first.")] = False,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole response as JSON.")] = False,
    progress: ProgressOption = None,
) -> None:
    """Run one prompt over one image with a local model and print the answer."""
    from vistool.commandline.progress import token_progress
    from vistool.io.images import load_image
    from vistool.profiles import resolve_profile
    from vistool.runtime.transformers_backend import TransformersBackend
    from vistool.runtime.types import GenerationRequest

    loaded = load_image(image, allow_urls=True)  # a URL the user typed
    family = resolve_profile(model, profile)
    if budget is not None:
        family.check_budget(budget)  # before the model loads
    backend = TransformersBackend(model, device=device, dtype=dtype, profile=family)
    request = GenerationRequest(
        prompt=prompt,
        images=[loaded.image],
        system=system,
        budget=budget,
        max_new_tokens=max_new_tokens,
        thinking=thinking,
    )
    with token_progress(backend, progress):
        response = backend.generate([request])[0]
    if not response.ok:
        fail(f"generation failed for {loaded.source}: {response.error}")
    if as_json:
        typer.echo(json.dumps(response.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(response.text)


# A command's task: its own options -> (TASKS name, task options), known before any model loads.
TaskOf = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def image_task(name: str, task: TaskOf) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(vt, image, **own_options, **settings)` as `vistool NAME IMAGE ...`.

    The command gets `func`'s own arguments and options plus the shared ones (model,
    profile, budget, max new tokens, thinking, --structured/--free, thought tokens,
    backend, base URL, device, --save). `task` names the task the options select. It
    loads the image first, then refuses a task the model family cannot run and checks the
    budget and a `zoom` option against that task (all before any model is loaded), runs
    the task, prints the result as JSON and, with --save, writes the annotated image (with
    the zoom's tiles or crops framed).
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func, include_extras=True)
        own = [
            parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
            for parameter in inspect.signature(func).parameters.values()
            if parameter.name not in ("vt", "settings")
        ]
        common = [
            inspect.Parameter(option, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
            for option, (annotation, default) in COMMON_OPTIONS.items()
        ]

        def command(**values: Any) -> None:
            shared = {option: values.pop(option) for option in COMMON_OPTIONS}
            _run_image_task(func, task, values, **shared)

        command.__signature__ = inspect.Signature(own + common)  # type: ignore[attr-defined]
        command.__doc__ = func.__doc__
        app.command(name)(command)
        return func

    return register


def _run_image_task(func: Callable[..., Any], task: TaskOf, own: dict[str, Any], *, model: str, profile: str | None,
                    budget: int | None, max_new_tokens: int | None, thinking: bool, structured: bool,
                    thought_tokens: int | None, backend: str, base_url: str | None, timeout: float | None,
                    retries: int | None, api_key_env: str | None, device: str | None, dtype: str | None,
                    save: Path | None, progress: bool | None) -> None:
    """Check the inputs before the model loads (the image, --save; the family, refusing a
    task it cannot run; the budget and zoom), then load the model, run with a token
    counter on stderr, print the result on stdout, then write the drawing."""
    from vistool.api import load
    from vistool.commandline.checks import check_save_path
    from vistool.commandline.progress import token_progress
    from vistool.commandline.view import result_json
    from vistool.io.images import load_image
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task
    from vistool.zoom import check_zoom

    loaded = load_image(own.pop("image"), allow_urls=True)  # a URL the user typed
    check_save_path(save)
    family = resolve_profile(model, profile, backend=backend)
    name, options = task(own)
    check_task(name, family, options)
    if budget is not None:
        family.check_budget(budget)
    if own.get("zoom") is not None:
        check_zoom(name, own["zoom"])
    vt = load(model, backend=backend, base_url=base_url, budget=budget, device=device, dtype=dtype, thinking=thinking,
              profile=family, structured=structured, thought_tokens=thought_tokens,
              **http_options(timeout, retries, api_key_env))
    with token_progress(vt.backend, progress):
        result = func(vt, loaded, **own, settings={"max_new_tokens": max_new_tokens})
    if not result.ok:
        fail(f"{loaded.source}: {result.error}")
    typer.echo(result_json(result))  # the answer is paid for: print it before anything else can fail
    sys.stdout.flush()
    if save is not None:
        from vistool.zoom.draw import draw_passes

        try:
            result.annotate(draw_passes(loaded.image, result)).save(save)
        except OSError as exc:
            fail(f"--save {save}: cannot write the drawing: {exc.strerror or exc} (the result is printed above)")


@image_task("detect", lambda own: ("detect", {"classes": own["classes"]}))
def detect_command(
    vt, image: ImageArgument, settings: dict,
    classes: Annotated[
        Optional[str],
        typer.Option("--classes", "-c", help="Comma-separated class names (default: all objects).", callback=check_classes),
    ] = None,
    zoom: ZoomOption = None,
):
    """Detect objects of the given classes (one prompt for all of them)."""
    return vt.detect(image, classes, zoom=zoom, **settings)


@image_task("ground", lambda own: ("ground", {"expression": own["expression"]}))
def ground_command(
    vt, image: ImageArgument, settings: dict,
    expression: Annotated[str, typer.Argument(help='What to find, e.g. "the red car on the left".')] = ...,
    zoom: ZoomOption = None,
):
    """Find the box(es) a referring expression names."""
    return vt.ground(image, expression, zoom=zoom, **settings)


@image_task("point", lambda own: ("point", {"description": own["description"]}))
def point_command(
    vt, image: ImageArgument, settings: dict,
    description: Annotated[str, typer.Argument(help="What to point at (and count).")] = ...,
    zoom: ZoomOption = None,
):
    """Point at every instance of a description and count them."""
    return vt.point(image, description, zoom=zoom, **settings)


@image_task(
    "ocr",
    lambda own: ("ocr_regions", {"granularity": "word" if own["words"] else "line"}) if own["regions"] else ("ocr", {}),
)
def ocr_command(
    vt, image: ImageArgument, settings: dict,
    regions: Annotated[bool, typer.Option("--regions", help="Text regions with boxes instead of plain text.")] = False,
    words: Annotated[bool, typer.Option("--words", help="With --regions: words instead of lines.")] = False,
    zoom: ZoomOption = None,
):
    """Read the text in an image (default budget 1120)."""
    return vt.ocr(image, regions=regions, granularity="word" if words else "line", zoom=zoom, **settings)


def _check_length(length: str) -> str:
    """Refuse an unknown caption length at parse time."""
    from vistool.tasks.caption import LENGTHS

    if length not in LENGTHS:
        raise typer.BadParameter(f"caption length must be one of {', '.join(LENGTHS)} (got {length!r})")
    return length


@image_task("caption", lambda own: ("caption", {"length": own["length"]}))
def caption_command(
    vt, image: ImageArgument, settings: dict,
    length: Annotated[str, typer.Option("--length", help="short, normal or detailed.", callback=_check_length)] = "normal",
):
    """Describe an image."""
    return vt.caption(image, length, **settings)


@image_task("ask", lambda own: ("vqa", {"question": own["question"]}))
def ask_command(
    vt, image: ImageArgument, settings: dict,
    question: Annotated[str, typer.Argument(help="The question.")] = ...,
):
    """Answer a question about an image."""
    return vt.ask(image, question, **settings)


def _gui_task(own: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task `vistool gui` runs first: grounding, or listing the elements (also the first
    step of --marks, which then picks a mark: the same families run both; a zoom applies to
    that listing, the mark is picked on the whole screenshot)."""
    if own["instruction"] is not None and not own["marks"]:
        return "gui_ground", {"instruction": own["instruction"]}
    return "gui_elements", {}


@image_task("gui", _gui_task)
def gui_command(
    vt, image: ImageArgument, settings: dict,
    instruction: Annotated[Optional[str], typer.Option("--instruction", "-i", help='e.g. "click the Submit button".')] = None,
    marks: Annotated[bool, typer.Option("--marks", help="With --instruction: set-of-marks (list the elements, number them on the screenshot, let the model pick a number).")] = False,
    zoom: ZoomOption = None,
):
    """List a screenshot's UI elements (each with its mark id), or with --instruction find where to click."""
    if marks and instruction is None:
        raise VistoolError("--marks needs --instruction (the listed elements always carry their mark id)")
    if instruction is not None:
        return vt.gui_ground(image, instruction, marks=marks, zoom=zoom, **settings)
    return vt.gui_elements(image, zoom=zoom, **settings)


@image_task("classify", lambda own: ("classify", {"labels": own["labels"]}))
def classify_command(
    vt, image: ImageArgument, settings: dict,
    labels: Annotated[str, typer.Option("--labels", "-l", help="Comma-separated labels to choose from.", callback=check_classes)] = ...,
):
    """Classify an image: a probability for each label (each label's token log-probability, renormalised)."""
    return vt.classify(image, labels, **settings)


@app.command("video")
def video_command(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[Optional[str], typer.Argument(help="The question about the video.")] = None,
    locate: Annotated[Optional[str], typer.Option("--locate", help="An event to find in time instead of a question.")] = None,
    frames: Annotated[int, typer.Option("--frames", min=1, max=32, help="Frames to sample uniformly (at most 32).")] = 32,
    fps: Annotated[Optional[float], typer.Option("--fps", min=0.001, help="Sample at this rate instead (capped by --frames).")] = None,
    audio: Annotated[bool, typer.Option("--audio", help="Let the model hear the clip's sound track too (Gemma 4 E2B/E4B; up to 30 s).")] = False,
    model: ModelOption = DEFAULT_MODEL,
    profile: ProfileOption = None,
    max_new_tokens: MaxTokensOption = None,
    thinking: ThinkingOption = False,
    backend: BackendOption = "transformers",
    base_url: BaseUrlOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    api_key_env: ApiKeyEnvOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    progress: ProgressOption = None,
) -> None:
    """Ask a question about a video, or find when an event happens."""
    from vistool.commandline.progress import token_progress
    from vistool.commandline.view import result_json
    from vistool.io.video import sample_video
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task

    family = resolve_profile(model, profile, backend=backend)
    check_task("video_locate" if locate else "video", family)  # before the file is read or a model loads
    sample_video(video, num_frames=1)  # fail fast on an unreadable file, before loading a model
    from vistool.api import load

    vt = load(model, backend=backend, base_url=base_url, device=device, dtype=dtype, thinking=thinking, profile=family,
              **http_options(timeout, retries, api_key_env))
    with token_progress(vt.backend, progress):
        result = vt.video(video, question, locate=locate, frames=frames, fps=fps, audio=audio, max_new_tokens=max_new_tokens)
    if not result.ok:
        fail(f"{video}: {result.error}")
    typer.echo(result_json(result))


@app.command("annotate")
def annotate_command(
    src: Annotated[str, typer.Argument(help="Images: a folder (recursive), a glob pattern, or a text file of paths.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (answer cache, results, exports).")],
    task: Annotated[str, typer.Option("--task", "-t", help="detect, ground, point, ocr, caption, ask, gui or classify.")] = "detect",
    classes: Annotated[Optional[str], typer.Option("--classes", "-c", help="detect: comma-separated class names (default: all objects); classify: the labels to choose from.")] = None,
    query: Annotated[Optional[str], typer.Option("--query", "-q", help="point: what to point at; ground: the expression; ask: the question; gui: the instruction.")] = None,
    length: Annotated[Optional[str], typer.Option("--length", help="caption: short, normal or detailed.")] = None,
    regions: Annotated[bool, typer.Option("--regions", help="ocr: text regions with boxes (exportable) instead of plain text.")] = False,
    words: Annotated[bool, typer.Option("--words", help="ocr --regions: words instead of lines.")] = False,
    formats: Annotated[Optional[list[str]], typer.Option("--format", "-f", help="coco, yolo, voc, jsonl, labelstudio, fiftyone (repeat or comma-separate; box tasks and classify default to coco; results.jsonl is always written).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=f"Hugging Face id or local model folder (default: {DEFAULT_MODEL}; with --rescore: the one model whose answers the cache holds).")] = None,
    profile: ProfileOption = None,
    budget: BudgetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Images per model call (answers are saved as each micro-batch finishes). Default: four of the local model's batches for the budget (at most 64), 8 for a server.")] = None,
    max_new_tokens: MaxTokensOption = None,
    thinking: ThinkingOption = False,
    structured: StructuredOption = True,
    thought_tokens: ThoughtTokensOption = None,
    backend: BackendOption = "transformers",
    base_url: BaseUrlOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    api_key_env: ApiKeyEnvOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    rescore: Annotated[bool, typer.Option("--rescore", help="Rebuild results and exports from the answer cache, without running the model.")] = False,
    draw: Annotated[bool, typer.Option("--draw", help="Also write annotated copies of the images to OUT/draw.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Only the first N images (sorted by path).")] = None,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Refuse images with more pixels than this (default 100 million).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Image-reading threads running ahead of the model.")] = 4,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    engine: Annotated[str, typer.Option("--engine", help="local (one process) or ray (Ray Data: pip install 'vistool[ray]'; see docs/ray.md).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="--engine ray: an existing cluster (auto, ray://head:10001). Default: a local Ray instance for the run.")] = None,
    ray_actors: Annotated[Optional[int], typer.Option("--ray-actors", min=1, help="--engine ray: model actors (default: one per GPU, one without GPUs, one per --base-url server).")] = None,
    ray_gpus_per_actor: Annotated[Optional[float], typer.Option("--ray-gpus-per-actor", min=0, help="--engine ray: GPUs per model actor (default 1 when there are GPUs; 0.5: two actors per GPU).")] = None,
    replay_answers: Annotated[Optional[Path], typer.Option("--replay-answers", hidden=True, help="With --backend replay: answers file (tests).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="--format fiftyone: the FiftyOne dataset to build or update (default vistool-<OUT folder name>).")] = None,
    zoom: ZoomOption = None,
) -> None:
    """Annotate many images with one task, resumably; export COCO / YOLO / VOC / JSONL.

    Every answer is cached in OUT/answers.jsonl: after a crash or Ctrl-C, run the same command again and only the missing images are processed; change a setting and only what it affects is re-run. Failed images are listed with their reason in OUT/failures.jsonl.

    The model loads only when an answer is missing from the cache. No run replaces the exports in OUT with emptier ones: when images that have a result there would lose it, the exports are kept and the run says why.

    Exit codes: 0 every image annotated; 1 finished, but some images failed, an export could not be written or the exports were kept; 2 usage or setup error (bad option, no images, model cannot load, nothing cached to re-score, OUT in use or not writable); 130 interrupted, 143 terminated (re-run to resume).
    """
    from vistool.batch.annotate import AnnotateConfig, run_cli

    # Every parameter of this function is a field of AnnotateConfig, by the same name.
    config = AnnotateConfig(**{name: value for name, value in locals().items() if name in AnnotateConfig.__dataclass_fields__})
    raise typer.Exit(run_cli(config))


@app.command("demo")
def demo_command(
    model: ModelOption = DEFAULT_MODEL,
    profile: ProfileOption = None,
    backend: BackendOption = "transformers",
    base_url: BaseUrlOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    api_key_env: ApiKeyEnvOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 7860,
    share: Annotated[bool, typer.Option("--share", help="Ask Gradio for a public share link.")] = False,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Use a tiny random model (noise answers) to try the UI offline; of the --profile family if given.")] = False,
    structured: StructuredOption = True,
) -> None:
    """Serve the Gradio demo app (the same as `python demos/app.py`)."""
    from vistool.app import serve

    serve(model, backend=backend, base_url=base_url, host=host, port=port, share=share, device=device, dtype=dtype,
          tiny=tiny, profile=profile, structured=structured, **http_options(timeout, retries, api_key_env))


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def eval_command(ctx: typer.Context) -> None:
    """Evaluate on a benchmark (coco, screenspot, ocr, refexp), or score a predictions file (score).

    `vistool eval --help` lists the benchmarks, `vistool eval BENCHMARK --help` their options.
    """
    if ctx.args[:1] == ["score"]:  # scoring a file needs no model: skip the heavy imports
        from vistool.evaluation.score import main as score_main

        raise typer.Exit(score_main(list(ctx.args[1:])))
    from vistool.evaluation.run import main as run_eval

    raise typer.Exit(run_eval(list(ctx.args)))


@app.command("info")
def info_command() -> None:
    """Print versions of vistool and its main dependencies, and the device found."""
    import importlib.metadata as metadata

    import torch

    from vistool import __version__
    from vistool.runtime.transformers_backend import pick_device_and_dtype

    versions = {"vistool": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "transformers", "supervision", "pillow", "decord", "gradio", "pycocotools"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    device, dtype = pick_device_and_dtype()
    info = {
        "versions": versions,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "default_model": DEFAULT_MODEL,
    }
    typer.echo(json.dumps(info, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv` (default: sys.argv[1:]); return the exit code.

    Usage errors (unknown option, missing argument, bad value) give one line and 2, as
    click does; a `VistoolError` one line and 2; Ctrl-C 130, SIGTERM 143; a bug one line
    and 1 (see `vistool.commandline.errors`).
    """
    from vistool.commandline.errors import run

    return run(app, argv)


if __name__ == "__main__":
    sys.exit(main())
