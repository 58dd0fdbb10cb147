"""`TaskResult`: the result of one task on one image or video, its views (detections,
points, regions), drawing, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from vistool.postprocess import OCRResult, ParseResult, PointsResult, draw


@dataclass
class TaskResult:
    """The result of one task on one image (or video).

    text: the answer text (the caption, the reply, the plain OCR text; for structured
      tasks the raw JSON answer). parsed: the structured result in pixels of the
      displayed image, when the task parses one. extras: task-specific values (count,
      GUI elements, click point, start/end seconds). provenance: how it was produced
      (model, profile, prompt, budget, decoding, raw answer, thought, token counts,
      timings). error: set when this item failed (then the rest may be empty).
    """

    task: str
    source: str
    image_size: tuple[int, int]
    text: str = ""
    parsed: ParseResult | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task produced an answer."""
        return self.error is None

    @property
    def detections(self) -> sv.Detections:
        """Boxes as `sv.Detections` in pixels (empty when the task has none)."""
        if self.parsed is None:
            return sv.Detections.empty()
        return self.parsed.detections

    @property
    def points(self) -> PointsResult | None:
        """Points (pointing, GUI clicks), or None."""
        if self.parsed is not None and isinstance(self.parsed.result, PointsResult):
            return self.parsed.result
        click = self.extras.get("click")
        if click is not None:
            return PointsResult(np.array([click], dtype=np.float64), np.array([0]), [self.extras.get("label") or "click"])
        return None

    @property
    def regions(self) -> OCRResult | None:
        """OCR regions, or None."""
        if self.parsed is not None and isinstance(self.parsed.result, OCRResult):
            return self.parsed.result
        return None

    @property
    def diagnostics(self) -> dict[str, Any] | None:
        """The parse diagnostics as a dict (None for text tasks)."""
        return None if self.parsed is None else self.parsed.diagnostics.to_dict()

    def annotate(self, image: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
        """Draw the result on a copy of `image` (the displayed image) and return it."""
        scene = image
        if self.parsed is not None:
            scene = draw(scene, self.parsed)
        points = self.points
        if points is not None and (self.parsed is None or self.parsed.result is not points):
            scene = draw(scene, points)
        return scene

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of the whole result."""
        return {
            "task": self.task,
            "source": self.source,
            "image_size": list(self.image_size),
            "text": self.text,
            "parsed": None if self.parsed is None else self.parsed.to_dict(),
            "extras": self.extras,
            "provenance": self.provenance,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskResult":
        """Rebuild a result written by `to_dict`."""
        parsed = data.get("parsed")
        width, height = data["image_size"]
        return cls(
            task=data["task"],
            source=data["source"],
            image_size=(int(width), int(height)),
            text=data.get("text", ""),
            parsed=None if parsed is None else ParseResult.from_dict(parsed),
            extras=dict(data.get("extras") or {}),
            provenance=dict(data.get("provenance") or {}),
            error=data.get("error"),
        )

    def to_json(self, indent: int | None = None) -> str:
        """Return the result as a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "TaskResult":
        """Rebuild a result from `to_json` output."""
        return cls.from_dict(json.loads(text))


__all__ = ["TaskResult"]
