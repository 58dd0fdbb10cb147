"""Qwen2.5-VL: JSON `bbox_2d` [x1, y1, x2, y2] in absolute pixels of the RESIZED image.

The processor resizes each image to multiples of 28 (smart_resize, patch 14 x merge 2);
the answer's pixels refer to that size, which the runtime reports
(`GenerationResponse.image_sizes`: read from `image_grid_thw` locally, computed with
the same rule and the min/max pixels sent to a server) and `parse(..., resized_size=(W, H))`
needs. vistool's budget is in image tokens: max_pixels = budget x 28 x 28.
"""

from dataclasses import replace

from vistool.profiles.base import CoordSystem
from vistool.profiles.qwen3vl import PROFILE as QWEN3VL
from vistool.profiles.resize import SmartResize

PROFILE = replace(
    QWEN3VL,
    name="qwen25vl",
    resize=SmartResize(patch=14, merge=2, min_tokens=4, default_tokens=16384),
    coords=CoordSystem(order="xy", scale=None),
    thought_markers=(),
    model_patterns=("qwen2.5-vl", "qwen2_5_vl", "qwen2.5vl", "qwen25vl", "qwen2_5-vl"),
    title="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    # Qwen3-VL's wording, asking for absolute pixel coordinates instead of 0-1000.
    prompts={
        task: prompt.replace("coordinates relative to 0-1000", "absolute pixel coordinates")
        for task, prompt in QWEN3VL.prompts.items()
    },
)
