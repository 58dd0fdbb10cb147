"""What parsing did to an answer: items found, kept, dropped (and why), repairs applied.

`Diagnostics` travels with every parse result and serialises to JSON, so a batch run can
say afterwards which answers were salvaged and which items were lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Reasons an item can be dropped (`Dropped.reason`).
TRUNCATED = "truncated"  # the answer was cut off inside this item
UNPARSEABLE = "unparseable"  # not JSON even after repair
NOT_AN_ITEM = "not_an_item"  # a JSON value that is neither an object nor a coordinate list
MISSING_COORDINATES = "missing_coordinates"  # an object without the family's coordinate key
BAD_COORDINATES = "bad_coordinates"  # wrong count or not numbers
NON_FINITE = "non_finite"  # NaN or infinity
INCOMPLETE_TOKENS = "incomplete_tokens"  # a run of location tokens not a multiple of the group
OUTSIDE_IMAGE = "outside_image"  # nothing left after clipping to the image
ZERO_AREA = "zero_area"  # a box or quad with no width or no height
DUPLICATE = "duplicate"  # the same label as an earlier item, overlapping it (IoU at or above the threshold)
SUPPRESSED = "suppressed"  # removed by the optional class-wise non-maximum suppression
INTERNAL_ERROR = "internal_error"  # a bug in vistool; reported instead of raised

SNIPPET_CHARS = 80


def snippet(text: str, start: int, end: int | None = None) -> str:
    """Return up to SNIPPET_CHARS characters of text[start:end], for reports."""
    end = len(text) if end is None else end
    piece = text[start:min(end, start + SNIPPET_CHARS)]
    return piece + ("..." if end - start > SNIPPET_CHARS else "")


@dataclass
class Dropped:
    """One item that did not make it into the result.

    reason: one of the reason constants of this module; detail: a human sentence;
    text: a short excerpt of the item; span: (start, end) of the item in the original
    answer text, or None when unknown.
    """

    reason: str
    detail: str = ""
    text: str = ""
    span: tuple[int, int] | None = None


@dataclass
class Diagnostics:
    """A report of one parse.

    found: items seen in the answer (kept + dropped); kept: items in the result;
    dropped: the others, with reasons; repairs: fixes applied to the text or items
    (e.g. "json_repair", "unwrapped 'boxes'"); truncated: the answer was cut off;
    reordered / clipped: items whose corners were reversed / that crossed the image
    border; unknown_labels: labels that were not among the requested classes;
    thought: the reasoning text found in a thinking channel (None when none);
    coordinate_scale: None when the answer used the family's own scale, else the scale
    it was found on and mapped from ("unit" for 0-1, "pixels" for the image's pixels).
    """

    profile: str = ""
    kind: str = ""
    found: int = 0
    kept: int = 0
    dropped: list[Dropped] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    truncated: bool = False
    reordered: int = 0
    clipped: int = 0
    unknown_labels: list[str] = field(default_factory=list)
    thought: str | None = None
    coordinate_scale: str | None = None

    def drop(self, reason: str, detail: str = "", text: str = "", span: tuple[int, int] | None = None) -> None:
        """Record one dropped item."""
        self.dropped.append(Dropped(reason, detail, text, span))

    def repair(self, note: str) -> None:
        """Record one repair, once."""
        if note not in self.repairs:
            self.repairs.append(note)

    def reasons(self) -> list[str]:
        """Return the reason of every dropped item, in order."""
        return [item.reason for item in self.dropped]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field."""
        data = asdict(self)
        for item in data["dropped"]:
            item["span"] = list(item["span"]) if item["span"] is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Diagnostics":
        """Rebuild diagnostics written by `to_dict`."""
        data = dict(data)
        data["dropped"] = [
            Dropped(**{**item, "span": tuple(item["span"]) if item.get("span") is not None else None})
            for item in data.get("dropped", [])
        ]
        return cls(**data)
