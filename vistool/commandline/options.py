"""The options and arguments the `vistool` commands share (typer annotations), with the
checks that run at parse time, before any model loads.

`COMMON_OPTIONS` lists the options every image-task command gets (`vistool.cli.image_task`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vistool.errors import VistoolError

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
DtypeOption = Annotated[
    Optional[str],
    typer.Option("--dtype", help="Weights precision of a local model: bfloat16, float16 or float32 (default: bfloat16 on CUDA, float16 on MPS, float32 on CPU)."),
]
ProgressOption = Annotated[
    Optional[bool],
    typer.Option("--progress/--no-progress", help="Show generated tokens on stderr while a local model runs (default: when stderr is a terminal)."),
]

BackendOption = Annotated[str, typer.Option("--backend", help="transformers (local) or openai (a serving engine).")]
BaseUrlOption = Annotated[Optional[str], typer.Option("--base-url", help="Server URL for --backend openai (several: comma-separated).")]
MaxTokensOption = Annotated[Optional[int], typer.Option("--max-new-tokens", min=1, help="Token limit (default: the task's).")]
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
    Optional[int], typer.Option("--thought-tokens", min=1, help="With --thinking: the thought's token budget (default 2048), on top of --max-new-tokens.")
]
TimeoutOption = Annotated[Optional[float], typer.Option("--timeout", min=0.001, help="--backend openai: seconds one attempt may take in all, connection to last byte (default 120).")]
RetriesOption = Annotated[Optional[int], typer.Option("--retries", min=0, help="--backend openai: tries after a failed one (429, 5xx, timeout, dropped connection; default 3).")]
ApiKeyEnvOption = Annotated[Optional[str], typer.Option("--api-key-env", help="--backend openai: environment variable holding the API key (default VISTOOL_API_KEY; OPENAI_API_KEY is sent only to api.openai.com unless named here).")]


def http_options(timeout: float | None, retries: int | None, api_key_env: str | None) -> dict[str, Any]:
    """The --timeout / --retries / --api-key-env options given, as backend options."""
    given = {"timeout": timeout, "retries": retries, "api_key_env": api_key_env}
    return {name: value for name, value in given.items() if value is not None}


# Options every image-task command shares, added to each command's own parameters.
COMMON_OPTIONS: dict[str, tuple[Any, Any]] = {
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
    "dtype": (DtypeOption, None),
    "save": (SaveOption, None),
    "progress": (ProgressOption, None),
}


def check_zoom_text(zoom: str | None) -> str | None:
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
        callback=check_zoom_text,
    ),
]


ImageArgument = Annotated[str, typer.Argument(help="Image path or URL.")]


def check_classes(classes: str | None) -> str | None:
    """Refuse an empty --classes at parse time (before any model is loaded)."""
    if classes is not None and not [name for name in classes.split(",") if name.strip()]:
        raise typer.BadParameter("empty class list: give --classes a,b,c (or leave it out for all objects)")
    return classes


__all__ = [
    "COMMON_OPTIONS", "DEFAULT_MODEL", "BackendOption", "BaseUrlOption", "BudgetOption", "DeviceOption", "DtypeOption",
    "ImageArgument", "MaxTokensOption", "ModelOption", "ProfileOption", "ProgressOption", "SaveOption",
    "StructuredOption", "ThinkingOption", "ThoughtTokensOption", "ZoomOption", "check_classes", "check_zoom_text",
    "ApiKeyEnvOption", "RetriesOption", "TimeoutOption", "http_options",
]
