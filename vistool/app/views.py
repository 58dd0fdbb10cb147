"""How a `TaskResult` is shown in the demo: a one-line summary, table rows, a readable JSON
view and a line of token counts and timings. Plain functions of the result, no Gradio.
"""

from __future__ import annotations

from typing import Any

from vistool.tasks import TaskResult

_VIEW_SETTINGS = ("model", "profile", "backend", "budget", "max_new_tokens", "thinking", "decoding", "finish_reason")


def clock(seconds: float | None) -> str:
    """Format seconds as "mm:ss.s" ("?" for None)."""
    if seconds is None:
        return "?"
    minutes, rest = divmod(float(seconds), 60.0)
    return f"{int(minutes):02d}:{rest:04.1f}"


def _number(value: Any, digits: int = 1) -> float | None:
    """Round a number for display (None stays None)."""
    return None if value is None else round(float(value), digits)


def _box(box: Any) -> dict[str, float | None]:
    """Return x1, y1, x2, y2 columns of a box in pixels."""
    return {key: _number(value) for key, value in zip(("x1", "y1", "x2", "y2"), box)}


def result_rows(result: TaskResult) -> list[dict[str, Any]]:
    """Return one table row per item of the result: box, point, OCR region, GUI element,
    click point or located video segment. Takes a result; returns a list of dicts (empty
    for text-only answers)."""
    rows: list[dict[str, Any]] = []
    if "elements" in result.extras:
        detections = result.detections
        for index, element in enumerate(result.extras["elements"]):
            confidence = None if detections.confidence is None else detections.confidence[index]
            rows.append({"kind": "element", "label": element["type"], "text": element["text"],
                         "interactive": element["interactive"], **_box(element["box"]), "confidence": _number(confidence, 3)})
    elif result.regions is not None:
        for region in result.regions.regions:
            rows.append({"kind": "region", "text": region.text, **_box(region.box), "confidence": _number(region.confidence, 3)})
    elif result.parsed is not None and result.parsed.kind == "points":
        points = result.parsed.result
        for index, (x, y) in enumerate(points.xy.tolist()):
            confidence = None if points.confidence is None else points.confidence[index]
            rows.append({"kind": "point", "label": points.class_name[index], "x": _number(x), "y": _number(y),
                         "confidence": _number(confidence, 3)})
    elif result.parsed is not None:
        detections = result.detections
        names = detections.data.get("class_name", [""] * len(detections))
        for index, box in enumerate(detections.xyxy.tolist()):
            confidence = None if detections.confidence is None else detections.confidence[index]
            rows.append({"kind": "box", "label": str(names[index]), **_box(box), "confidence": _number(confidence, 3)})
    if result.extras.get("click") is not None:
        x, y = result.extras["click"]
        rows.append({"kind": "click", "label": result.extras.get("label", ""), "x": _number(x), "y": _number(y)})
    if result.extras.get("found"):
        rows.append({"kind": "segment", "start_s": _number(result.extras["start_s"]), "end_s": _number(result.extras["end_s"])})
    return [{"#": index + 1, **row} for index, row in enumerate(rows)]


def summary(result: TaskResult) -> str:
    """Return the answer in words: the text of text tasks, a count or location otherwise."""
    extras = result.extras
    if result.task == "video_locate":
        if extras.get("found"):
            return f"from {clock(extras['start_s'])} to {clock(extras['end_s'])}"
        return f"not found in the answer: {result.text.strip()!r}"
    if result.task == "gui_ground":
        if extras.get("click") is None:
            return "no element found"
        x, y = extras["click"]
        return f"click at ({x:.0f}, {y:.0f}) on {extras.get('label', '')!r}"
    if result.task == "point":
        return f"{extras.get('count', 0)} point(s)"
    if result.regions is not None:
        return result.regions.text or "(no text regions found)"
    if result.parsed is not None:
        names = [str(name) for name in result.detections.data.get("class_name", [])]
        counts = {name: names.count(name) for name in dict.fromkeys(names)}
        found = ", ".join(f"{count} x {name}" for name, count in counts.items())
        return f"{len(names)} box(es)" + (f": {found}" if found else "")
    return result.text


def json_view(result: TaskResult) -> dict[str, Any]:
    """Return a readable JSON-able view of the result: task, summary, items in pixels,
    task extras, parse diagnostics and the settings that produced it. (The download holds
    the full, reloadable `result.to_dict()`.)"""
    provenance = result.provenance
    return {
        "task": result.task,
        "image_size": list(result.image_size),
        "summary": summary(result),
        "items": result_rows(result),
        "extras": {key: value for key, value in result.extras.items() if key != "elements"},
        "diagnostics": result.diagnostics,
        "settings": {key: provenance.get(key) for key in _VIEW_SETTINGS if key in provenance},
        **({"zoom": _zoom_view(provenance["zoom"])} if provenance.get("zoom") else {}),
    }


def _zoom_view(zoom: dict[str, Any]) -> dict[str, Any]:
    """The zoom of a result in short: mode, cost, and each pass's purpose, crop and item count."""
    return {
        "mode": zoom.get("mode"),
        "cost": zoom.get("cost"),
        "merged": zoom.get("merged"),
        "passes": [{"pass": p["index"] + 1, "purpose": p["purpose"], "crop": p["crop"], "items": p["items"]}
                   for p in zoom.get("passes") or []],
    }


def stats_line(result: TaskResult, wall_s: float) -> str:
    """Return a Markdown line of token counts and timings: budget, prompt / image /
    generated tokens, the backend's timings and the wall time of the request."""
    provenance = result.provenance
    timings = provenance.get("timings") or {}
    if "timestamps" in result.extras:
        first = f"frames **{len(result.extras['timestamps'])}**"
    else:
        first = f"budget **{provenance.get('budget')}**"
    parts = [
        first,
        f"prompt tokens **{provenance.get('prompt_tokens')}**",
        f"image tokens **{provenance.get('image_tokens')}**",
        f"generated **{provenance.get('generated_tokens')}**",
    ]
    parts += [f"{key.removesuffix('_s')} **{value:.2f} s**" for key, value in timings.items()
              if key.endswith("_s") and isinstance(value, (int, float))]
    zoom = provenance.get("zoom") or {}
    if zoom.get("cost"):
        parts.append(f"zoom **{zoom['mode']}**: model calls **{zoom['cost']['model_calls']}**")
    parts.append(f"wall **{wall_s:.2f} s**")
    if provenance.get("finish_reason"):
        parts.append(f"finish **{provenance['finish_reason']}**")
    return " · ".join(parts)


def warnings_for(result: TaskResult) -> list[str]:
    """Return what a user should know about an answer: cut off at the token limit, items
    that could not be read. Takes a result; returns short sentences (maybe none)."""
    notes = []
    if result.provenance.get("finish_reason") == "length":
        notes.append("The answer was cut off at the max-new-tokens limit; raise it for a complete answer.")
    diagnostics = result.diagnostics or {}
    dropped = len(diagnostics.get("dropped") or [])
    if dropped:
        notes.append(f"{dropped} item(s) of the answer could not be read; see 'diagnostics' in the JSON.")
    return notes
