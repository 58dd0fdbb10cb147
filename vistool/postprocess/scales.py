"""Coordinates written on another scale than the family's: 0-1 fractions, or the image's pixels.

A family that declares the `unit_scale` / `pixel_scale` variants (vistool.profiles.variants)
has its answers checked, as a whole, before mapping to pixels:
  - unit: every number lies in 0..1 and some have a fraction (a 0..1000 answer of only
    0s and 1s stays what it says);
  - pixels: some number exceeds the family's scale (1000) and every number fits the
    displayed image (x within its width, y within its height). An image no larger than
    the scale leaves the two readings indistinguishable, and then nothing changes.
Either way the answer is mapped on the scale it was written in, and the diagnostics say so.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vistool.profiles.base import CoordSystem, ModelProfile

UNIT = "unit"
PIXELS = "pixels"


class Scale(NamedTuple):
    """The coordinate system to map an answer with, and the scale found (None: the family's own).

    resized: the size to pass to `geometry.to_pixels` as `resized_size` (the image's own
    size for pixels, else the caller's).
    """

    system: CoordSystem
    found: str | None
    resized: tuple[int, int] | None


def detect(coords: np.ndarray, profile: ModelProfile, image_size: tuple[int, int], resized: tuple[int, int] | None) -> Scale:
    """Return how to map `coords` (n, 2k) of one answer, written in `profile`'s order.

    Takes the raw numbers, the family's profile (its scale and declared variants), the
    displayed (width, height) and the resized size the caller has (or None).
    """
    system = profile.coords
    variants = profile.variants
    if not len(coords) or not (variants.unit_scale or variants.pixel_scale):
        return Scale(system, None, resized)
    values = coords[np.isfinite(coords)]
    if not values.size or values.min() < 0:
        return Scale(system, None, resized)
    top = float(values.max())
    if variants.unit_scale and top <= 1.0 and bool((values != np.round(values)).any()):
        return Scale(CoordSystem(order=system.order, scale=1.0), UNIT, resized)
    if variants.pixel_scale and system.scale is not None and top > system.scale:
        pairs = coords.reshape(len(coords), -1, 2)
        first, second = pairs[..., 0], pairs[..., 1]
        xs, ys = (second, first) if system.order == "yx" else (first, second)
        width, height = image_size
        if np.isfinite(coords).all() and xs.max() <= width and ys.max() <= height:
            return Scale(CoordSystem(order=system.order, scale=None), PIXELS, image_size)
    return Scale(system, None, resized)


def describe(found: str, profile: ModelProfile) -> str:
    """Return the diagnostics note for an answer found on another scale."""
    if found == UNIT:
        return "coordinates on a 0-1 scale: mapped as fractions of the image"
    scale = profile.coords.scale
    return f"coordinates beyond 0-{scale:g} that fit the image: mapped as its pixels"
