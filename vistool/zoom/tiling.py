"""Tile grids: which overlapping crops of an image to ask about, chosen from the budget.

A model sees an image through its family's resize rule (Gemma 4 at 280 tokens: 3840x2160
-> 1056x576). `seen_scale` says how many model pixels one image pixel becomes; a tile is
"seen near full resolution" when that is at least `ZoomSettings.resolution`. With no
tile size given, `tile_grid` picks the fewest equal tiles that reach it (squarish tiles
first); with a tile size, tiles go left to right at that size and the last one in each
row or column is narrower. Every box is (x1, y1, x2, y2) in whole pixels of the
displayed image, x2/y2 exclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vistool.errors import VistoolError
from vistool.profiles.base import ModelProfile
from vistool.zoom.settings import ZoomSettings

Box = tuple[int, int, int, int]
Size = tuple[int, int]
# Tile side used when the model family declares no resize rule (a remote API).
FALLBACK_TILE = 1024
# Automatic tiles are at most this elongated (unless the image itself is more so): a
# strip sees as many pixels as a square of the same area, but little context around them.
MAX_TILE_ASPECT = 3.0


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one image.

    boxes: tile boxes, row by row; tile: the (width, height) of the largest tile;
    overlap: (x, y) overlap of neighbours in pixels; scale: model pixels per image pixel
    of the coarsest tile (`seen_scale`); note: how the grid was chosen, in words.
    """

    boxes: list[Box]
    tile: Size
    overlap: Size
    scale: float
    note: str

    def to_dict(self) -> dict[str, object]:
        """Return the grid as a JSON-able dict."""
        return {
            "tiles": len(self.boxes),
            "tile": list(self.tile),
            "overlap": list(self.overlap),
            "scale": round(self.scale, 4),
            "note": self.note,
        }


def seen_scale(profile: ModelProfile, size: Size, budget: int | None) -> float:
    """Return the model pixels per image pixel of a (width, height) image at `budget`
    (the smaller of the two axes' factors). A family without a resize rule is assumed to
    see FALLBACK_TILE pixels on the long side (never more than the image's own)."""
    resized = profile.resized_size(size, budget)
    if resized is None:
        return min(1.0, FALLBACK_TILE / max(size))
    return min(resized[0] / size[0], resized[1] / size[1])


def tile_grid(image_size: Size, profile: ModelProfile, budget: int | None, settings: ZoomSettings) -> TileGrid:
    """Return the tiles to ask about for one image.

    Takes the displayed (width, height), the model family (its resize rule), the budget
    each tile is asked at and the zoom settings (tile, overlap, resolution, max_tiles).
    Raises VistoolError when a fixed tile size would need more than `max_tiles` tiles.
    """
    width, height = int(image_size[0]), int(image_size[1])
    if width < 1 or height < 1:
        raise VistoolError(f"cannot tile an image of {width}x{height} pixels")
    if settings.tile is not None:
        sides = settings.tile if isinstance(settings.tile, tuple) else (settings.tile, settings.tile)
        return _fixed_grid((width, height), sides, profile, budget, settings, "fixed tile size")
    if profile.resize is None:
        note = f"{profile.name} declares no resize rule: fixed {FALLBACK_TILE}-px tiles"
        return _fixed_grid((width, height), (FALLBACK_TILE, FALLBACK_TILE), profile, budget, settings, note)
    return _auto_grid((width, height), profile, budget, settings)


def _overlap_px(overlap: float | int, tile: int) -> int:
    """Return the overlap in pixels for a tile side (a fraction of it, or pixels)."""
    return int(round(overlap * tile)) if isinstance(overlap, float) else int(overlap)


def _axis_starts(length: int, tile: int, count: int) -> list[int]:
    """Return `count` evenly spaced starts of `tile`-long pieces covering 0..length."""
    if count == 1:
        return [0]
    return [int(round(index * (length - tile) / (count - 1))) for index in range(count)]


def _equal_tile(length: int, count: int, overlap: float | int) -> int | None:
    """Return the side of `count` equal tiles covering `length` with the overlap, or None
    when that many tiles cannot have it (the tile would not exceed the overlap)."""
    if count == 1:
        return length
    if isinstance(overlap, float):
        side = math.ceil(length / (count - (count - 1) * overlap))
    else:
        side = math.ceil((length + (count - 1) * overlap) / count)
    if side >= length or side <= _overlap_px(overlap, side):
        return None
    return side


def _auto_grid(size: Size, profile: ModelProfile, budget: int | None, settings: ZoomSettings) -> TileGrid:
    """The fewest equal tiles seen at `settings.resolution` or finer (squarish first)."""
    width, height = size
    whole = seen_scale(profile, size, budget)
    if whole >= settings.resolution:
        return TileGrid([(0, 0, width, height)], size, (0, 0), whole, "the whole image is seen at the wanted resolution")
    max_shape = math.log(max(MAX_TILE_ASPECT, width / height, height / width))
    best: tuple[tuple[float, ...], int, int, int, int, float] | None = None
    fallback: tuple[tuple[float, ...], int, int, int, int, float] | None = None
    for columns in range(1, settings.max_tiles + 1):
        tile_w = _equal_tile(width, columns, settings.overlap)
        if tile_w is None:
            continue
        for rows in range(1, settings.max_tiles // columns + 1):
            tile_h = _equal_tile(height, rows, settings.overlap)
            if tile_h is None:
                continue
            scale = seen_scale(profile, (tile_w, tile_h), budget)
            shape = abs(math.log(tile_w / tile_h))
            if shape > max_shape + 1e-9:
                continue
            entry = (columns, rows, tile_w, tile_h, scale)
            if scale >= settings.resolution:
                rank = (columns * rows, shape, -scale)
                if best is None or rank < best[0]:
                    best = (rank, *entry)
            rank = (-scale, columns * rows, shape)
            if fallback is None or rank < fallback[0]:
                fallback = (rank, *entry)
    chosen, note = best, f"fewest tiles seen at resolution >= {settings.resolution}"
    if chosen is None:
        if fallback is None:
            return TileGrid([(0, 0, width, height)], size, (0, 0), whole, "no tiling fits: the whole image")
        chosen = fallback
        note = f"resolution {settings.resolution} is not reachable within {settings.max_tiles} tiles: the finest grid"
    _, columns, rows, tile_w, tile_h, scale = chosen
    boxes = [
        (x, y, x + tile_w, y + tile_h)
        for y in _axis_starts(height, tile_h, rows)
        for x in _axis_starts(width, tile_w, columns)
    ]
    overlap = (_overlap_px(settings.overlap, tile_w) if columns > 1 else 0, _overlap_px(settings.overlap, tile_h) if rows > 1 else 0)
    return TileGrid(boxes, (tile_w, tile_h), overlap, scale, f"{columns}x{rows} tiles: {note}")


def _fixed_starts(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Return (start, end) pieces of `tile` with `overlap` from 0; the last one ends at
    `length` and may be narrower (always wider than the overlap)."""
    if tile >= length:
        return [(0, length)]
    stride = tile - overlap
    pieces, start = [], 0
    while start + tile < length:
        pieces.append((start, start + tile))
        start += stride
    pieces.append((start, length))
    return pieces


def _fixed_grid(size: Size, sides: Size, profile: ModelProfile, budget: int | None, settings: ZoomSettings, note: str) -> TileGrid:
    """Tiles of a fixed size, left to right and top to bottom; the last ones narrower."""
    width, height = size
    tile_w, tile_h = min(sides[0], width), min(sides[1], height)
    overlap_w, overlap_h = _overlap_px(settings.overlap, tile_w), _overlap_px(settings.overlap, tile_h)
    if (tile_w < width and overlap_w >= tile_w) or (tile_h < height and overlap_h >= tile_h):
        raise VistoolError(f"zoom overlap {settings.overlap} must be smaller than the tile ({tile_w}x{tile_h})")
    columns, rows = _fixed_starts(width, tile_w, overlap_w), _fixed_starts(height, tile_h, overlap_h)
    if len(columns) * len(rows) > settings.max_tiles:
        raise VistoolError(
            f"{tile_w}x{tile_h} tiles cut a {width}x{height} image into {len(columns) * len(rows)} tiles, "
            f"more than max_tiles={settings.max_tiles}: use larger tiles or raise max_tiles"
        )
    boxes = [(x1, y1, x2, y2) for y1, y2 in rows for x1, x2 in columns]
    scale = min(seen_scale(profile, (x2 - x1, y2 - y1), budget) for x1, y1, x2, y2 in boxes)
    overlap = (overlap_w if len(columns) > 1 else 0, overlap_h if len(rows) > 1 else 0)
    return TileGrid(boxes, (tile_w, tile_h), overlap, scale, f"{len(columns)}x{len(rows)} tiles: {note}")
