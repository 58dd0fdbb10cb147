"""Loading a checkpoint for the local backend: where and in what precision it runs, its
processor and model from a Hub id or a local folder (safetensors weights only), and one
message that says what to do when that fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vistool.errors import ModelLoadError
from vistool.runtime.devices import pick_device, pick_dtype
from vistool.runtime.hub import hub_error_hint, hub_preflight


def pick_device_and_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, Any]:
    """Choose where and in what precision to run.

    Takes an optional device ("cuda", "cuda:1", "mps", "cpu") and dtype name
    ("bfloat16", "float16", "float32"). Returns (device, torch dtype): by default CUDA
    with bfloat16, else Apple MPS with float16, else CPU with float32. Raises
    RequestError for a device this machine lacks or an unknown name (see `devices`).
    """
    chosen = pick_device(device)
    return chosen, pick_dtype(dtype, chosen)


def load_error(model_id: str, exc: Exception) -> ModelLoadError:
    """Turn a loading exception into one message that says what to do."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(model_id).exists():
        hint = "the folder exists but does not hold a loadable model (config.json, safetensors weights, processor files)"
    elif hub_error_hint(model_id, exc) is not None:
        hint = str(hub_error_hint(model_id, exc))
    else:
        hint = (
            "it is not a local folder, and it could not be fetched from the Hugging Face Hub: check the name, "
            "your network, and for gated models accept the licence and run `hf auth login`. "
            "To try vistool without a download, run `vistool make-tiny-model DIR` and pass `--model DIR`"
        )
    return ModelLoadError(f"cannot load model {model_id!r}: {hint} ({type(exc).__name__}: {reason})")


def load_pretrained(model_id: str, torch_dtype: Any, *, trust_remote_code: bool = False,
                    revision: str | None = None) -> tuple[Any, Any]:
    """Load a checkpoint's processor and model (on the CPU, in `torch_dtype`).

    Takes a Hub id or local folder, the torch dtype, and the opt-ins `trust_remote_code`
    and `revision`. Returns (model, processor). An unreachable Hub fails (or goes
    offline) in seconds (`hub_preflight`). Raises ModelLoadError with what to do.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
    load_kwargs.update(hub_preflight(model_id, revision))
    try:
        processor = AutoProcessor.from_pretrained(model_id, **load_kwargs)
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=torch_dtype, use_safetensors=True, **load_kwargs)
    except Exception as exc:  # hub, file-system and format errors all mean "cannot load"
        raise load_error(model_id, exc) from exc
    return model, processor


__all__ = ["load_error", "load_pretrained", "pick_device_and_dtype"]
