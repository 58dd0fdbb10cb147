"""The `vistool` command line.

Every command prints its result on stdout (JSON where it is structured) and turns a
`VistoolError` into one line on stderr and exit code 2, so scripts can rely on it.
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

from vistool.errors import VistoolError

app = typer.Typer(
    name="vistool",
    help="Grounding, OCR and GUI detection with open vision-language models (Gemma 4 first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_MODEL = "google/gemma-4-E2B-it"

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Hugging Face id or local model folder.")]
ProfileOption = Annotated[
    Optional[str],
    typer.Option(
        "--profile",
        help="Model family: gemma4, gemini, qwen3vl, qwen25vl, paligemma2, florence2 "
        "(default: read from the checkpoint's config.json, else guessed from the name).",
    ),
]
BudgetOption = Annotated[
    Optional[int], typer.Option("--budget", "-b", help="Image-token budget (Gemma 4: 70, 140, 280, 560, 1120).")
]
DeviceOption = Annotated[Optional[str], typer.Option(help="cuda, cuda:N, mps or cpu (default: best available).")]


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

    path = make_tiny_model(directory, seed=seed, family=family)
    typer.echo(str(path))


@app.command("generate")
def generate_command(
    image: Annotated[str, typer.Argument(help="Image path or URL.")],
    prompt: Annotated[str, typer.Argument(help="The prompt text.")],
    model: ModelOption = DEFAULT_MODEL,
    budget: BudgetOption = None,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum number of generated tokens.")] = 256,
    thinking: Annotated[bool, typer.Option("--thinking/--no-thinking", help="Let the model think first.")] = False,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    device: DeviceOption = None,
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole response as JSON.")] = False,
) -> None:
    """Run one prompt over one image and print the answer."""
    from vistool.io.images import load_image
    from vistool.profiles import resolve_profile
    from vistool.runtime.transformers_backend import TransformersBackend
    from vistool.runtime.types import GenerationRequest

    loaded = load_image(image, allow_urls=True)  # a URL the user typed
    family = resolve_profile(model, profile)
    if budget is not None:
        family.check_budget(budget)  # before the model loads
    backend = TransformersBackend(model, device=device, profile=family)
    request = GenerationRequest(
        prompt=prompt,
        images=[loaded.image],
        system=system,
        budget=budget,
        max_new_tokens=max_new_tokens,
        thinking=thinking,
    )
    response = backend.generate([request])[0]
    if not response.ok:
        fail(f"generation failed for {loaded.source}: {response.error}")
    if as_json:
        typer.echo(json.dumps(response.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(response.text)


BackendOption = Annotated[str, typer.Option("--backend", help="transformers (local) or openai (a serving engine).")]
BaseUrlOption = Annotated[Optional[str], typer.Option("--base-url", help="Server URL for --backend openai (several: comma-separated).")]
MaxTokensOption = Annotated[Optional[int], typer.Option("--max-new-tokens", help="Token limit (default: the task's).")]
ThinkingOption = Annotated[bool, typer.Option("--thinking/--no-thinking", help="Let the model think first.")]
SaveOption = Annotated[Optional[Path], typer.Option("--save", help="Write the annotated image here.")]
StructuredOption = Annotated[
    bool,
    typer.Option(
        "--structured/--free",
        help="Constrain the answer to the task's JSON schema (default), or let the model write freely.",
    ),
]
ThoughtTokensOption = Annotated[
    Optional[int], typer.Option("--thought-tokens", help="With --thinking: the thought's token budget (default 2048), on top of --max-new-tokens.")
]
TimeoutOption = Annotated[Optional[float], typer.Option("--timeout", help="--backend openai: seconds one attempt may take in all, connection to last byte (default 120).")]
RetriesOption = Annotated[Optional[int], typer.Option("--retries", help="--backend openai: tries after a failed one (429, 5xx, timeout, dropped connection; default 3).")]
ApiKeyEnvOption = Annotated[Optional[str], typer.Option("--api-key-env", help="--backend openai: environment variable holding the API key (default VISTOOL_API_KEY; OPENAI_API_KEY is sent only to api.openai.com unless named here).")]


def http_options(timeout: float | None, retries: int | None, api_key_env: str | None) -> dict[str, Any]:
    """The --timeout / --retries / --api-key-env options given, as backend options."""
    given = {"timeout": timeout, "retries": retries, "api_key_env": api_key_env}
    return {name: value for name, value in given.items() if value is not None}


# Options every image-task command shares, added to each command's own parameters.
_COMMON_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (ModelOption, DEFAULT_MODEL),
    "profile": (ProfileOption, None),
    "budget": (BudgetOption, None),
    "max_new_tokens": (MaxTokensOption, None),
    "thinking": (ThinkingOption, False),
    "structured": (StructuredOption, True),
    "thought_tokens": (ThoughtTokensOption, None),
    "backend": (BackendOption, "transformers"),
    "base_url": (BaseUrlOption, None),
    "timeout": (TimeoutOption, None),
    "retries": (RetriesOption, None),
    "api_key_env": (ApiKeyEnvOption, None),
    "device": (DeviceOption, None),
    "save": (SaveOption, None),
}


def _check_zoom_text(zoom: str | None) -> str | None:
    """Refuse a malformed --zoom at parse time (before any model is loaded)."""
    from vistool.zoom import ZoomSettings

    try:
        ZoomSettings.parse(zoom)
    except VistoolError as exc:
        raise typer.BadParameter(str(exc)) from None
    return zoom


ZoomOption = Annotated[
    Optional[str],
    typer.Option(
        "--zoom",
        help="off, tiles or refine: several model calls for small objects and 4K screens; options after a colon, "
        "e.g. tiles:tile=1024,overlap=0.25,whole=true or refine:depth=2,margin=0.5.",
        callback=_check_zoom_text,
    ),
]


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
            for option, (annotation, default) in _COMMON_OPTIONS.items()
        ]

        def command(**values: Any) -> None:
            shared = {option: values.pop(option) for option in _COMMON_OPTIONS}
            _run_image_task(func, task, values, **shared)

        command.__signature__ = inspect.Signature(own + common)  # type: ignore[attr-defined]
        command.__doc__ = func.__doc__
        app.command(name)(command)
        return func

    return register


def _run_image_task(func: Callable[..., Any], task: TaskOf, own: dict[str, Any], *, model: str, profile: str | None,
                    budget: int | None, max_new_tokens: int | None, thinking: bool, structured: bool,
                    thought_tokens: int | None, backend: str, base_url: str | None, timeout: float | None,
                    retries: int | None, api_key_env: str | None, device: str | None, save: Path | None) -> None:
    """Load the image (failing fast), find the family and refuse a task it cannot run,
    check the budget and zoom, then load the model, run, print, save."""
    from vistool.api import load
    from vistool.io.images import load_image
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task
    from vistool.zoom import check_zoom

    loaded = load_image(own.pop("image"), allow_urls=True)  # a URL the user typed
    family = resolve_profile(model, profile, backend=backend)
    name, options = task(own)
    check_task(name, family, options)
    if budget is not None:
        family.check_budget(budget)
    if own.get("zoom") is not None:
        check_zoom(name, own["zoom"])
    vt = load(model, backend=backend, base_url=base_url, budget=budget, device=device, thinking=thinking, profile=family,
              structured=structured, thought_tokens=thought_tokens, **http_options(timeout, retries, api_key_env))
    result = func(vt, loaded, **own, settings={"max_new_tokens": max_new_tokens})
    if not result.ok:
        fail(f"{loaded.source}: {result.error}")
    if save is not None:
        from vistool.zoom.draw import draw_passes

        result.annotate(draw_passes(loaded.image, result)).save(save)
    typer.echo(result.to_json(indent=2))


ImageArgument = Annotated[str, typer.Argument(help="Image path or URL.")]


def _check_classes(classes: str | None) -> str | None:
    """Refuse an empty --classes at parse time (before any model is loaded)."""
    if classes is not None and not [name for name in classes.split(",") if name.strip()]:
        raise typer.BadParameter("empty class list: give --classes a,b,c (or leave it out for all objects)")
    return classes


@image_task("detect", lambda own: ("detect", {"classes": own["classes"]}))
def detect_command(
    vt, image: ImageArgument, settings: dict,
    classes: Annotated[
        Optional[str],
        typer.Option("--classes", "-c", help="Comma-separated class names (default: all objects).", callback=_check_classes),
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
    labels: Annotated[str, typer.Option("--labels", "-l", help="Comma-separated labels to choose from.", callback=_check_classes)] = ...,
):
    """Classify an image: a probability for each label (each label's token log-probability, renormalised)."""
    return vt.classify(image, labels, **settings)


@app.command("video")
def video_command(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[Optional[str], typer.Argument(help="The question about the video.")] = None,
    locate: Annotated[Optional[str], typer.Option("--locate", help="An event to find in time instead of a question.")] = None,
    frames: Annotated[int, typer.Option("--frames", help="Frames to sample uniformly (at most 32).")] = 32,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Sample at this rate instead (capped by --frames).")] = None,
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
) -> None:
    """Ask a question about a video, or find when an event happens."""
    from vistool.io.video import sample_video
    from vistool.profiles import resolve_profile
    from vistool.tasks import check_task

    family = resolve_profile(model, profile, backend=backend)
    check_task("video_locate" if locate else "video", family)  # before the file is read or a model loads
    sample_video(video, num_frames=1)  # fail fast on an unreadable file, before loading a model
    from vistool.api import load

    vt = load(model, backend=backend, base_url=base_url, device=device, thinking=thinking, profile=family,
              **http_options(timeout, retries, api_key_env))
    result = vt.video(video, question, locate=locate, frames=frames, fps=fps, audio=audio, max_new_tokens=max_new_tokens)
    if not result.ok:
        fail(f"{video}: {result.error}")
    typer.echo(result.to_json(indent=2))


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
    model: ModelOption = DEFAULT_MODEL,
    profile: ProfileOption = None,
    budget: BudgetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per model call (the cache is saved after each batch). Default: the local model's batch for the budget (at most 64), 8 for a server.")] = None,
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
    rescore: Annotated[bool, typer.Option("--rescore", help="Rebuild results and exports from the answer cache, without running the model.")] = False,
    draw: Annotated[bool, typer.Option("--draw", help="Also write annotated copies of the images to OUT/draw.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N images (sorted by path).")] = None,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 100 million).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Image-reading threads running ahead of the model.")] = 4,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    engine: Annotated[str, typer.Option("--engine", help="local (one process) or ray (Ray Data: pip install 'vistool[ray]'; see docs/ray.md).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="--engine ray: an existing cluster (auto, ray://head:10001). Default: a local Ray instance for the run.")] = None,
    ray_actors: Annotated[Optional[int], typer.Option("--ray-actors", help="--engine ray: model actors (default: one per GPU, one without GPUs, one per --base-url server).")] = None,
    ray_gpus_per_actor: Annotated[Optional[float], typer.Option("--ray-gpus-per-actor", help="--engine ray: GPUs per model actor (default 1 when there are GPUs; 0.5: two actors per GPU).")] = None,
    replay_answers: Annotated[Optional[Path], typer.Option("--replay-answers", hidden=True, help="With --backend replay: answers file (tests).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="--format fiftyone: the FiftyOne dataset to build or update (default vistool-<OUT folder name>).")] = None,
    zoom: ZoomOption = None,
) -> None:
    """Annotate many images with one task, resumably; export COCO / YOLO / VOC / JSONL.

    Every answer is cached in OUT/answers.jsonl: after a crash or Ctrl-C, run the same command again and only the missing images are processed; change a setting and only what it affects is re-run. Failed images are listed with their reason in OUT/failures.jsonl.

    Exit codes: 0 every image annotated; 1 finished, but some images failed or an export could not be written; 2 usage or setup error (bad option, no images, model cannot load, OUT in use or not writable); 130 interrupted (re-run to resume).
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
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 7860,
    share: Annotated[bool, typer.Option("--share", help="Ask Gradio for a public share link.")] = False,
    device: DeviceOption = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Use a tiny random model (noise answers) to try the UI offline; of the --profile family if given.")] = False,
    structured: StructuredOption = True,
) -> None:
    """Serve the Gradio demo app (the same as `python demos/app.py`)."""
    from vistool.app import serve

    serve(model, backend=backend, base_url=base_url, host=host, port=port, share=share, device=device, tiny=tiny,
          profile=profile, structured=structured, **http_options(timeout, retries, api_key_env))


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def eval_command(ctx: typer.Context) -> None:
    """Evaluate on a benchmark (coco, screenspot, ocr, refexp), or score a predictions file (score ...).

    `vistool eval --help` lists the arguments; they are those of `python -m vistool.evaluation.run`.
    """
    if len(ctx.args) >= 2 and ctx.args[0] == "score":  # scoring a file needs no model: skip the heavy imports
        from vistool.evaluation.score import score_existing

        raise typer.Exit(score_existing(ctx.args[1], ctx.args[2:]))
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
    """Run the CLI with `argv` (default: sys.argv); return the exit code."""
    try:
        code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
    except VistoolError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.BadParameter, typer.Abort) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
