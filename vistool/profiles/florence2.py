"""Florence-2: `label<loc_x1><loc_y1><loc_x2><loc_y2>`, 1000 bins, x first.

Bins are floor-quantised and decoded at their centre ((b + 0.5) / 1000 of the side), as
Florence-2's own processor does. OCR regions (`<OCR_WITH_REGION>`) are 8-token quads.
"""

from vistool.postprocess.readers import LOC_READERS
from vistool.profiles.base import CoordSystem, LocFormat, ModelProfile, PromptFormat
from vistool.profiles.resize import FixedResize

PROFILE = ModelProfile(
    name="florence2",
    coords=CoordSystem(order="xy", scale=1000.0, offset=0.5, quantise="floor"),
    readers=LOC_READERS,
    ocr_quads=True,
    loc_format=LocFormat(token=r"<loc_(\d+)>", label_side="before", template="<loc_{}>"),
    strip_tokens=("<s>", "</s>", "<pad>"),
    model_patterns=("florence-2", "florence2", "florence_2"),
    title="Florence-2",
    model_types=("florence2",),
    architectures=("Florence2ForConditionalGeneration",),
    resize=FixedResize(side=768, tokens=577, sides=(768,)),
    prompt_format=PromptFormat(chat=False, image_token=""),
    video=False,
    default_prompts="none",
    # Florence-2's task tokens (its processor's task table).
    prompts={
        "detect": "<CAPTION_TO_PHRASE_GROUNDING>{classes}",
        "detect.all": "<OD>",
        "ground": "<CAPTION_TO_PHRASE_GROUNDING>{expression}",
        "ocr": "<OCR>",
        "ocr_regions": "<OCR_WITH_REGION>",
        "caption.short": "<CAPTION>",
        "caption.normal": "<DETAILED_CAPTION>",
        "caption.detailed": "<MORE_DETAILED_CAPTION>",
    },
)
