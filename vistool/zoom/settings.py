"""The one zoom setting: `zoom="off" | "tiles" | "refine"`, with its options.

    ZoomSettings.parse("tiles")                          # tiles chosen from the budget
    ZoomSettings.parse("tiles:tile=1024,overlap=0.25")   # fixed 1024-px tiles, 25% overlap
    ZoomSettings.parse("refine:depth=2,margin=0.5")      # two narrowing passes
    ZoomSettings.parse({"mode": "tiles", "whole": True}) # a dict (the Python API)

The same text works for `zoom=` in the API, `--zoom` on the command line, annotate, eval
and the demo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Union

from vistool.errors import VistoolError

Mode = Literal["off", "tiles", "refine"]
MODES: tuple[str, ...] = ("off", "tiles", "refine")
MERGES: tuple[str, ...] = ("nms", "wbf")


@dataclass(frozen=True)
class ZoomSettings:
    """How one task call is split into several model calls.

    mode: "off" (one call on the whole image), "tiles" (overlapping tiles, all in one
      batch, answers mapped back and merged) or "refine" (coarse-to-fine: ask where the
      target is, crop there, ask again).
    tile: tile side in pixels (an int, or (width, height)); None: the fewest tiles the
      model family's resize rule sees at `resolution` or finer.
    overlap: overlap of neighbouring tiles: a float in [0, 1) is a fraction of the
      tile, an int is pixels. It should exceed the largest object you expect, so every
      object is seen whole in one tile.
    resolution: model pixels per image pixel wanted in a tile or a refine crop (1.0:
      full resolution; the resize rule rounds sizes down, so 0.85 is "near full").
    whole: also run one pass on the whole image (finds objects larger than a tile).
    merge: how duplicates across tiles are merged: "nms" keeps the best box of each
      group, "wbf" averages the group's whole boxes (weighted by confidence).
    iou: two boxes from different tiles are one object when their parts inside the
      tiles' common area overlap with at least this IoU.
    point_radius: points from different tiles closer than this (pixels) are one point
      (None: 1% of the tile's shorter side, at least 4 px).
    max_tiles: the most tiles (or refine passes) one image may cost.
    depth: refine: how many "where is it?" passes narrow the view before the task is
      asked on the last crop.
    margin: refine: context added around the region the model named, as a fraction of
      that region's size on each side.
    """

    mode: Mode = "off"
    tile: int | tuple[int, int] | None = None
    overlap: float | int = 0.2
    resolution: float = 0.85
    whole: bool = False
    merge: str = "nms"
    iou: float = 0.5
    point_radius: float | None = None
    max_tiles: int = 64
    depth: int = 1
    margin: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise VistoolError(f"zoom must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.tile is not None:
            sides = (self.tile, self.tile) if isinstance(self.tile, int) else tuple(self.tile)
            if len(sides) != 2 or not all(isinstance(side, int) and side >= 8 for side in sides):
                raise VistoolError(f"zoom tile must be a side of at least 8 pixels, or (width, height) (got {self.tile!r})")
            object.__setattr__(self, "tile", sides[0] if sides[0] == sides[1] else (int(sides[0]), int(sides[1])))
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float)):
            raise VistoolError(f"zoom overlap must be a fraction in [0, 1) or whole pixels (got {self.overlap!r})")
        if isinstance(self.overlap, float) and not 0.0 <= self.overlap < 1.0:
            raise VistoolError(f"zoom overlap as a fraction must be in [0, 1) (got {self.overlap})")
        if isinstance(self.overlap, int) and self.overlap < 0:
            raise VistoolError(f"zoom overlap in pixels must be >= 0 (got {self.overlap})")
        if not 0.05 <= self.resolution <= 4.0:
            raise VistoolError(f"zoom resolution must be between 0.05 and 4 (got {self.resolution})")
        if self.merge not in MERGES:
            raise VistoolError(f"zoom merge must be one of {', '.join(MERGES)} (got {self.merge!r})")
        if not 0.0 < self.iou <= 1.0:
            raise VistoolError(f"zoom iou must be in (0, 1] (got {self.iou})")
        if self.point_radius is not None and self.point_radius < 0:
            raise VistoolError(f"zoom point_radius must be >= 0 (got {self.point_radius})")
        if self.max_tiles < 1:
            raise VistoolError(f"zoom max_tiles must be >= 1 (got {self.max_tiles})")
        if not 1 <= self.depth <= 4:
            raise VistoolError(f"zoom depth must be 1 to 4 (got {self.depth})")
        if not 0.0 <= self.margin <= 4.0:
            raise VistoolError(f"zoom margin must be between 0 and 4 (got {self.margin})")

    @property
    def on(self) -> bool:
        """True unless the mode is "off"."""
        return self.mode != "off"

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-able dict (for provenance and cache notes)."""
        data = asdict(self)
        if isinstance(self.tile, tuple):
            data["tile"] = list(self.tile)
        return data

    def text(self) -> str:
        """Return the settings in the `parse` syntax, naming only what differs from the defaults."""
        default = ZoomSettings(mode=self.mode)
        changed = [
            f"{item.name}={_format(getattr(self, item.name))}"
            for item in fields(self)
            if item.name != "mode" and getattr(self, item.name) != getattr(default, item.name)
        ]
        return self.mode + (":" + ",".join(changed) if changed else "")

    @classmethod
    def parse(cls, value: "ZoomLike") -> "ZoomSettings":
        """Return settings from a `ZoomSettings`, None ("off"), a dict of fields, or text
        "MODE[:key=value,...]" (keys: the field names). Raises VistoolError naming what is
        wrong."""
        if value is None:
            return cls()
        if isinstance(value, ZoomSettings):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {item.name for item in fields(cls)}
            if unknown:
                raise VistoolError(f"unknown zoom option(s): {', '.join(sorted(unknown))}; known: {_known()}")
            return cls(**dict(value))
        if not isinstance(value, str):
            raise VistoolError(f"zoom must be off, tiles or refine (got {value!r})")
        mode, _, rest = value.strip().partition(":")
        options: dict[str, Any] = {"mode": mode.strip().lower()}
        for part in filter(None, (piece.strip() for piece in rest.split(","))):
            key, sep, raw = part.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise VistoolError(f"zoom option {part!r} needs a value (key=value)")
            if key not in {item.name for item in fields(cls)} or key == "mode":
                raise VistoolError(f"unknown zoom option {key!r}; known: {_known()}")
            options[key] = _value(key, raw.strip())
        return cls(**options)

    def with_mode(self, mode: Mode) -> "ZoomSettings":
        """Return a copy with another mode."""
        return replace(self, mode=mode)


ZoomLike = Union[ZoomSettings, str, Mapping[str, Any], None]


def _known() -> str:
    """The option names `parse` accepts."""
    return ", ".join(item.name for item in fields(ZoomSettings) if item.name != "mode")


def _value(key: str, raw: str) -> Any:
    """Turn one option's text into its value (ints, floats, booleans, WxH tile sizes)."""
    try:
        if key == "tile":
            if raw.lower() in ("", "auto", "none"):
                return None
            if "x" in raw.lower():
                width, height = raw.lower().split("x")
                return (int(width), int(height))
            return int(raw)
        if key == "whole":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if key == "overlap":
            return float(raw) if "." in raw else int(raw)
        if key == "point_radius":
            return None if raw.lower() in ("", "auto", "none") else float(raw)
        if key in ("max_tiles", "depth"):
            return int(raw)
        if key == "merge":
            return raw.lower()
        return float(raw)
    except ValueError:
        raise VistoolError(f"zoom option {key}={raw!r} is not a valid value") from None


def _format(value: Any) -> str:
    """Write one option's value in the `parse` syntax."""
    if isinstance(value, tuple):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
