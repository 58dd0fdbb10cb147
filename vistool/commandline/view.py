"""The JSON a task command prints: `TaskResult.to_dict()` with its arrays as plain lists.

`to_dict()` stores each numpy array of an `sv.Detections` as {"dtype", "shape", "values"}
so that it round-trips exactly; on a terminal that buries the boxes. Here every array of
the detections becomes a plain list (`xyxy` a list of [x1, y1, x2, y2] pixel boxes,
`class_id`, `class_name`, `confidence`, ...). `TaskResult.from_dict` reads both forms.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vistool.tasks import TaskResult


def _plain(value: Any) -> Any:
    """Turn one {"dtype", "shape", "values"} array record into its plain list (others unchanged)."""
    if isinstance(value, dict) and set(value) == {"dtype", "shape", "values"}:
        return np.asarray(value["values"]).reshape(value["shape"]).tolist() if value["values"] else []
    return value


def plain_result_dict(result: TaskResult) -> dict[str, Any]:
    """Return `result.to_dict()` with the detections' arrays as plain lists."""
    data = result.to_dict()
    parsed = data.get("parsed")
    detections = parsed.get("result") if isinstance(parsed, dict) else None
    if isinstance(detections, dict) and "xyxy" in detections:
        for key in ("xyxy", "confidence", "class_id", "tracker_id"):
            detections[key] = _plain(detections.get(key))
        detections["data"] = {key: _plain(value) for key, value in (detections.get("data") or {}).items()}
    return data


def result_json(result: TaskResult, indent: int | None = 2) -> str:
    """Return the JSON text a command prints for `result` (see `plain_result_dict`)."""
    return json.dumps(plain_result_dict(result), ensure_ascii=False, indent=indent)
