"""Where and in what precision a local model runs: the checks behind --device and --dtype.

`pick_device` and `pick_dtype` resolve the user's choice (or the default) and refuse what
this machine cannot do with one line saying what to use instead, before any weights load.
"""

from __future__ import annotations

from typing import Any

from vistool.errors import RequestError

DTYPES = ("bfloat16", "float16", "float32")
DEVICE_KINDS = ("cuda", "mps", "cpu")


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def pick_device(device: str | None = None) -> str:
    """Return the device to run on.

    Takes None (best available: CUDA, else Apple MPS, else CPU) or "cuda", "cuda:N",
    "mps", "cpu". Raises RequestError for an unknown name, or a device this machine does
    not have (CUDA not built in or no GPU, a GPU index beyond the count, no MPS).
    """
    import torch

    if device is None:
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    name = str(device).strip().lower()
    kind, _, index = name.partition(":")
    if kind not in DEVICE_KINDS or (index and (kind != "cuda" or not index.isdigit())):
        raise RequestError(f"unknown device {device!r}; use cuda, cuda:N, mps or cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise RequestError(f"device {device!r}: CUDA is not available here ({why}); use --device cpu or leave --device out")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise RequestError(f"device {device!r}: this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    if kind == "mps" and not _mps_available(torch):
        raise RequestError(f"device {device!r}: Apple MPS is not available here; use --device cpu or leave --device out")
    return name


def pick_dtype(dtype: str | None, device: str) -> Any:
    """Return the torch dtype to load weights in.

    Takes None (bfloat16 on CUDA, float16 on MPS, float32 on CPU) or one of DTYPES, and
    the device. Raises RequestError for another name.
    """
    import torch

    if dtype is None:
        dtype = {"cuda": "bfloat16", "mps": "float16"}.get(device.split(":")[0], "float32")
    name = str(dtype).strip().lower().removeprefix("torch.")
    if name not in DTYPES:
        raise RequestError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")
    return getattr(torch, name)
