"""Qwen3-VL: JSON `bbox_2d` [x1, y1, x2, y2] and `point_2d` [x, y], 0..1000 relative.

Thinking variants write `<think>...</think>` first, which is skipped. The image budget
is the processor's pixel range, not a token list, so no budget knob is declared here.
"""

from vistool.postprocess.readers import JSON_READERS
from vistool.profiles.base import CoordSystem, ModelProfile

PROFILE = ModelProfile(
    name="qwen3vl",
    coords=CoordSystem(order="xy", scale=1000.0),
    answer_end="<|im_end|>",  # the end of the assistant turn
    readers=JSON_READERS,
    box_keys=("bbox_2d",),
    point_keys=("point_2d",),
    label_keys=("label",),
    text_keys=("text_content", "text", "label"),
    thought_markers=(("<think>", "</think>"),),
    strip_tokens=("<|im_end|>", "<|endoftext|>"),
    model_patterns=("qwen3-vl", "qwen3_vl", "qwen3vl"),
    prompts={
        "detect": "Locate every instance of the following objects in the image: {classes}. Report bbox coordinates "
        'in JSON format: [{{"bbox_2d": [x1, y1, x2, y2], "label": "class name"}}], coordinates relative to 0-1000.',
        "detect.all": "Locate every object in the image. Report bbox coordinates in JSON format: "
        '[{{"bbox_2d": [x1, y1, x2, y2], "label": "object name"}}], coordinates relative to 0-1000.',
        "ground": 'Locate "{expression}" in the image. Report bbox coordinates in JSON format: '
        '[{{"bbox_2d": [x1, y1, x2, y2], "label": "{expression}"}}], coordinates relative to 0-1000.',
        "point": "Point to every {description} in the image. Report point coordinates in JSON format: "
        '[{{"point_2d": [x, y], "label": "{description}"}}], coordinates relative to 0-1000.',
        "ocr_regions": "Spot every {granularity} of text in the image. Report in JSON format: "
        '[{{"bbox_2d": [x1, y1, x2, y2], "text_content": "the text"}}], coordinates relative to 0-1000.',
    },
)
