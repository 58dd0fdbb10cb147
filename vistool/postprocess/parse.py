"""The one entry point from a model's answer text to a typed result in pixels.

    result = parse(text, image_size=(W, H), profile="gemma4", kind="boxes", classes=[...])
    result.detections          # sv.Detections in pixels of the displayed image
    result.diagnostics         # what was found, kept, dropped (and why), repaired

Tests, task adapters and users all call this. It never raises on any answer text; it
raises `VistoolError` only for wrong arguments (unknown profile or kind, bad size,
missing resized size for a family that answers in resized pixels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import supervision as sv

from vistool import profiles
from vistool.errors import VistoolError
from vistool.postprocess import geometry, scales
from vistool.postprocess.diagnostics import DUPLICATE, INTERNAL_ERROR, SUPPRESSED, Diagnostics, snippet
from vistool.postprocess.duplicates import (
    DEFAULT_DUPLICATE_IOU,
    DUPLICATE_WINDOW,
    duplicates_limited,
    find_duplicates,
    suppressed,
)
from vistool.postprocess.fastlane import MappedBoxes, SimpleAnswer, map_simple, read_simple
from vistool.postprocess.readers import RawItems, read_json
from vistool.postprocess.results import (
    SPAN_FIELD,
    OCRRegion,
    OCRResult,
    PointsResult,
    Span,
    assign_class_ids,
    detections_from_dict,
    detections_to_dict,
    make_detections,
    spans_array,
    spans_list,
)
from vistool.profiles.base import KINDS, ModelProfile

Result = Union[sv.Detections, PointsResult, OCRResult]
DEFAULT_LABEL = "object"


@dataclass
class ParseResult:
    """A parsed answer.

    kind: "boxes", "points" or "ocr_regions"; profile: the family's name; image_size:
    the displayed (width, height) the pixels refer to; result: `sv.Detections` (boxes),
    `PointsResult` (points) or `OCRResult` (OCR regions); diagnostics: the parse report.
    """

    kind: str
    profile: str
    image_size: tuple[int, int]
    result: Result
    diagnostics: Diagnostics

    def __len__(self) -> int:
        return len(self.result)

    @property
    def detections(self) -> sv.Detections:
        """The result as `sv.Detections` (boxes; OCR regions with their quads; points as zero-size boxes)."""
        if isinstance(self.result, sv.Detections):
            return self.result
        return self.result.to_detections()

    @property
    def spans(self) -> list[Span | None]:
        """Each kept item's (start, end) in the answer text, None where unknown."""
        if isinstance(self.result, sv.Detections):
            return spans_list(self.result.data.get(SPAN_FIELD), len(self.result))
        if isinstance(self.result, PointsResult):
            return spans_list(self.result.spans, len(self.result))
        return [region.span for region in self.result.regions]

    def set_confidence(self, values: Sequence[float] | np.ndarray | None) -> None:
        """Set one confidence per kept item (e.g. from token log-probabilities), or None to clear."""
        count = len(self.result)
        array = None if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
        if array is not None and len(array) != count:
            raise VistoolError(f"expected {count} confidence values, got {len(array)}")
        if isinstance(self.result, OCRResult):
            for index, region in enumerate(self.result.regions):
                region.confidence = None if array is None else float(array[index])
        else:
            self.result.confidence = array

    def suppress_overlaps(self, iou: float, text: str = "") -> int:
        """Apply class-wise non-maximum suppression in place; return how many items it removed.

        Takes the IoU above which the lower-ranked of two items with the same label goes
        (ranked by confidence when every item has one, else by the answer's order) and,
        optionally, the answer text (for the excerpts in the diagnostics). Boxes and OCR
        regions only; points are left as they are. Each removal is reported as dropped
        ("suppressed").
        """
        if isinstance(self.result, sv.Detections):
            boxes = self.result.xyxy
            labels = list(self.result.data.get("class_name", [None] * len(boxes)))
            scores = self.result.confidence
        elif isinstance(self.result, OCRResult):
            regions = self.result.regions
            boxes = np.array([region.box for region in regions], dtype=np.float64).reshape(len(regions), 4)
            labels = [region.text for region in regions]
            values = [region.confidence for region in regions]
            scores = None if None in values else np.array(values, dtype=np.float64)
        else:
            return 0
        removed = suppressed(boxes, labels, scores, iou)
        if not removed:
            return 0
        spans = self.spans
        keep = np.ones(len(boxes), dtype=bool)
        for index, by, overlap in removed:
            keep[index] = False
            span = spans[index]
            excerpt = snippet(text, *span) if text and span else ""
            self.diagnostics.drop(SUPPRESSED, f"overlaps a higher-ranked {labels[by]!r} (IoU {overlap:.2f})", excerpt, span)
        if isinstance(self.result, sv.Detections):
            self.result = self.result[keep]
        else:
            self.result = OCRResult([region for region, kept in zip(self.result.regions, keep.tolist()) if kept])
        self.diagnostics.kept = int(keep.sum())
        return len(removed)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of the whole parse (result and diagnostics)."""
        if isinstance(self.result, sv.Detections):
            result = detections_to_dict(self.result)
        else:
            result = self.result.to_dict()
        return {
            "kind": self.kind,
            "profile": self.profile,
            "image_size": list(self.image_size),
            "result": result,
            "diagnostics": self.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ParseResult":
        """Rebuild a parse written by `to_dict`."""
        kind = data["kind"]
        result: Result
        if kind == "boxes":
            result = detections_from_dict(data["result"])
        elif kind == "points":
            result = PointsResult.from_dict(data["result"])
        else:
            result = OCRResult.from_dict(data["result"])
        width, height = data["image_size"]
        return cls(kind, data["profile"], (int(width), int(height)), result, Diagnostics.from_dict(data["diagnostics"]))

    def to_json(self) -> str:
        """Return the parse as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "ParseResult":
        """Rebuild a parse from `to_json` output."""
        return cls.from_dict(json.loads(text))


def parse(
    text: str,
    image_size: tuple[int, int],
    profile: str | ModelProfile = "gemma4",
    kind: str = "boxes",
    *,
    classes: Sequence[str] | None = None,
    resized_size: tuple[int, int] | None = None,
    confidence: Sequence[float] | np.ndarray | None = None,
    duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
) -> ParseResult:
    """Parse a model's answer into a typed result in pixels of the displayed image.

    Takes the answer text; the displayed image's (width, height) (after EXIF transpose:
    the size the model saw, before its processor resized it); the model family (a
    profile name or record); the kind ("boxes", "points", "ocr_regions"); optionally the
    requested classes (they fix `class_id`: requested classes in the order asked, other
    labels after them), the processor-resized (width, height) for families that answer in
    resized pixels (Qwen2.5-VL), one confidence per kept item, and the IoU at or above
    which an item with the same label as an earlier one is a duplicate and dropped
    (points: the same position; None keeps every copy).
    Returns a `ParseResult`. Never raises on any text; raises VistoolError on bad arguments.
    """
    prof, reader, sizes, resized = _arguments([text], [image_size], profile, kind, [resized_size])
    wanted = list(classes) if classes is not None else None
    parsed = _parse_one(text, reader, prof, kind, sizes[0], resized[0], wanted, duplicate_iou)
    if confidence is not None:
        parsed.set_confidence(confidence)
    return parsed


def parse_many(
    texts: Sequence[str],
    image_sizes: Sequence[tuple[int, int]],
    profile: str | ModelProfile = "gemma4",
    kind: str = "boxes",
    *,
    classes: Sequence[str] | None = None,
    resized_sizes: Sequence[tuple[int, int] | None] | None = None,
    duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
) -> list[ParseResult]:
    """Parse a batch of answers of one family and kind; the same results as `parse` on each.

    Takes the answer texts, one displayed (width, height) per answer, the family, the
    kind, the requested classes, (for families that answer in resized pixels) one
    resized (width, height) per answer, and the duplicate threshold (as `parse`).
    Returns one `ParseResult` per answer, in order.
    Clean JSON box answers go through the fast lane (vistool.postprocess.fastlane),
    which does the numeric work once for the whole batch; the rest are parsed one by one
    (as `parse` parses a single answer: for one answer the lane's batch steps cost more
    than they save).
    Never raises on any text; raises VistoolError on bad arguments.
    """
    prof, reader, sizes, resized = _arguments(texts, image_sizes, profile, kind, resized_sizes)
    wanted = list(classes) if classes is not None else None
    simple, mapped = _fast_lane(texts, sizes, prof, kind, resized, duplicate_iou)
    results = []
    for index, text in enumerate(texts):
        bounds = mapped.bounds[index]
        if bounds is None:
            results.append(_parse_one(text, reader, prof, kind, sizes[index], resized[index], wanted, duplicate_iou))
            continue
        answer = simple[index]
        assert answer is not None
        count = len(answer.labels)
        diagnostics = Diagnostics(profile=prof.name, kind=kind, found=count, kept=count)
        start, stop = bounds
        detections, unknown = make_detections(mapped.xyxy[start:stop].copy(), answer.labels, wanted, None, mapped.spans[start:stop].copy())
        diagnostics.unknown_labels = unknown if wanted is not None else []
        results.append(ParseResult(kind, prof.name, sizes[index], detections, diagnostics))
    return results


def _arguments(
    texts: Sequence[str],
    image_sizes: Sequence[tuple[int, int]],
    profile: str | ModelProfile,
    kind: str,
    resized_sizes: Sequence[tuple[int, int] | None] | None,
) -> tuple[ModelProfile, Any, list[tuple[int, int]], list[tuple[int, int] | None]]:
    """Check the arguments of a parse; return (profile, reader, sizes, resized sizes).

    Raises VistoolError naming what is wrong: an unknown family or kind, a bad size, a
    missing resized size, a count mismatch, an answer that is not a string.
    """
    prof = profiles.get_profile(profile) if isinstance(profile, str) else profile
    if kind not in KINDS:
        raise VistoolError(f"unknown answer kind {kind!r}; use one of {', '.join(KINDS)}")
    reader = prof.reader(kind)
    sizes = [geometry.check_size(size) for size in image_sizes]
    resized = [None] * len(sizes) if resized_sizes is None else list(resized_sizes)
    if len(texts) != len(sizes) or len(resized) != len(sizes):
        raise VistoolError(f"got {len(texts)} answers, {len(sizes)} image sizes and {len(resized)} resized sizes")
    resized = [geometry.check_size(size, "resized_size") if size is not None else None for size in resized]
    if prof.needs_resized_size and None in resized:
        raise VistoolError(f"model family {prof.name!r} answers in pixels of the resized image: pass resized_size=(W, H)")
    for text in texts:
        if not isinstance(text, str):
            raise VistoolError(f"the answer must be a string, got {type(text).__name__}")
    return prof, reader, sizes, resized


def _fast_lane(
    texts: Sequence[str],
    sizes: list[tuple[int, int]],
    profile: ModelProfile,
    kind: str,
    resized: list[tuple[int, int] | None],
    duplicate_iou: float | None,
) -> tuple[list[SimpleAnswer | None], MappedBoxes]:
    """Read and map the answers the fast lane takes; the others get bounds None."""
    nothing = MappedBoxes(np.empty((0, 4)), np.empty((0, 2), dtype=np.int64), [None] * len(texts))
    if kind != "boxes" or getattr(profile.readers.get(kind), "func", None) is not read_json:
        return [None] * len(texts), nothing
    try:
        simple = [read_simple(text, profile) for text in texts]
        return simple, map_simple(simple, sizes, profile, resized, duplicate_iou)
    except Exception:  # the lane is an optimisation: anything unexpected goes the general way
        return [None] * len(texts), nothing


def _parse_one(
    text: str,
    reader: Any,
    profile: ModelProfile,
    kind: str,
    size: tuple[int, int],
    resized: tuple[int, int] | None,
    classes: list[str] | None,
    duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
) -> ParseResult:
    """Parse one answer the general way (any text, any kind); report instead of raising."""
    try:
        return _build(text, reader(text, profile), profile, kind, size, resized, classes, duplicate_iou)
    except Exception as error:  # the contract is "never raise on any text": report instead
        diagnostics = Diagnostics(profile=profile.name, kind=kind)
        diagnostics.drop(INTERNAL_ERROR, f"{type(error).__name__}: {error}")
        return ParseResult(kind, profile.name, size, _empty(kind), diagnostics)


def _empty(kind: str) -> Result:
    """Return an empty result of `kind`."""
    if kind == "boxes":
        return make_detections(np.empty((0, 4)), [])[0]
    if kind == "points":
        return PointsResult(np.empty((0, 2)), np.empty(0, dtype=np.int64), [])
    return OCRResult()


def _model_confidence(scores: list[float | None]) -> np.ndarray | None:
    """Return the scores the model wrote, when every kept item has one."""
    if not scores or None in scores:
        return None
    return np.array(scores, dtype=np.float64)


def _build(
    text: str,
    raw: RawItems,
    profile: ModelProfile,
    kind: str,
    image_size: tuple[int, int],
    resized_size: tuple[int, int] | None,
    classes: list[str] | None,
    duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
) -> ParseResult:
    """Map raw items to pixels, clean them, drop duplicates, and build the result of `kind`."""
    diagnostics = raw.diagnostics
    diagnostics.profile, diagnostics.kind = profile.name, kind
    scale = scales.detect(raw.coords, profile, image_size, resized_size)
    if scale.found is not None:
        diagnostics.coordinate_scale = scale.found
        diagnostics.repair(scales.describe(scale.found, profile))
    pixels = geometry.to_pixels(raw.coords, scale.system, image_size, scale.resized)
    if kind == "points":
        fixed = geometry.fix_points(pixels, image_size)
    elif kind == "ocr_regions":
        quads = geometry.boxes_to_quads(pixels) if pixels.shape[1] == 4 else pixels.reshape(-1, 4, 2)
        fixed = geometry.fix_quads(quads, image_size)
    else:
        fixed = geometry.fix_boxes(pixels, image_size)
    values, spans, scores, labels = fixed.values, raw.spans, raw.confidence, raw.labels
    if fixed.dropped:
        for index, reason in fixed.dropped:
            span = spans[index]
            diagnostics.drop(reason, "after mapping to the image", snippet(text, *span) if span else "", span)
        keep = fixed.keep.tolist()
        values = values[fixed.keep]
        spans = [span for span, kept in zip(spans, keep) if kept]
        scores = [score for score, kept in zip(scores, keep) if kept]
        labels = [label for label, kept in zip(labels, keep) if kept]
    diagnostics.reordered += fixed.reordered
    diagnostics.clipped += fixed.clipped
    if classes and len(classes) == 1:
        labels = [classes[0] if label is None else label for label in labels]
    overlap_values = geometry.quads_to_boxes(values) if kind == "ocr_regions" else values
    duplicates = find_duplicates(overlap_values, labels, duplicate_iou)
    if duplicate_iou is not None and duplicates_limited(labels):
        diagnostics.repair(f"duplicates looked for among the {DUPLICATE_WINDOW} earlier items of each label and exact "
                           "copies only (too many items of one label to compare every pair)")
    if duplicates:
        keep_mask = np.ones(len(values), dtype=bool)
        for index, _, overlap in duplicates:
            keep_mask[index] = False
            span = spans[index]
            detail = "repeats an earlier point with the same label"
            if kind != "points":
                detail = f"repeats an earlier item with the same label (IoU {overlap:.2f})"
            diagnostics.drop(DUPLICATE, detail, snippet(text, *span) if span else "", span)
        keep = keep_mask.tolist()
        values = values[keep_mask]
        spans = [span for span, kept in zip(spans, keep) if kept]
        scores = [score for score, kept in zip(scores, keep) if kept]
        labels = [label for label, kept in zip(labels, keep) if kept]
    diagnostics.kept = len(values)
    diagnostics.found = diagnostics.kept + len(diagnostics.dropped)
    result = _result(kind, values, labels, _model_confidence(scores), spans, classes, diagnostics)
    return ParseResult(kind, profile.name, image_size, result, diagnostics)


def _result(
    kind: str,
    values: np.ndarray,
    labels: list[str | None],
    confidence: np.ndarray | None,
    spans: list[Span | None] | np.ndarray,
    classes: list[str] | None,
    diagnostics: Diagnostics,
) -> Result:
    """Build the typed result of `kind` from cleaned pixel values (boxes, points or quads)."""
    if kind == "ocr_regions":
        boxes = geometry.quads_to_boxes(values)
        scores = [None] * len(values) if confidence is None else confidence.tolist()
        return OCRResult(
            [
                OCRRegion(
                    text=label or "",
                    quad=tuple((float(x), float(y)) for x, y in quad.tolist()),
                    box=tuple(box.tolist()),  # type: ignore[arg-type]
                    confidence=score,
                    span=span,
                )
                for label, quad, box, score, span in zip(labels, values, boxes, scores, spans)
            ]
        )
    names = [label if label is not None else DEFAULT_LABEL for label in labels]
    result: Result
    if kind == "points":
        class_id, names, unknown = assign_class_ids(names, classes)
        result = PointsResult(values, class_id, names, confidence, spans_array(spans))
    else:
        result, unknown = make_detections(values, names, classes, confidence, spans)
    diagnostics.unknown_labels = unknown if classes is not None else []
    return result
