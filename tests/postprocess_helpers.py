"""Shared helpers for the post-processing and profile tests (not a test module)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

# ../shared/data relative to the repository root (the folder above tests/).
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
COCO8_DIR = DATA_DIR / "coco8"

needs_coco8 = pytest.mark.skipif(
    not (COCO8_DIR / "labels").is_dir(),
    reason=f"real photos not available: {COCO8_DIR} is absent (../shared/data beside the repository)",
)

PUBLISHED_GEMMA4 = '```json\n[{"box_2d": [171, 75, 245, 308], "label": "view recipe element"}]\n```'


@lru_cache(maxsize=None)
def qwen_resized(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) Qwen2.5-VL's processor resizes a (width, height) image to.

    Uses transformers' own smart_resize with its default pixel range, as the runtime would.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    height, width = smart_resize(size[1], size[0])
    return width, height
