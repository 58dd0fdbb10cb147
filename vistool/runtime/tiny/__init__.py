"""Tiny random-weight checkpoints of every model family, built offline in seconds.

`make_tiny_model(path, family="gemma4")` builds one: the family's real transformers
config, model, processor (image processor included) and chat template or prompt format,
a small BPE tokenizer trained on the spot that carries the family's special tokens,
random weights (same seed, same checkpoint), saved with `save_pretrained` and loaded back
with `from_pretrained` exactly like a downloaded checkpoint. Answers are noise; shapes,
token counts, resize rules and budgets are real. One module per family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vistool.errors import VistoolError
from vistool.runtime.tiny.florence2 import make_tiny_florence2
from vistool.runtime.tiny.gemma4 import (  # noqa: F401  (Gemma 4's token names, used by eval/bench_speed.py)
    AUDIO_CLOSE,
    AUDIO_OPEN,
    AUDIO_SOFT,
    BOS,
    CHAT_TEMPLATE,
    EOS,
    IMAGE_CLOSE,
    IMAGE_OPEN,
    IMAGE_SOFT,
    PAD,
    SPECIAL_TOKENS,
    TURN_CLOSE,
    TURN_OPEN,
    UNK,
    VIDEO_SOFT,
    make_tiny_gemma4,
)
from vistool.runtime.tiny.paligemma2 import make_tiny_paligemma2
from vistool.runtime.tiny.qwen import make_tiny_qwen3vl, make_tiny_qwen25vl

BUILDERS: dict[str, Callable[..., Path]] = {
    "gemma4": make_tiny_gemma4,
    "qwen25vl": make_tiny_qwen25vl,
    "qwen3vl": make_tiny_qwen3vl,
    "paligemma2": make_tiny_paligemma2,
    "florence2": make_tiny_florence2,
}
FAMILIES = tuple(BUILDERS)


def make_tiny_model(
    path: str | Path, seed: int = 0, vocab_size: int = 512, audio: bool = False, family: str = "gemma4"
) -> Path:
    """Build a tiny random checkpoint of `family` and save it to `path`.

    Takes the output folder (created if needed), a seed (same seed, same weights and
    tokenizer), the BPE vocabulary size, whether to give it an audio tower (Gemma 4
    only, like E2B/E4B; off by default) and the family (one of `FAMILIES`; spelling as
    `get_profile` forgives it). Returns the folder, loadable with
    `AutoProcessor.from_pretrained` / `AutoModelForImageTextToText.from_pretrained`.
    Raises VistoolError for a family without a tiny builder, or audio for a family
    without an audio tower.
    """
    from vistool.profiles import get_profile

    try:
        name = get_profile(family).name
    except VistoolError:
        name = str(family)
    builder = BUILDERS.get(name)
    if builder is None:
        raise VistoolError(f"no tiny checkpoint for family {family!r}; use one of {', '.join(FAMILIES)}")
    if audio:
        if name != "gemma4":
            raise VistoolError(f"family {name!r} has no audio tower; only the tiny gemma4 can hear")
        return make_tiny_gemma4(path, seed=seed, vocab_size=vocab_size, audio=True)
    return builder(path, seed=seed, vocab_size=vocab_size)


def model_or_tiny(model: str | None, family: str = "gemma4") -> str:
    """Return `model` when given, else build the tiny `family` checkpoint in a new temporary
    folder and return that folder (benchmarks and demos that should run with no download)."""
    if model is not None:
        return model
    import tempfile

    return str(make_tiny_model(tempfile.mkdtemp(prefix=f"vistool-tiny-{family}-"), family=family))


__all__ = ["BUILDERS", "FAMILIES", "make_tiny_model", "model_or_tiny"]
