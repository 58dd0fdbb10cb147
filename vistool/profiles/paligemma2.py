"""PaliGemma 2: `<locYYYY><locXXXX><locYYYY><locXXXX> label ; ...`, 1024 bins, y first.

A bin b stands for b / 1024 of the side (the decoding of Google's reference code and
of supervision); segmentation tokens (`<seg012>`) after a box are ignored. The prompt is
a plain task prefix, not a chat turn (`<image>` per image, then the prefix; the processor
adds `<bos>` and the closing newline). Every image is resized to the checkpoint's fixed
square (224, 448 or 896 px), so there is no budget; no video, no points.
"""

from vistool.postprocess.readers import LOC_READERS
from vistool.profiles.base import CoordSystem, LocFormat, ModelProfile, PromptFormat
from vistool.profiles.resize import FixedResize

PROFILE = ModelProfile(
    name="paligemma2",
    coords=CoordSystem(order="yx", scale=1024.0, quantise="floor"),
    readers=LOC_READERS,
    loc_format=LocFormat(token=r"<loc(\d{4})>", label_side="after", template="<loc{:04d}>", separator=";", skip=r"<seg\d{3}>"),
    strip_tokens=("<eos>", "<bos>", "<pad>"),
    model_patterns=("paligemma",),
    title="PaliGemma 2",
    model_types=("paligemma",),
    architectures=("PaliGemmaForConditionalGeneration",),
    resize=FixedResize(side=224, tokens=256, sides=(224, 448, 896)),
    prompt_format=PromptFormat(chat=False, image_token="<image>"),
    video=False,
    default_prompts="none",
    # PaliGemma's task prefixes (Google's model card): "detect a ; b", "ocr", "caption en".
    prompts={
        "detect": "detect {classes_semicolon}",
        "ground": "detect {expression}",
        "ocr": "ocr",
        "caption.short": "caption en",
        "caption.normal": "caption en",
        "caption.detailed": "describe en",
        "vqa": "answer en {question}",
    },
)
