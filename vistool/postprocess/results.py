"""Typed results and their JSON form.

  - boxes are `sv.Detections` (xyxy float pixels, `class_id`, `confidence` or None,
    `data["class_name"]`, and `data["span"]`: each item's (start, end) in the answer
    text, -1 when unknown); `detections_to_dict` / `detections_from_dict` serialise them;
  - points are a `PointsResult`, convertible to `sv.KeyPoints`;
  - OCR regions are an `OCRResult` of `OCRRegion`s (text + quad + box).
Every result goes to a JSON-able dict and back without loss (float64 values survive
JSON exactly).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import supervision as sv
from supervision.config import CLASS_NAME_DATA_FIELD, ORIENTED_BOX_COORDINATES

from vistool.errors import VistoolError

SPAN_FIELD = "span"
Span = tuple[int, int]


_IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "knives": "knife", "leaves": "leaf",
    "wolves": "wolf", "shelves": "shelf", "sheep": "sheep", "fish": "fish",
}


def _match_word(word: str) -> str:
    """Return a key under which the singular and plural of a noun coincide (cars/car,
    buses/bus, boxes/box, horses/horse, berries/berry, people/person). It is a matching
    key, not a spelling: a trailing plural "s" and then a trailing "e" are dropped."""
    word = _IRREGULAR_PLURALS.get(word, word)
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


@lru_cache(maxsize=4096)
def _norm(label: str) -> str:
    """Label key for matching requested classes: case-folded, single spaces, and the last
    word's plural folded onto its singular."""
    words = label.casefold().replace("_", " ").split()
    if words:
        words[-1] = _match_word(words[-1])
    return " ".join(words)


def assign_class_ids(labels: Sequence[str], classes: Sequence[str] | None) -> tuple[np.ndarray, list[str], list[str]]:
    """Give every label a stable class id.

    Takes the labels of the items and the classes the task asked for (None: none).
    A label matching a requested class (ignoring case and spacing) gets that class's
    index and its requested spelling; other labels get ids after the requested ones, in
    order of first appearance. Returns (class_id int array, class names, unknown labels).
    """
    distinct = list(dict.fromkeys(labels))  # in order of first appearance
    if not classes and len(set(map(_norm, distinct))) == len(distinct):
        # The common case: no classes asked for, no two spellings of one class.
        ids_of = dict(zip(distinct, range(len(distinct))))
        return np.fromiter(map(ids_of.__getitem__, labels), dtype=np.int64, count=len(labels)), list(labels), distinct
    ids: dict[str, int] = {}
    names: dict[str, str] = {}
    for index, name in enumerate(classes or ()):
        key = _norm(name)
        if key not in ids:
            ids[key] = index
            names[key] = name
    base = len(classes or ())
    unknown: list[str] = []
    label_id: dict[str, int] = {}  # label as written -> class id
    label_name: dict[str, str] = {}  # label as written -> class name
    for label in distinct:
        key = _norm(label)
        if key not in ids:
            ids[key] = base + len(unknown)
            names[key] = label
            unknown.append(label)
        label_id[label] = ids[key]
        label_name[label] = names[key]
    class_id = np.fromiter(map(label_id.__getitem__, labels), dtype=np.int64, count=len(labels))
    return class_id, list(map(label_name.__getitem__, labels)), unknown


def spans_array(spans: Sequence[Span | None] | np.ndarray) -> np.ndarray:
    """Return spans as an int array (n, 2), with -1 for unknown spans (an array passes through)."""
    if isinstance(spans, np.ndarray):
        return spans
    if None not in spans:
        return np.fromiter(chain.from_iterable(spans), dtype=np.int64, count=2 * len(spans)).reshape(len(spans), 2)
    array = np.full((len(spans), 2), -1, dtype=np.int64)
    for index, span in enumerate(spans):
        if span is not None:
            array[index] = span
    return array


def spans_list(array: np.ndarray | None, count: int) -> list[Span | None]:
    """Return an (n, 2) span array as a list of (start, end) tuples, None where -1."""
    if array is None:
        return [None] * count
    return [(int(a), int(b)) if a >= 0 else None for a, b in np.asarray(array).tolist()]


def _check_confidence(values: Sequence[float] | np.ndarray | None, count: int) -> np.ndarray | None:
    """Return confidences as a float array of length `count` (None stays None)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(array) != count:
        raise VistoolError(f"expected {count} confidence values, got {len(array)}")
    return array


# --- sv.Detections <-> JSON -------------------------------------------------------------


def _array_to_json(array: np.ndarray) -> dict[str, Any]:
    """Encode a numpy array as {"dtype", "shape", "values"} (bools of masks bit-packed)."""
    if array.dtype == bool and array.ndim >= 2:
        packed = np.packbits(array.reshape(-1))
        return {"dtype": "bool", "shape": list(array.shape), "packed": base64.b64encode(packed.tobytes()).decode("ascii")}
    dtype = "str" if array.dtype.kind in "US" else str(array.dtype)
    return {"dtype": dtype, "shape": list(array.shape), "values": array.tolist()}


def _array_from_json(data: dict[str, Any]) -> np.ndarray:
    """Decode an array written by `_array_to_json`."""
    shape = tuple(data["shape"])
    if "packed" in data:
        bits = np.frombuffer(base64.b64decode(data["packed"]), dtype=np.uint8)
        return np.unpackbits(bits)[: int(np.prod(shape))].astype(bool).reshape(shape)
    if data["dtype"] == "str":
        return np.array(data["values"], dtype=str).reshape(shape)
    return np.array(data["values"], dtype=data["dtype"]).reshape(shape)


def detections_to_dict(detections: sv.Detections) -> dict[str, Any]:
    """Return a JSON-able dict holding every field of `detections` (data and metadata included)."""

    def optional(array: np.ndarray | None) -> dict[str, Any] | None:
        return None if array is None else _array_to_json(np.asarray(array))

    return {
        "xyxy": _array_to_json(np.asarray(detections.xyxy)),
        "mask": optional(detections.mask),
        "confidence": optional(detections.confidence),
        "class_id": optional(detections.class_id),
        "tracker_id": optional(detections.tracker_id),
        "data": {key: _array_to_json(np.asarray(value)) for key, value in detections.data.items()},
        "metadata": dict(detections.metadata),
    }


# Plain-list fields (the CLI's readable JSON, vistool.commandline.view): dtype and row width.
_PLAIN_FIELDS: dict[str, tuple[Any, int | None]] = {
    "xyxy": (np.float64, 4), "confidence": (np.float64, None), "class_id": (np.int64, None),
    "tracker_id": (np.int64, None), CLASS_NAME_DATA_FIELD: (str, None), SPAN_FIELD: (np.int64, 2),
}


def _array_from_any(key: str, value: Any) -> np.ndarray:
    """Decode an array written by `_array_to_json`, or given as a plain (nested) list."""
    if isinstance(value, dict):
        return _array_from_json(value)
    dtype, width = _PLAIN_FIELDS.get(key, (None, None))
    array = np.array(value, dtype=dtype)
    return array.reshape(-1, width) if width is not None else array


def detections_from_dict(data: dict[str, Any]) -> sv.Detections:
    """Rebuild `sv.Detections` written by `detections_to_dict` (arrays encoded, or as plain lists)."""

    def optional(key: str) -> np.ndarray | None:
        value = data.get(key)
        return None if value is None else _array_from_any(key, value)

    return sv.Detections(
        xyxy=_array_from_any("xyxy", data["xyxy"]),
        mask=optional("mask"),
        confidence=optional("confidence"),
        class_id=optional("class_id"),
        tracker_id=optional("tracker_id"),
        data={key: _array_from_any(key, value) for key, value in data.get("data", {}).items()},
        metadata=dict(data.get("metadata", {})),
    )


def make_detections(
    xyxy: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    confidence: Sequence[float] | np.ndarray | None = None,
    spans: Sequence[Span | None] | np.ndarray | None = None,
) -> tuple[sv.Detections, list[str]]:
    """Build `sv.Detections` from pixel boxes and labels.

    Takes boxes (n, 4), one label per box, the requested classes (they fix the class
    ids), optional confidences and optional spans. Returns the detections and the labels
    that were not among the requested classes.
    """
    class_id, names, unknown = assign_class_ids(labels, classes)
    count = len(names)
    if not (isinstance(xyxy, np.ndarray) and xyxy.dtype == np.float64 and xyxy.shape == (count, 4)):
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(count, 4)
    detections = checked_detections(
        xyxy,
        class_id,
        _check_confidence(confidence, count),
        {CLASS_NAME_DATA_FIELD: np.array(names, dtype=str), SPAN_FIELD: spans_array(spans if spans is not None and len(spans) else [None] * count)},
    )
    return detections, unknown


# The fields of sv.Detections that `checked_detections` leaves at their defaults.
_OTHER_FIELDS = [
    (item.name, item.default, item.default_factory)
    for item in fields(sv.Detections)
    if item.name not in ("xyxy", "class_id", "confidence", "data")
]


def checked_detections(
    xyxy: np.ndarray, class_id: np.ndarray, confidence: np.ndarray | None, data: dict[str, np.ndarray]
) -> sv.Detections:
    """Build `sv.Detections` from arrays whose shapes and types the caller has made right.

    Takes xyxy (n, 4) float64, class_id (n,) int64, confidence (n,) float64 or None, and
    data arrays of length n; other fields get their defaults. Returns the same object
    `sv.Detections(...)` gives, without supervision's validation pass, which costs more
    than the rest of building a small result (it matters when parsing thousands of
    answers a second).
    """
    detections = object.__new__(sv.Detections)
    detections.xyxy, detections.class_id, detections.confidence, detections.data = xyxy, class_id, confidence, data
    for name, default, factory in _OTHER_FIELDS:
        setattr(detections, name, factory() if factory is not MISSING else (None if default is MISSING else default))
    return detections


# --- points ----------------------------------------------------------------------------


@dataclass
class PointsResult:
    """Points in pixels of the displayed image.

    xy: float array (n, 2) of (x, y); class_id: int array (n,); class_name: list of n
    names; confidence: float array (n,) or None when unknown; spans: int array (n, 2) of
    (start, end) in the answer text, -1 when unknown.
    """

    xy: np.ndarray
    class_id: np.ndarray
    class_name: list[str]
    confidence: np.ndarray | None = None
    spans: np.ndarray = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        self.class_name = [str(name) for name in self.class_name]
        self.confidence = _check_confidence(self.confidence, len(self.xy))
        if len(self.spans) != len(self.xy):
            self.spans = spans_array([None] * len(self.xy))
        if not len(self.class_id) == len(self.class_name) == len(self.xy):
            raise VistoolError("points, class ids and class names must have the same length")

    def __len__(self) -> int:
        return len(self.xy)

    def to_keypoints(self) -> sv.KeyPoints:
        """Return the points as `sv.KeyPoints`: one object per point, each with one keypoint."""
        confidence = None if self.confidence is None else self.confidence.reshape(-1, 1).astype(np.float32)
        return sv.KeyPoints(
            xy=self.xy.reshape(-1, 1, 2).astype(np.float32),
            class_id=self.class_id,
            keypoint_confidence=confidence,
            data={CLASS_NAME_DATA_FIELD: np.array(self.class_name, dtype=str)},
        )

    def to_detections(self) -> sv.Detections:
        """Return the points as zero-size `sv.Detections` (x, y, x, y), for annotators that take boxes."""
        return sv.Detections(
            xyxy=np.concatenate([self.xy, self.xy], axis=1).reshape(-1, 4),
            class_id=self.class_id,
            confidence=self.confidence,
            data={CLASS_NAME_DATA_FIELD: np.array(self.class_name, dtype=str), SPAN_FIELD: self.spans},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field."""
        return {
            "xy": self.xy.tolist(),
            "class_id": self.class_id.tolist(),
            "class_name": list(self.class_name),
            "confidence": None if self.confidence is None else self.confidence.tolist(),
            "spans": self.spans.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PointsResult":
        """Rebuild a result written by `to_dict`."""
        return cls(
            xy=np.array(data["xy"], dtype=np.float64).reshape(-1, 2),
            class_id=np.array(data["class_id"], dtype=np.int64),
            class_name=list(data["class_name"]),
            confidence=None if data.get("confidence") is None else np.array(data["confidence"], dtype=np.float64),
            spans=np.array(data.get("spans", []), dtype=np.int64).reshape(-1, 2),
        )


# --- OCR regions -----------------------------------------------------------------------


@dataclass
class OCRRegion:
    """One piece of text and where it is, in pixels of the displayed image.

    quad: four (x, y) vertices, clockwise from the one nearest the top-left corner;
    box: the enclosing (x1, y1, x2, y2); confidence: None when unknown; span: (start,
    end) of the item in the answer text, None when unknown.
    """

    text: str
    quad: tuple[tuple[float, float], ...]
    box: tuple[float, float, float, float]
    confidence: float | None = None
    span: Span | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field."""
        return {
            "text": self.text,
            "quad": [list(vertex) for vertex in self.quad],
            "box": list(self.box),
            "confidence": self.confidence,
            "span": None if self.span is None else list(self.span),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OCRRegion":
        """Rebuild a region written by `to_dict`."""
        return cls(
            text=data["text"],
            quad=tuple((float(x), float(y)) for x, y in data["quad"]),
            box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
            confidence=data.get("confidence"),
            span=None if data.get("span") is None else (int(data["span"][0]), int(data["span"][1])),
        )


@dataclass
class OCRResult:
    """The text regions of one image, in reading order as the model wrote them."""

    regions: list[OCRRegion] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def texts(self) -> list[str]:
        """The text of every region."""
        return [region.text for region in self.regions]

    @property
    def text(self) -> str:
        """All region texts joined by newlines."""
        return "\n".join(self.texts)

    @property
    def confidence(self) -> np.ndarray | None:
        """Confidences as an array, or None unless every region has one."""
        values = [region.confidence for region in self.regions]
        if not values or any(value is None for value in values):
            return None
        return np.array(values, dtype=np.float64)

    def to_detections(self) -> sv.Detections:
        """Return the regions as `sv.Detections`: boxes, the text as class name, the quads as oriented boxes."""
        count = len(self.regions)
        return sv.Detections(
            xyxy=np.array([region.box for region in self.regions], dtype=np.float64).reshape(count, 4),
            class_id=np.zeros(count, dtype=np.int64),
            confidence=self.confidence,
            data={
                CLASS_NAME_DATA_FIELD: np.array(self.texts, dtype=str),
                ORIENTED_BOX_COORDINATES: np.array([region.quad for region in self.regions], dtype=np.float64).reshape(count, 4, 2),
                SPAN_FIELD: spans_array([region.span for region in self.regions]),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field."""
        return {"regions": [region.to_dict() for region in self.regions]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OCRResult":
        """Rebuild a result written by `to_dict`."""
        return cls([OCRRegion.from_dict(region) for region in data.get("regions", [])])
