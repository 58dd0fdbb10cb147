"""Coordinates: model space -> pixels of the image as displayed, and back; clean-up.

Every function here is vectorised over items and never reads an image. The displayed
image is the one after EXIF transpose (what vistool.io loads and what the model saw),
so `image_size` is always its (width, height).

  - `to_pixels` / `from_pixels`: a family's coordinate convention (order, scale, bin
    offset, or pixels of the processor-resized image) <-> pixels;
  - `fix_boxes`, `fix_points`, `fix_quads`: reorder reversed corners, clip to the
    image, and say which items must go (non-finite, nothing left inside, zero area);
  - `exif_transform_boxes`: boxes on a photo's stored pixels -> boxes as displayed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from vistool.errors import VistoolError
from vistool.postprocess.diagnostics import NON_FINITE, OUTSIDE_IMAGE, ZERO_AREA
from vistool.profiles.base import CoordSystem

Size = tuple[int, int]
# Column orders that swap (y, x) pairs into (x, y), for 1, 2 and 4 pairs per item.
_SWAP_PAIRS = {n: np.array([i ^ 1 for i in range(2 * n)]) for n in (1, 2, 4)}


def check_size(size: object, what: str = "image_size") -> Size:
    """Return `size` as a (width, height) tuple of positive ints; raise VistoolError otherwise."""
    try:
        width, height = size  # type: ignore[misc]
        width_int, height_int = int(width), int(height)
    except (TypeError, ValueError):
        raise VistoolError(f"{what} must be (width, height), got {size!r}") from None
    if width_int <= 0 or height_int <= 0 or width_int != width or height_int != height:
        raise VistoolError(f"{what} must be two positive integers (width, height), got {size!r}")
    return width_int, height_int


def _scales(system: CoordSystem, image_size: Size, resized_size: Size | None) -> tuple[float, float]:
    """Return the model-space values (sx, sy) that stand for the full width and height."""
    if system.scale is not None:
        return system.scale, system.scale
    if resized_size is None:
        raise VistoolError("this model family answers in pixels of the resized image: pass resized_size=(W, H)")
    return float(resized_size[0]), float(resized_size[1])


def to_pixels(coords: np.ndarray, system: CoordSystem, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Map model coordinates to pixels of the displayed image.

    Takes an array (n, 2k) of k coordinate pairs per item in the family's order and
    scale, the family's `CoordSystem`, the displayed (width, height) and, for families
    that answer in resized pixels, the processor-resized (width, height). Returns a float
    array (n, 2k) of (x, y) pairs in pixels. Nothing is clipped or reordered here.
    """
    coords = swap_columns(coords, system)
    factor = _factor(*pixel_factors(system, image_size, resized_size), coords.shape[1] // 2)
    return (coords + system.offset) * factor if system.offset else coords * factor


def swap_columns(coords: np.ndarray, system: CoordSystem) -> np.ndarray:
    """Return coordinates (n, 2k) with each pair in (x, y) order (swapped for "yx" families)."""
    return coords[:, _SWAP_PAIRS[coords.shape[1] // 2]] if system.order == "yx" else coords


def pixel_factors(system: CoordSystem, image_size: Size, resized_size: Size | None = None) -> tuple[float, float]:
    """Return the (x, y) factors that turn a family's values into displayed pixels.

    Takes the family's `CoordSystem`, the displayed (width, height) and, for families
    that answer in resized pixels, the processor-resized (width, height).
    """
    sx, sy = _scales(system, image_size, resized_size)
    return image_size[0] / sx, image_size[1] / sy


@lru_cache(maxsize=256)
def _factor(x_scale: float, y_scale: float, pairs: int) -> np.ndarray:
    """Return the row [x_scale, y_scale] * pairs (cached: sizes repeat; treat as read-only)."""
    factor = np.array([x_scale, y_scale] * pairs)
    factor.flags.writeable = False
    return factor


def from_pixels(pixels: np.ndarray, system: CoordSystem, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Map pixel (x, y) pairs to the integers the model would write (the oracle's encoder).

    Takes an array (n, 2k) of (x, y) pairs in displayed pixels and the same arguments as
    `to_pixels`. Returns an int array (n, 2k) in the family's order, quantised as the
    family does: "round" to 0..scale, or "floor" to bins 0..scale-1.
    """
    sx, sy = _scales(system, image_size, resized_size)
    width, height = image_size
    pairs = pixels.reshape(len(pixels), pixels.shape[1] // 2, 2) * np.array([sx / width, sy / height])
    if system.quantise == "floor":
        values = np.floor(pairs)
        upper = np.array([sx - 1, sy - 1])
    else:
        values = np.floor(pairs + 0.5)
        upper = np.array([sx, sy])
    values = np.clip(values, 0, upper)
    if system.order == "yx":
        values = values[:, :, ::-1]
    return values.reshape(pixels.shape).astype(np.int64)


class Fixed(NamedTuple):
    """The outcome of a clean-up: the fixed array, which items to keep, and what happened.

    values: the cleaned items (all rows, dropped ones included); keep: bool per item;
    dropped: (index, reason) of every item to drop, empty when all are kept;
    reordered and clipped: how many kept items had reversed corners / crossed the border.
    """

    values: np.ndarray
    keep: np.ndarray
    dropped: list[tuple[int, str]]
    reordered: int
    clipped: int


def _dropped(keep: np.ndarray, finite: np.ndarray, inside: np.ndarray) -> list[tuple[int, str]]:
    """Name the reason of each dropped item: non-finite, outside the image, or zero area."""
    dropped: list[tuple[int, str]] = []
    for index, (kept, is_finite, is_inside) in enumerate(zip(keep.tolist(), finite.tolist(), inside.tolist())):
        if not kept:
            dropped.append((index, NON_FINITE if not is_finite else OUTSIDE_IMAGE if not is_inside else ZERO_AREA))
    return dropped


def fix_boxes(xyxy: np.ndarray, image_size: Size) -> Fixed:
    """Clean pixel boxes (n, 4) [x1, y1, x2, y2].

    Reorders reversed corners, clips to [0, W] x [0, H], and marks for dropping boxes
    that are not finite, that lie wholly outside the image, or that have zero area.
    Returns `Fixed` with the cleaned boxes (all rows, dropped ones included).
    """
    width, height = image_size
    first, second = xyxy[:, :2], xyxy[:, 2:]
    if len(xyxy):
        # The common case, in four array operations: finite (NaN and inf fail these
        # comparisons), inside, ordered and non-empty.
        low, high = xyxy.min(axis=0).tolist(), xyxy.max(axis=0).tolist()
        if min(low) >= 0 and max(high) <= max(width, height) and high[2] <= width and high[3] <= height:
            if (second - first).min() > 0:
                return Fixed(xyxy, np.ones(len(xyxy), dtype=bool), [], 0, 0)
    finite = np.isfinite(xyxy).all(axis=1)
    all_finite = bool(finite.all())
    safe = xyxy if all_finite else np.where(np.isfinite(xyxy), xyxy, 0.0)
    first, second = safe[:, :2], safe[:, 2:]
    ordered = np.concatenate([np.minimum(first, second), np.maximum(first, second)], axis=1)
    fixed = np.clip(ordered, 0.0, np.array([width, height, width, height], dtype=np.float64))
    keep = ((fixed[:, 2:] - fixed[:, :2]) > 0).all(axis=1)
    if not all_finite:
        keep &= finite
    reordered = (first > second).any(axis=1) & keep
    clipped = (fixed != ordered).any(axis=1) & keep
    if keep.all():
        return Fixed(fixed, keep, [], int(reordered.sum()), int(clipped.sum()))
    inside = (ordered[:, 0] < width) & (ordered[:, 2] > 0) & (ordered[:, 1] < height) & (ordered[:, 3] > 0)
    return Fixed(fixed, keep, _dropped(keep, finite, inside), int(reordered.sum()), int(clipped.sum()))


def fix_points(xy: np.ndarray, image_size: Size) -> Fixed:
    """Clean pixel points (n, 2) [x, y]: clip to the image; mark non-finite points for dropping."""
    width, height = image_size
    finite = np.isfinite(xy).all(axis=1)
    safe = np.where(np.isfinite(xy), xy, 0.0)
    fixed = np.stack([np.clip(safe[:, 0], 0, width), np.clip(safe[:, 1], 0, height)], axis=1)
    clipped = finite & (fixed != safe).any(axis=1)
    return Fixed(fixed, finite, _dropped(finite, finite, finite), 0, int(clipped.sum()))


def boxes_to_quads(xyxy: np.ndarray) -> np.ndarray:
    """Return the corners (n, 4, 2) of boxes (n, 4): top-left, top-right, bottom-right, bottom-left."""
    x1, y1, x2, y2 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    return np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], axis=1)


def quads_to_boxes(quads: np.ndarray) -> np.ndarray:
    """Return the enclosing boxes (n, 4) [x1, y1, x2, y2] of quads (n, 4, 2)."""
    return np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1).reshape(len(quads), 4)


def fix_quads(quads: np.ndarray, image_size: Size) -> Fixed:
    """Clean pixel quadrilaterals (n, 4, 2).

    Clips every vertex to the image; puts the vertices in clockwise order as displayed
    (y down) starting from the one nearest the top-left corner; marks for dropping quads
    that are not finite, lie wholly outside the image, or enclose no area.
    Returns `Fixed` whose values are the cleaned quads (n, 4, 2).
    """
    width, height = image_size
    count = len(quads)
    finite = np.isfinite(quads).reshape(count, 8).all(axis=1)
    safe = np.where(np.isfinite(quads), quads, 0.0)
    boxes = quads_to_boxes(safe)
    inside = (boxes[:, 0] < width) & (boxes[:, 2] > 0) & (boxes[:, 1] < height) & (boxes[:, 3] > 0)
    fixed = np.stack([np.clip(safe[..., 0], 0, width), np.clip(safe[..., 1], 0, height)], axis=-1)
    clipped = finite & (fixed != safe).reshape(count, 8).any(axis=1)
    x, y = fixed[..., 0], fixed[..., 1]
    signed = (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)
    reversed_ = signed < 0
    fixed[reversed_] = fixed[reversed_][:, ::-1]
    first = np.argmin(fixed.sum(axis=2), axis=1)
    order = (first[:, None] + np.arange(4)[None, :]) % 4
    rolled = np.take_along_axis(fixed, order[:, :, None], axis=1)
    reordered = finite & (reversed_ | (first != 0))
    area = np.abs(signed) / 2
    clipped_boxes = quads_to_boxes(rolled)
    keep = finite & inside & (area > 0) & (clipped_boxes[:, 2] > clipped_boxes[:, 0]) & (clipped_boxes[:, 3] > clipped_boxes[:, 1])
    return Fixed(rolled, keep, _dropped(keep, finite, inside), int((reordered & keep).sum()), int((clipped & keep).sum()))


def exif_transform_boxes(xyxy: np.ndarray, orientation: int, stored_size: Size) -> np.ndarray:
    """Map boxes on a photo's stored pixels to the image as displayed after EXIF transpose.

    Takes boxes (n, 4) [x1, y1, x2, y2] in the stored (un-rotated) image, the EXIF
    orientation tag (1-8) and the stored (width, height). Returns the boxes in the
    displayed image, corners ordered. Orientation 1 (or an unknown tag) changes nothing.
    """
    width, height = stored_size
    x1, y1, x2, y2 = (xyxy[:, i].astype(np.float64) for i in range(4))
    if orientation == 2:  # mirrored left-right
        out = [width - x2, y1, width - x1, y2]
    elif orientation == 3:  # rotated 180
        out = [width - x2, height - y2, width - x1, height - y1]
    elif orientation == 4:  # mirrored top-bottom
        out = [x1, height - y2, x2, height - y1]
    elif orientation == 5:  # transposed (mirror over the main diagonal)
        out = [y1, x1, y2, x2]
    elif orientation == 6:  # displayed = stored rotated 90 clockwise
        out = [height - y2, x1, height - y1, x2]
    elif orientation == 7:  # transversed (mirror over the anti-diagonal)
        out = [height - y2, width - x2, height - y1, width - x1]
    elif orientation == 8:  # displayed = stored rotated 90 counter-clockwise
        out = [y1, width - x2, y2, width - x1]
    else:
        out = [x1, y1, x2, y2]
    return np.stack(out, axis=1).reshape(len(xyxy), 4)
