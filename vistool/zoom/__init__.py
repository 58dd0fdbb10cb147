"""Zoom: small objects, dense scenes and 4K screens, by asking the model several times.

A model sees an image through a fixed token budget (Gemma 4 at 280 tokens shrinks
3840x2160 to 1056x576: a 20-px icon becomes 5 px). Two strategies compose the ordinary
tasks from above, without the tasks knowing:

  - "tiles": overlapping tiles chosen from the family's resize rule so each is seen near
    full resolution, all asked in one batch, every answer mapped back to the whole
    image and duplicates across tile borders merged (detect, ground, point, OCR
    regions, GUI elements);
  - "refine": ask where the target is, crop there (with margin, at a zoom chosen from
    the budget), ask again (ground, GUI grounding).

    vt.detect("screen.png", ["icon"], zoom="tiles")
    vt.gui_ground("screen.png", "open settings", zoom="refine:depth=2")
    result.provenance["zoom"]   # every pass: crop box, prompt, answer; the cost

Modules: settings (the `zoom=` setting), tiling (tile grids), mapping (crops and shifts),
merge (duplicates across tiles), refine (where to crop next), compose (one result from
many passes), planner (`ZoomJob`: one call -> passes -> result; `run_jobs`), draw (the
passes drawn on the image).
"""

from vistool.zoom.planner import ZOOM_MODES, Pass, ZoomJob, check_zoom, run_jobs
from vistool.zoom.settings import MODES, ZoomLike, ZoomSettings
from vistool.zoom.tiling import TileGrid, seen_scale, tile_grid

__all__ = [
    "MODES",
    "Pass",
    "TileGrid",
    "ZOOM_MODES",
    "ZoomJob",
    "ZoomLike",
    "ZoomSettings",
    "check_zoom",
    "run_jobs",
    "seen_scale",
    "tile_grid",
]
