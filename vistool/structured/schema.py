"""The JSON schema of a task's answer, built from what the task declares and the family's profile.

A task declares the shape of one answer item (`AnswerShape`: a box or a point, a label,
an OCR text, extra fields); the profile says the key names (`box_keys[0]`,
`point_keys[0]`, `label_keys[0]`, `text_keys[0]`) and the coordinate range
(`CoordSystem`: 0..1000, 1024 bins, or pixels). `answer_schema` joins them into the
JSON schema that constrained decoding enforces, with the keys in the order the prompt
asks for (coordinates first, as Gemma 4's published answers write them):

    [{"box_2d": [y1, x1, y2, x2], "label": "cat"}, ...]   -> an array of objects,
    each with exactly these keys, 4 integers in range, a label from the asked classes.

Location-token families (PaliGemma 2, Florence-2) do not answer in JSON: for them
`answer_schema` returns None and `unstructured_reason` says why; the runtime then
generates free and the result records it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vistool.profiles.base import CoordSystem, ModelProfile

LABEL_MAX_CHARS = 80  # a class name or a referring expression
TEXT_MAX_CHARS = 300  # one OCR line (or word) or a GUI element's visible text
OTHER_LABEL = "other"  # the escape label offered when unknown labels are allowed

LabelRule = Literal["classes", "free", "none"]


@dataclass(frozen=True)
class AnswerShape:
    """What one item of a task's JSON answer holds (declared by the task).

    coords: "box" (the profile's box key, 4 numbers) or "point" (its point key, 2).
    point: the item also carries a point after its box (GUI grounding's click).
    label: "classes" (an enum of the asked classes when the task has a class list,
      else a free string), "free" (a string), "none" (no label), or a tuple of names
      (a fixed enum, e.g. GUI element types).
    text: the item carries an OCR text under the profile's text key.
    extra: further fields (name, JSON schema) in the order the prompt names them.
    min_items / max_items: bounds on the list length (max None: unbounded).
    """

    coords: Literal["box", "point"] = "box"
    point: bool = False
    label: LabelRule | tuple[str, ...] = "free"
    text: bool = False
    extra: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    min_items: int = 0
    max_items: int | None = None


@dataclass(frozen=True)
class SchemaPlan:
    """The outcome of planning structured generation for one request.

    schema: the JSON schema to enforce (None: generate free); reason: why there is no
    schema when one was wanted (empty otherwise).
    """

    schema: dict[str, Any] | None
    reason: str = ""


def unstructured_reason(profile: ModelProfile) -> str:
    """Say why a family cannot be constrained to JSON ("" when it can)."""
    if profile.loc_format is not None:
        return f"{profile.name} answers with location tokens, not JSON: generated free"
    if not profile.box_keys or not profile.point_keys:
        return f"{profile.name} declares no JSON answer keys: generated free"
    return ""


def coordinate_schema(system: CoordSystem, count: int) -> dict[str, Any]:
    """Return the schema of `count` coordinates in a family's range.

    0..scale for families that round (0..1000), 0..scale-1 for bins (PaliGemma's
    1024), and non-negative integers for pixels of the resized image (Qwen2.5-VL,
    whose range is only known after preprocessing).
    """
    number: dict[str, Any] = {"type": "integer", "minimum": 0}
    if system.scale is not None:
        top = system.scale - 1 if system.quantise == "floor" else system.scale
        number["maximum"] = int(top)
    return {"type": "array", "items": number, "minItems": count, "maxItems": count}


def _string(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


def _label_schema(rule: LabelRule | tuple[str, ...], classes: Sequence[str] | None, allow_other: bool) -> dict[str, Any] | None:
    """Return the label's schema, or None when the item has no label."""
    if rule == "none":
        return None
    if isinstance(rule, tuple):
        names = list(rule)
    elif rule == "classes" and classes:
        names = list(dict.fromkeys(classes))
    else:
        return _string(LABEL_MAX_CHARS)
    if allow_other and OTHER_LABEL not in names:
        names.append(OTHER_LABEL)
    return {"type": "string", "enum": names}


def answer_schema(
    shape: AnswerShape,
    profile: ModelProfile,
    classes: Sequence[str] | None = None,
    allow_other: bool = False,
) -> SchemaPlan:
    """Build the JSON schema of an answer: a list of items of `shape` in `profile`'s keys.

    Takes the task's item shape, the family's profile, the asked classes (for a
    "classes" label: the enum) and whether an "other" label may stand for objects
    outside them. Returns a `SchemaPlan` (schema None with the reason for families that
    do not answer in JSON).
    """
    reason = unstructured_reason(profile)
    if reason:
        return SchemaPlan(None, reason)
    properties: dict[str, Any] = {}
    if shape.coords == "box":
        properties[profile.box_keys[0]] = coordinate_schema(profile.coords, 4)
    else:
        properties[profile.point_keys[0]] = coordinate_schema(profile.coords, 2)
    if shape.point:
        properties[profile.point_keys[0]] = coordinate_schema(profile.coords, 2)
    label = _label_schema(shape.label, classes, allow_other)
    if label is not None and profile.label_keys:
        properties[profile.label_keys[0]] = label
    if shape.text and profile.text_keys:
        properties.setdefault(profile.text_keys[0], _string(TEXT_MAX_CHARS))
    for name, value in shape.extra:
        properties.setdefault(name, dict(value))
    item = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    schema: dict[str, Any] = {"type": "array", "items": item}
    if shape.min_items:
        schema["minItems"] = shape.min_items
    if shape.max_items is not None:
        schema["maxItems"] = shape.max_items
    return SchemaPlan(schema)


def schema_id(schema: Mapping[str, Any]) -> str:
    """Return a short stable id of a schema (hex sha256 of its canonical JSON, 16 digits)."""
    canonical = json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
