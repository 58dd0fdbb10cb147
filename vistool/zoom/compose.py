"""Composing the passes of a zoomed call into one result: tiles merged, provenance written.

`merge_tiles` moves every tile's items into the whole image, merges the duplicates
(`vistool.zoom.merge`) and rebuilds the task's result: boxes as `sv.Detections`, points,
or OCR regions (in reading order), with the GUI elements' fields kept. `zoom_provenance`
records every pass and the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vistool.postprocess import Diagnostics, OCRRegion, OCRResult, ParseResult, PointsResult, assign_class_ids
from vistool.postprocess.results import make_detections
from vistool.profiles.base import ModelProfile
from vistool.runtime.types import GenerationRequest
from vistool.tasks import TaskResult, TaskSpec
from vistool.zoom.mapping import is_whole, shift_result
from vistool.zoom.merge import join_texts, merge_boxes, merge_points
from vistool.zoom.settings import ZoomSettings
from vistool.zoom.tiling import seen_scale

if TYPE_CHECKING:
    from vistool.zoom.planner import Pass

_SKIP_DATA = ("class_name", "span")  # rebuilt by make_detections


def merge_diagnostics(parts: Sequence[Diagnostics], kept: int, profile: str, kind: str) -> Diagnostics:
    """Return one report for the answers of several tiles: counts added, lists joined,
    `kept` the items left after merging."""
    merged = Diagnostics(profile=profile, kind=kind, kept=kept)
    for part in parts:
        merged.found += part.found
        merged.dropped.extend(part.dropped)
        for note in part.repairs:
            merged.repair(note)
        merged.truncated = merged.truncated or part.truncated
        merged.reordered += part.reordered
        merged.clipped += part.clipped
        merged.unknown_labels.extend(label for label in part.unknown_labels if label not in merged.unknown_labels)
    return merged


def merge_tiles(spec: TaskSpec, profile: ModelProfile, options: dict[str, Any], passes: Sequence["Pass"],
                image_size: tuple[int, int], zoom: ZoomSettings, budget: int | None) -> TaskResult:
    """Return one result on the whole image from the results of its tiles.

    Takes the task, the family, the task options, the answered passes, the image
    (width, height), the zoom settings and the budget the tiles were asked at.
    """
    moved = [shift_result(step.result, step.box, image_size) for step in passes]  # type: ignore[arg-type]
    tiles = [step.box for step in passes]
    scales = [seen_scale(profile, step.size, budget) for step in passes]
    parsed_parts = [result.parsed for result in moved if result.parsed is not None]
    kind = spec.kind or "boxes"
    result = TaskResult(task=spec.name, source=passes[0].result.source if passes else "", image_size=image_size,  # type: ignore[union-attr]
                        text="\n\n".join(result.text for result in moved))
    if parsed_parts:
        merge = {"boxes": _merge_box_results, "points": _merge_point_results, "ocr_regions": _merge_ocr_results}[kind]
        parsed, extras = merge(spec, options, moved, tiles, scales, image_size, zoom)
        parsed.diagnostics = merge_diagnostics([part.diagnostics for part in parsed_parts], len(parsed), profile.name, kind)
        result.parsed = parsed
        result.extras.update(extras)
    if spec.finish is not None and "elements" not in result.extras:
        spec.finish(result, options)
    result.provenance = dict(moved[0].provenance) if moved else {}
    return result


def _sources(counts: Sequence[int]) -> np.ndarray:
    """The tile index of every item, from the item count of each tile."""
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def _merge_box_results(spec, options, moved, tiles, scales, image_size, zoom):
    """Merge the boxes of every tile (with the GUI elements that go with them)."""
    detections = [result.parsed.detections for result in moved]
    counts = [len(found) for found in detections]
    xyxy = np.concatenate([found.xyxy for found in detections]) if sum(counts) else np.zeros((0, 4))
    names = [str(name) for found in detections for name in found.data.get("class_name", [])]
    classes = spec.classes(options)
    keys, _, _ = assign_class_ids(names, classes)
    confidence = _confidence([found.confidence for found, count in zip(detections, counts) if count])
    merged = merge_boxes(xyxy, keys, _sources(counts), tiles, scales, image_size, confidence=confidence, iou=zoom.iou, method=zoom.merge)
    picks = [item.index for item in merged]
    boxes = np.array([item.value for item in merged], dtype=np.float64).reshape(-1, 4)
    scores = None if confidence is None else [item.confidence for item in merged]
    result, _ = make_detections(boxes, [names[index] for index in picks], classes, scores)
    shared = set.intersection(*(set(found.data) for found, count in zip(detections, counts) if count)) if sum(counts) else set()
    for key in sorted(shared - set(_SKIP_DATA)):
        values = np.concatenate([np.asarray(found.data[key]) for found, count in zip(detections, counts) if count])
        result.data[key] = values[picks]
    extras: dict[str, Any] = {}
    elements = [element for moved_result in moved for element in (moved_result.extras.get("elements") or [])]
    if any("elements" in moved_result.extras for moved_result in moved) and len(elements) == len(names):
        extras["elements"] = [{**elements[index], "box": [float(v) for v in box]} for index, box in zip(picks, boxes)]
    parsed = ParseResult("boxes", moved[0].parsed.profile, image_size, result, Diagnostics())
    return parsed, extras


def _merge_point_results(spec, options, moved, tiles, scales, image_size, zoom):
    """Merge the points of every tile."""
    points = [result.parsed.result for result in moved]
    counts = [len(found) for found in points]
    xy = np.concatenate([found.xy for found in points]) if sum(counts) else np.zeros((0, 2))
    names = [name for found in points for name in found.class_name]
    classes = spec.classes(options)
    keys, _, _ = assign_class_ids(names, classes)
    confidence = _confidence([found.confidence for found, count in zip(points, counts) if count])
    radius = zoom.point_radius
    if radius is None:
        radius = max(4.0, 0.01 * min(min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in tiles))
    merged = merge_points(xy, keys, _sources(counts), tiles, scales, image_size, confidence=confidence, radius=radius)
    picked = [names[item.index] for item in merged]
    ids, labels, _ = assign_class_ids(picked, classes)
    values = np.array([item.value for item in merged], dtype=np.float64).reshape(-1, 2)
    scores = None if confidence is None else [item.confidence for item in merged]
    result = PointsResult(values, ids, labels, scores)
    return ParseResult("points", moved[0].parsed.profile, image_size, result, Diagnostics()), {}


def _merge_ocr_results(spec, options, moved, tiles, scales, image_size, zoom):
    """Merge the text regions of every tile; a line cut by every tile is joined."""
    regions = [region for result in moved for region in result.parsed.result.regions]
    counts = [len(result.parsed.result.regions) for result in moved]
    xyxy = np.array([region.box for region in regions], dtype=np.float64).reshape(-1, 4)
    values = [region.confidence for region in regions]
    confidence = None if not regions or any(value is None for value in values) else np.array(values, dtype=np.float64)
    merged = merge_boxes(xyxy, np.zeros(len(regions), dtype=np.int64), _sources(counts), tiles, scales, image_size,
                         confidence=confidence, iou=zoom.iou, method=zoom.merge)
    kept: list[OCRRegion] = []
    for item in merged:
        source = regions[item.index]
        box = tuple(float(v) for v in item.value)
        if np.allclose(box, source.box):
            kept.append(OCRRegion(source.text, source.quad, source.box, item.confidence))
            continue
        pieces = [(regions[index].box[0], regions[index].text) for index in item.members]
        text = join_texts(pieces) if len(item.members) > 1 and not _has_whole(item, xyxy) else source.text
        x1, y1, x2, y2 = box
        kept.append(OCRRegion(text, ((x1, y1), (x2, y1), (x2, y2), (x1, y2)), box, item.confidence))  # type: ignore[arg-type]
    kept = _reading_order(kept)
    return ParseResult("ocr_regions", moved[0].parsed.profile, image_size, OCRResult(kept), Diagnostics()), {}


def _has_whole(item, xyxy: np.ndarray) -> bool:
    """True when the merged box is one member's box (nms/wbf of whole views, not a union)."""
    return any(np.allclose(item.value, xyxy[index]) for index in item.members)


def _reading_order(regions: list[OCRRegion]) -> list[OCRRegion]:
    """Sort text regions into rows (by their centre, a median line height apart), then left to right."""
    if len(regions) < 2:
        return regions
    heights = [max(region.box[3] - region.box[1], 1.0) for region in regions]
    line = float(np.median(heights))
    return sorted(regions, key=lambda region: (int(((region.box[1] + region.box[3]) / 2) // line), region.box[0]))


def _confidence(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Concatenated confidences, or None when any tile with items has none."""
    if not parts or any(part is None for part in parts):
        return None
    return np.concatenate([np.asarray(part, dtype=np.float64) for part in parts])


def pass_record(step: "Pass", image_size: tuple[int, int]) -> dict[str, Any]:
    """Return the provenance record of one pass: purpose, crop box, prompt, answer, cost."""
    response = step.response
    found = None if step.result is None or step.result.parsed is None else len(step.result.parsed)
    return {
        "index": step.index,
        "purpose": step.purpose,
        "task": step.spec.name,
        "crop": list(step.box),
        "whole_image": is_whole(step.box, image_size),
        "prompt": step.request.prompt,
        "answer": None if response is None else (response.raw_text or response.text),
        "items": found,
        "resized": None if response is None or not response.image_sizes else list(response.image_sizes[0]),
        "image_tokens": None if response is None else response.image_tokens,
        "generated_tokens": None if response is None else response.generated_tokens,
        "error": None if response is None else response.error,
    }


def zoom_provenance(passes: Sequence["Pass"], base: dict[str, Any], task_request: GenerationRequest, zoom: ZoomSettings,
                    grid: dict[str, Any] | None, merged: ParseResult | None, image_size: tuple[int, int]) -> dict[str, Any]:
    """Return a zoomed result's provenance: the base record (model, settings, ...) with
    the task's prompt, token counts summed over the passes, and `zoom`: mode, settings,
    tile grid, every pass and the cost (model calls, image and generated tokens)."""
    answered = [step for step in passes if step.response is not None]
    records = [pass_record(step, image_size) for step in passes]
    items_before = sum(record["items"] or 0 for record in records if record["purpose"] in ("tile", "whole"))
    cost = {
        "model_calls": len(answered),
        "image_tokens": sum(step.response.image_tokens for step in answered),  # type: ignore[union-attr]
        "prompt_tokens": sum(step.response.prompt_tokens for step in answered),  # type: ignore[union-attr]
        "generated_tokens": sum(step.response.generated_tokens for step in answered),  # type: ignore[union-attr]
    }
    provenance = dict(base)
    if not provenance and answered:
        provenance = dict(answered[0].response.settings)  # type: ignore[union-attr]
    provenance.update(
        prompt=task_request.prompt,
        prompt_tokens=cost["prompt_tokens"],
        image_tokens=cost["image_tokens"],
        generated_tokens=cost["generated_tokens"],
        timings=_timings(answered),
        zoom={
            "mode": zoom.mode,
            "settings": zoom.to_dict(),
            "grid": grid,
            "passes": records,
            "merged": None if zoom.mode != "tiles" or merged is None else {"items_before": items_before, "items_after": len(merged)},
            "cost": cost,
        },
    )
    return provenance


def _timings(passes: Sequence["Pass"]) -> dict[str, float]:
    """The passes' backend timings, added up key by key."""
    total: dict[str, float] = {}
    for step in passes:
        for key, value in (step.response.timings or {}).items():  # type: ignore[union-attr]
            if isinstance(value, (int, float)):
                total[key] = total.get(key, 0.0) + float(value)
    return total
