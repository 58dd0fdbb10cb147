"""Coarse-to-fine re-asking: where to crop next, and at what zoom.

Pass 1 asks the whole image for the region that contains the target (the `region`
task); each later pass crops there, with `margin` of context around the named region,
and asks again; the last pass asks the task itself. With `depth` d the view narrows in
d steps, geometrically from the whole image's resolution to `resolution` (model pixels
per image pixel, from the family's resize rule at the task's budget): step k's crop is
the largest one seen at s0 * (resolution / s0) ** (k / d), widened to hold the region
and its margin, and kept inside the image.
"""

from __future__ import annotations

from collections.abc import Callable

from vistool.profiles.base import ModelProfile
from vistool.tasks.base import Options
from vistool.zoom.settings import ZoomSettings
from vistool.zoom.tiling import Box, Size, seen_scale

# What the region pass asks for, per task that refine serves: the target in words.
REFINE_TARGETS: dict[str, Callable[[Options], str]] = {
    "ground": lambda options: str(options.get("expression") or "").strip(),
    "gui_ground": lambda options: str(options.get("instruction") or "").strip(),
}


def step_scale(whole_scale: float, settings: ZoomSettings, step: int) -> float:
    """Return the model pixels per image pixel wanted at refine step `step` (1..depth)."""
    if whole_scale >= settings.resolution:
        return whole_scale
    return whole_scale * (settings.resolution / whole_scale) ** (step / settings.depth)


def view_size(image_size: Size, profile: ModelProfile, budget: int | None, scale: float) -> Size:
    """Return the largest crop, with the image's aspect ratio, that the model sees at
    `scale` or finer (the whole image when it already is; a tenth of it at the least)."""
    width, height = image_size
    low, high = 0.1, 1.0
    if seen_scale(profile, image_size, budget) >= scale:
        return image_size
    for _ in range(30):  # bisect the fraction of the image's sides
        middle = (low + high) / 2
        size = (max(1, round(width * middle)), max(1, round(height * middle)))
        if seen_scale(profile, size, budget) >= scale:
            low = middle
        else:
            high = middle
    return (max(1, round(width * low)), max(1, round(height * low)))


def refine_crop(region: tuple[float, float, float, float], image_size: Size, size: Size, margin: float) -> Box:
    """Return the crop for the next pass.

    Takes the region the model named (pixels of the whole image), the image (width,
    height), the crop size wanted (`view_size`) and the margin (fraction of the region's
    size added on each side). The crop is at least `size`, large enough for the region
    and its margin, centred on the region, and shifted to lie inside the image.
    """
    width, height = image_size
    x1, y1, x2, y2 = region
    grow_x, grow_y = margin * max(x2 - x1, 1.0), margin * max(y2 - y1, 1.0)
    x1, y1, x2, y2 = x1 - grow_x, y1 - grow_y, x2 + grow_x, y2 + grow_y
    crop_w = min(width, max(size[0], int(round(x2 - x1))))
    crop_h = min(height, max(size[1], int(round(y2 - y1))))
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(centre_x - crop_w / 2, 0), width - crop_w)))
    top = int(round(min(max(centre_y - crop_h / 2, 0), height - crop_h)))
    return (left, top, left + crop_w, top + crop_h)
