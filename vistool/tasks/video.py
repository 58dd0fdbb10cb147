"""video: a question over sampled frames with their timestamps, and temporal localisation.

Gemma 4 takes up to 32 frames at 70 soft tokens each; each frame is shown with its mm:ss
timestamp, so answers can refer to time.
"""

from __future__ import annotations

import re

from vistool.tasks.base import Options, TaskResult, TaskSpec, required_text

_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def to_seconds(value: object) -> float | None:
    """Read a time as seconds: a number, "12.5", "mm:ss" or "hh:mm:ss"; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().rstrip("s").strip()
        match = _CLOCK.match(text)
        if match:
            hours, minutes, seconds = match.groups()
            return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _segment(result: TaskResult, options: Options) -> None:
    """Read the answer's start and end (seconds) into `extras`, clipped to the video."""
    from vistool.postprocess import extract_json_items

    found = extract_json_items(result.text, ("start", "end"))
    item = next((value for value in found.items if isinstance(value, dict) and "start" in value), {})
    start, end = to_seconds(item.get("start")), to_seconds(item.get("end"))
    duration = options.get("duration")
    if start is not None and end is not None and end < start:
        start, end = end, start
    if duration is not None:
        start = None if start is None else min(max(start, 0.0), float(duration))
        end = None if end is None else min(max(end, 0.0), float(duration))
    result.extras.update(start_s=start, end_s=end, found=start is not None and end is not None)


VIDEO_QA = TaskSpec(
    name="video",
    prompts={"default": "{question}"},
    kind=None,
    default_budget=70,
    max_new_tokens=512,
    fields=lambda options: {"question": required_text(options, "question", "question about the video")},
    media="video",
)

VIDEO_LOCATE = TaskSpec(
    name="video_locate",
    prompts={
        "default": 'When does "{event}" happen in the video? Each frame is shown after its mm:ss timestamp. '
        'Output JSON {{"start": "mm:ss", "end": "mm:ss"}} for the first time it happens. Output only the JSON.',
    },
    kind=None,
    default_budget=70,
    max_new_tokens=64,
    fields=lambda options: {"event": required_text(options, "event", "event description")},
    finish=_segment,
    json_stop=True,  # one JSON object
    media="video",
)

__all__ = ["VIDEO_LOCATE", "VIDEO_QA", "to_seconds"]
