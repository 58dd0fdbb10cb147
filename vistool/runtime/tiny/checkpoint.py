"""Saving a tiny checkpoint the way a downloaded one is laid out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_checkpoint(model: Any, processor: Any, path: str | Path, meta: dict[str, Any]) -> Path:
    """Save `model` (safetensors) and `processor` to `path` and return the folder.

    Takes the model, its processor, the output folder (created if needed) and the
    build facts to record in `vistool_tiny.json` (family, seed, vocabulary size). The
    folder then loads with `AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / "vistool_tiny.json").write_text(json.dumps(meta, sort_keys=True) + "\n")
    return out
