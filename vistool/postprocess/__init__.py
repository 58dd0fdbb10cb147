"""Post-processing: a model's answer text -> typed results in pixels -> drawings and COCO.

    from vistool.postprocess import parse, draw
    parsed = parse(text, image_size=(W, H), profile="gemma4", kind="boxes", classes=["cat"])
    parsed.detections, parsed.diagnostics
    draw(image, parsed)

Modules, one job each: extract (text -> JSON items with spans), readers (items ->
numbers in the model's convention), geometry (-> pixels, clip, reorder, drop), results
(typed results and JSON), parse (the entry point), draw, coco, oracle (native answers
from ground truth).
"""

from vistool.postprocess.diagnostics import Diagnostics, Dropped
from vistool.postprocess.extract import Extraction, extract_json_items
from vistool.postprocess.readers import RawItems, read_json, read_loc_tokens
from vistool.postprocess.results import (
    OCRRegion,
    OCRResult,
    PointsResult,
    assign_class_ids,
    detections_from_dict,
    detections_to_dict,
)
# The profiles import the readers above; modules below reach the profile registry only
# through `vistool.profiles.<name>` at call time, so either package may be imported first.
from vistool.postprocess.parse import ParseResult, parse, parse_many
from vistool.postprocess.coco import coco_categories, coco_to_detections, detections_to_coco, detections_to_coco_gt
from vistool.postprocess.draw import draw
from vistool.postprocess.oracle import format_answer

__all__ = [
    "Diagnostics",
    "Dropped",
    "Extraction",
    "OCRRegion",
    "OCRResult",
    "ParseResult",
    "PointsResult",
    "RawItems",
    "assign_class_ids",
    "coco_categories",
    "coco_to_detections",
    "detections_from_dict",
    "detections_to_coco",
    "detections_to_coco_gt",
    "detections_to_dict",
    "draw",
    "extract_json_items",
    "format_answer",
    "parse",
    "parse_many",
    "read_json",
    "read_loc_tokens",
]
