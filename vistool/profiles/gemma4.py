"""Gemma 4 (the default family): JSON `box_2d` [y1, x1, y2, x2] and `point_2d` [y, x], 0..1000.

Coordinates are relative to the whole input image (no letterbox); the image-token
budget is the image processor's `max_soft_tokens`. Reasoning arrives in a
`<|channel>thought\\n...<channel|>` channel, which is skipped.
"""

from vistool.postprocess.readers import JSON_READERS
from vistool.profiles.base import CoordSystem, ModelProfile
from vistool.profiles.resize import Gemma4Resize

PATCH, POOLING = 16, 3  # 16-px patches pooled 3 x 3: one image token per 48 x 48 pixels
# The resize rule (vistool.profiles.resize.Gemma4Resize) is transformers'
# `get_aspect_ratio_preserving_size` (image_processing_gemma4) written out: importing that
# module pulls in torchvision (seconds) for what is arithmetic. tests/test_zoom_profiles.py
# and tests/test_resize_rules.py check the two agree.

from vistool.profiles.variants import COMMON_JSON_VARIANTS

PROFILE = ModelProfile(
    name="gemma4",
    budgets=(70, 140, 280, 560, 1120),
    default_budget=280,
    video_budget=70,
    budget_kwarg="max_soft_tokens",
    answer_end="<turn|>",  # the model closes its turn after the answer
    audio_seconds=30.0,  # E2B/E4B hear up to 30 s (40 ms per audio token); 26B/31B have no audio encoder
    resize=Gemma4Resize(patch=PATCH, pool=POOLING, kwarg="max_soft_tokens"),
    token_pixels=(PATCH * POOLING) ** 2,
    coords=CoordSystem(order="yx", scale=1000.0),
    readers=JSON_READERS,
    box_keys=("box_2d",),
    point_keys=("point_2d",),
    label_keys=("label",),
    text_keys=("text", "label"),
    variants=COMMON_JSON_VARIANTS,
    thought_markers=(("<|channel>", "<channel|>"),),
    strip_tokens=(
        "<turn|>", "<|turn>", "<eos>", "<bos>", "<pad>", "<unk>", "<|think|>",
        "<|image>", "<image|>", "<|image|>", "<|video|>", "<|audio>", "<audio|>", "<|audio|>",
    ),
    model_patterns=("gemma-4", "gemma4"),
    title="Gemma 4",
    model_types=("gemma4",),
    architectures=("Gemma4ForConditionalGeneration",),
)
