"""A replay backend read from a JSON file, so a `vistool annotate` SUBPROCESS can run on
known answers (`--backend replay --replay-answers FILE`, a hidden option for tests and
demos without a model).

The file maps image fingerprints to answers:

    {"answers": {"<image_fingerprint>": "```json\\n[...]\\n```", ...},
     "errors": {"<image_fingerprint>": "simulated model error"},
     "default": "[]",
     "delay_s": 0.0}

`image_fingerprint` hashes the decoded pixels the request carries, so the answer follows
the image's content, not its position in a batch. An image found in neither table gets
`default`; `delay_s` makes each answer take that long (to kill a run mid-way in tests).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from vistool.errors import VistoolError
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationRequest, GenerationResponse


def image_fingerprint(image: Image.Image) -> str:
    """Return the hex sha256 of an RGB image's size and pixels (as `load_image` returns it)."""
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(image.convert("RGB").tobytes())
    return digest.hexdigest()


def write_replay_file(
    path: str | Path,
    answers: Mapping[str, str],
    *,
    errors: Mapping[str, str] | None = None,
    default: str = "[]",
    delay_s: float = 0.0,
) -> Path:
    """Write a replay answers file (fingerprint -> answer text); return its path."""
    target = Path(path)
    data = {"answers": dict(answers), "errors": dict(errors or {}), "default": default, "delay_s": delay_s}
    target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return target


def replay_backend_from_file(path: str | Path, model_id: str, profile_name: str = "gemma4") -> ReplayBackend:
    """Build a `ReplayBackend` answering from a replay file (see the module doc).

    Takes the file, the model id the answers are recorded under (it is part of the cache
    key) and the model family. Raises VistoolError when the file cannot be read.
    """
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VistoolError(f"cannot read replay answers {path}: {exc}") from exc
    answers = dict(data.get("answers") or {})
    errors = dict(data.get("errors") or {})
    default = str(data.get("default", "[]"))
    delay = float(data.get("delay_s") or 0.0)

    def answer(request: GenerationRequest) -> str | GenerationResponse:
        if delay:
            time.sleep(delay)
        key = image_fingerprint(request.images[0]) if request.images else ""
        if key in errors:
            return GenerationResponse.failure(errors[key])
        return answers.get(key, default)

    return ReplayBackend(answer, model_id=model_id, profile_name=profile_name)
