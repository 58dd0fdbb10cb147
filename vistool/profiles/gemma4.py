"""Gemma 4 (the default family): JSON `box_2d` [y1, x1, y2, x2] and `point_2d` [y, x], 0..1000.

Coordinates are relative to the whole input image (no letterbox); the image-token
budget is the image processor's `max_soft_tokens`. Reasoning arrives in a
`<|channel>thought\\n...<channel|>` channel, which is skipped.
"""

import math

from vistool.errors import VistoolError
from vistool.postprocess.readers import JSON_READERS
from vistool.profiles.base import CoordSystem, ModelProfile

PATCH, POOLING = 16, 3  # 16-px patches pooled 3 x 3: one image token per 48 x 48 pixels


def resize(size: tuple[int, int], budget: int | None) -> tuple[int, int]:
    """Return the (width, height) Gemma 4's image processor resizes a (width, height) image
    to at `budget` soft tokens: the aspect ratio kept, both sides rounded down to
    multiples of 48, at most `budget` tokens; a side that rounds to 0 becomes 48 and the
    other follows the aspect ratio, capped at budget / 9 * 48.

    This is transformers' `get_aspect_ratio_preserving_size` (image_processing_gemma4),
    written out because importing that module pulls in torchvision (seconds) for what is
    arithmetic; tests/test_zoom_profiles.py checks the two agree.
    """
    width, height = size
    tokens = 280 if budget is None else budget
    patches = tokens * POOLING**2
    side = PATCH * POOLING
    factor = math.sqrt(patches * PATCH**2 / (width * height))
    new_height = int(math.floor(factor * height / side)) * side
    new_width = int(math.floor(factor * width / side)) * side
    longest = (patches // POOLING**2) * side
    if new_height == 0 and new_width == 0:
        raise VistoolError(f"Gemma 4 cannot resize a {width}x{height} image (both sides round to 0)")
    if new_height == 0:
        new_height, new_width = side, min(int(math.floor(width / height)) * side, longest)
    elif new_width == 0:
        new_width, new_height = side, min(int(math.floor(height / width)) * side, longest)
    return new_width, new_height


PROFILE = ModelProfile(
    name="gemma4",
    budgets=(70, 140, 280, 560, 1120),
    default_budget=280,
    video_budget=70,
    budget_kwarg="max_soft_tokens",
    answer_end="<turn|>",  # the model closes its turn after the answer
    audio_seconds=30.0,  # E2B/E4B hear up to 30 s (40 ms per audio token); 26B/31B have no audio encoder
    resize=resize,
    token_pixels=(PATCH * POOLING) ** 2,
    coords=CoordSystem(order="yx", scale=1000.0),
    readers=JSON_READERS,
    box_keys=("box_2d",),
    point_keys=("point_2d",),
    label_keys=("label",),
    text_keys=("text", "label"),
    thought_markers=(("<|channel>", "<channel|>"),),
    strip_tokens=(
        "<turn|>", "<|turn>", "<eos>", "<bos>", "<pad>", "<unk>", "<|think|>",
        "<|image>", "<image|>", "<|image|>", "<|video|>", "<|audio>", "<audio|>", "<|audio|>",
    ),
    model_patterns=("gemma-4", "gemma4"),
)
