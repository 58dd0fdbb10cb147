"""Qwen3-VL: JSON `bbox_2d` [x1, y1, x2, y2] and `point_2d` [x, y], 0..1000 relative.

Thinking variants write `<think>...</think>` first, which is skipped. The processor
resizes with smart_resize to multiples of 32 px (patch 16 x merge 2); vistool's budget
is in image tokens (max_pixels = budget x 32 x 32, see `vistool.profiles.resize`).
Every structured task is asked in Qwen's own wording (x first, 0-1000); text tasks use
the default wording.
"""

from vistool.postprocess.readers import JSON_READERS
from vistool.profiles.base import CoordSystem, ModelProfile
from vistool.profiles.resize import SmartResize

# Budgets in image tokens: Gemma 4's ladder (so every task's default applies), Qwen's
# recommended 1280 (max_pixels = 1280 x factor^2, the default here), 4096 and the
# processor's own ceiling, 16384.
QWEN_BUDGETS = (70, 140, 280, 560, 1120, 1280, 4096, 16384)
_RELATIVE = "coordinates relative to 0-1000"
from vistool.profiles.variants import COMMON_JSON_VARIANTS

PROFILE = ModelProfile(
    name="qwen3vl",
    budgets=QWEN_BUDGETS,
    default_budget=1280,
    resize=SmartResize(patch=16, merge=2, min_tokens=64, default_tokens=16384, video_pixels="clip"),
    coords=CoordSystem(order="xy", scale=1000.0),
    answer_end="<|im_end|>",  # the end of the assistant turn
    readers=JSON_READERS,
    box_keys=("bbox_2d",),
    point_keys=("point_2d",),
    label_keys=("label",),
    text_keys=("text_content", "text", "label"),
    variants=COMMON_JSON_VARIANTS,
    thought_markers=(("<think>", "</think>"),),
    strip_tokens=("<|im_end|>", "<|endoftext|>"),
    model_patterns=("qwen3-vl", "qwen3_vl", "qwen3vl"),
    title="Qwen3-VL",
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    architectures=("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"),
    default_prompts="text",
    prompts={
        "detect": "Locate every instance of the following objects in the image: {classes}. Report bbox coordinates "
        f'in JSON format: [{{{{"bbox_2d": [x1, y1, x2, y2], "label": "class name"}}}}], {_RELATIVE}.',
        "detect.all": "Locate every object in the image. Report bbox coordinates in JSON format: "
        f'[{{{{"bbox_2d": [x1, y1, x2, y2], "label": "object name"}}}}], {_RELATIVE}.',
        "ground": 'Locate "{expression}" in the image. Report bbox coordinates in JSON format: '
        f'[{{{{"bbox_2d": [x1, y1, x2, y2], "label": "{{expression}}"}}}}], {_RELATIVE}.',
        "point": "Point to every {description} in the image. Report point coordinates in JSON format: "
        f'[{{{{"point_2d": [x, y], "label": "{{description}}"}}}}], {_RELATIVE}.',
        "ocr_regions": "Spot every {granularity} of text in the image. Report in JSON format: "
        f'[{{{{"bbox_2d": [x1, y1, x2, y2], "text_content": "the text"}}}}], {_RELATIVE}.',
        "region": 'Which part of the image contains "{target}"? Report the bbox of a region around it, with some of its '
        f'surroundings, in JSON format: [{{{{"bbox_2d": [x1, y1, x2, y2], "label": "{{target}}"}}}}], {_RELATIVE}.',
        "gui_elements": "List every visible user-interface element in this screenshot. Report in JSON format: "
        '[{{"bbox_2d": [x1, y1, x2, y2], "label": "element type, one of: {element_types}", '
        '"text": "its visible text, or empty", "interactive": true or false}}], '
        f"{_RELATIVE}.",
        "gui_ground": 'In this screenshot, which element should be clicked to "{instruction}"? Report in JSON format: '
        '[{{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y], "label": "the element"}}] with the element\'s box and '
        f"where to click, {_RELATIVE}.",
    },
)
