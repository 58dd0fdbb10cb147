"""The answer variants a JSON family's reader accepts besides its own format.

Real models drift from the format their prompt asks for: a Gemma 4 answer with Qwen's
`bbox_2d` key, `"name"` instead of `"label"`, a `{"cat": [y1, x1, y2, x2]}` dict,
coordinates on a 0-1 scale or in pixels, an OCR line as an 8-number quadrilateral.
Each profile declares which of these its reader takes (`ModelProfile.variants`); a family
that declares none reads only its own format, so a rule added for one family never
changes another's. The family's own keys always come first: a variant is consulted only
where the family's own format is absent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerVariants:
    """Which drifts from a JSON family's own format its reader still reads.

    box_keys / point_keys / label_keys / text_keys: further keys for a box, a point, a
      label and an OCR text, tried after the profile's own (the numbers stay in the
      family's order and scale).
    quad_keys: keys of an OCR quadrilateral (8 numbers, 4 points).
    label_dict: an object mapping labels to boxes, `{"cat": [y1, x1, y2, x2], "dog":
      [[...], [...]]}`, gives one item per box.
    point_lists: a point key holding several points (`[[y, x], [y, x]]`) gives one item
      per point.
    json_quads: an OCR item whose coordinates are 8 numbers is kept as a quad.
    unit_scale: an answer whose numbers all lie in 0..1, some with a fraction, is on a
      0-1 scale (mapped as fractions of the image; flagged in the diagnostics).
    pixel_scale: an answer with a number beyond the family's scale whose numbers all
      fit the image (x within its width, y within its height) is in the image's pixels
      (flagged). Only for families with a scale; an image no larger than the scale
      leaves pixels and scale values indistinguishable, and then nothing is changed.
    """

    box_keys: tuple[str, ...] = ()
    point_keys: tuple[str, ...] = ()
    label_keys: tuple[str, ...] = ()
    text_keys: tuple[str, ...] = ()
    quad_keys: tuple[str, ...] = ()
    label_dict: bool = False
    point_lists: bool = False
    json_quads: bool = False
    unit_scale: bool = False
    pixel_scale: bool = False


NO_VARIANTS = AnswerVariants()

# What JSON-answering VLMs write in practice (Gemma 4 / Gemini, Qwen2.5-VL / Qwen3-VL,
# and the chat models that imitate them): the box and point keys of each other, the
# usual label and text synonyms, OCR quads, a label -> box dict, 0-1 and pixel scales.
COMMON_JSON_VARIANTS = AnswerVariants(
    box_keys=("box_2d", "bbox_2d", "bbox", "box"),
    point_keys=("point_2d", "point", "points", "coordinates"),
    label_keys=("label", "name", "type", "category"),
    text_keys=("text", "content"),
    quad_keys=("quad", "polygon", "quad_2d"),
    label_dict=True,
    point_lists=True,
    json_quads=True,
    unit_scale=True,
    pixel_scale=True,
)


def merged_keys(own: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """Return the family's own keys followed by the variant keys it does not already have."""
    return own + tuple(key for key in extra if key not in own)
