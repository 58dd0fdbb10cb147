"""The `vistool` command line.

Every command prints its result on stdout (JSON where it is structured) and turns a
`VistoolError` into one line on stderr and exit code 2, so scripts can rely on it.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Annotated, Optional

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
) -> None:
    """Build a tiny random-weight Gemma 4 (offline, < 1 MB) to try the pipeline without a download."""
    from vistool.runtime.tiny import make_tiny_model

    path = make_tiny_model(directory, seed=seed)
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole response as JSON.")] = False,
) -> None:
    """Run one prompt over one image and print the answer."""
    from vistool.io.images import load_image
    from vistool.runtime.transformers_backend import TransformersBackend
    from vistool.runtime.types import GenerationRequest

    loaded = load_image(image)
    backend = TransformersBackend(model, device=device)
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
        app(args=argv, standalone_mode=False)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
