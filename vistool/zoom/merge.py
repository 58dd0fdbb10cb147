"""Merging what overlapping tiles found: one box (or point) per object, class by class.

Two items from DIFFERENT tiles are the same object when they have the same class and
their parts inside the two tiles' common area agree: IoU(a clipped to it, b clipped to
it) >= `iou` (boxes), or distance <= `radius` (points). Matches are taken best first, and
a group never takes two items of one tile: a tile names each object once, so two of its
items are two objects (this keeps overlapping objects of one class apart, even when
their parts in the common area match, and lets a whole-image pass join each object once). Comparing the parts, not
the whole boxes, is what merges an object cut by one tile's border (there it is seen
only up to the border) with the whole box another tile saw, which plain IoU-NMS misses
when the cut piece is small. Items of one tile are never merged with each other.

Each group of one object becomes one item:
  - boxes: among the members NOT cut by an inner tile border, "nms" keeps the one seen
    at the finest resolution (then the most confident) and "wbf" averages them
    (weighted by confidence); when every member is cut (an object larger than the
    overlap), the union of the pieces;
  - points (which carry no extent): each point is kept only by the tile it lies
    deepest in, then points within `radius` are one (see `merge_points`).
IoU matrices come from supervision (`sv.box_iou_batch`).

supervision's `InferenceSlicer` is not used: it owns the loop (it calls the model once
per slice, synchronously, with pixels only), where vistool must plan every tile of many
images up front so they share backend batches and the answer cache, record each tile's
box, prompt and answer, and chain a dependent second pass for refine. Its merge is
IoU/IoS NMS over whole boxes, which either keeps a cut piece as a duplicate (IoU) or
swallows a small object inside a larger one of its class (IoS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from vistool.zoom.tiling import Box


@dataclass(frozen=True)
class Merged:
    """One merged object: the index of the member that stands for it (its label and
    other fields are kept), its box (or point) and its members' indices."""

    index: int
    value: np.ndarray
    members: tuple[int, ...]
    confidence: float | None = None


class _Groups:
    """Union-find over item indices, where a group never holds two items of one tile
    (a tile names each object once, so two of its items are two objects)."""

    def __init__(self, sources: np.ndarray) -> None:
        self.parent = list(range(len(sources)))
        self.tiles = [{int(source)} for source in sources]

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> bool:
        """Put a and b in one group unless that group would hold two items of one tile;
        return whether they are in one group now."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return True
        if self.tiles[root_a] & self.tiles[root_b]:
            return False
        keep, other = min(root_a, root_b), max(root_a, root_b)
        self.parent[other] = keep
        self.tiles[keep] |= self.tiles[other]
        return True

    def join_best_first(self, pairs: list[tuple[float, int, int]]) -> None:
        """Join candidate pairs (score, a, b), the best-scoring first."""
        for _, a, b in sorted(pairs, key=lambda pair: (-pair[0], pair[1], pair[2])):
            self.join(a, b)

    def groups(self) -> list[list[int]]:
        """Every group's members, ordered by their first member."""
        found: dict[int, list[int]] = {}
        for item in range(len(self.parent)):
            found.setdefault(self.find(item), []).append(item)
        return sorted(found.values(), key=lambda members: members[0])


def _common(a: Box, b: Box) -> tuple[float, float, float, float] | None:
    """The intersection of two tiles, or None when they do not overlap."""
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _clip(xyxy: np.ndarray, area: tuple[float, float, float, float]) -> np.ndarray:
    """Boxes (n, 4) clipped to an area."""
    x1, y1, x2, y2 = area
    return np.clip(xyxy, [x1, y1, x1, y1], [x2, y2, x2, y2])


def cut_flags(xyxy: np.ndarray, sources: np.ndarray, tiles: Sequence[Box], image_size: tuple[int, int], tolerance: np.ndarray) -> np.ndarray:
    """Return, per box, whether it touches a border of its tile that is not a border of
    the image (within its tile's `tolerance` in pixels): the tile saw only part of it."""
    width, height = image_size
    flags = np.zeros(len(xyxy), dtype=bool)
    for index, (box, source) in enumerate(zip(xyxy, sources)):
        tx1, ty1, tx2, ty2 = tiles[int(source)]
        tol = float(tolerance[int(source)])
        flags[index] = bool(
            (tx1 > 0 and box[0] <= tx1 + tol)
            or (ty1 > 0 and box[1] <= ty1 + tol)
            or (tx2 < width and box[2] >= tx2 - tol)
            or (ty2 < height and box[3] >= ty2 - tol)
        )
    return flags


def _pairs(keys: np.ndarray, sources: np.ndarray, tiles: Sequence[Box]):
    """Yield (area, indices in tile a, indices in tile b) for every overlapping tile pair."""
    for a in range(len(tiles)):
        in_a = np.flatnonzero(sources == a)
        if not len(in_a):
            continue
        for b in range(a + 1, len(tiles)):
            area = _common(tiles[a], tiles[b])
            if area is None:
                continue
            in_b = np.flatnonzero(sources == b)
            if len(in_b):
                yield area, in_a, in_b


def merge_boxes(
    xyxy: np.ndarray,
    keys: np.ndarray,
    sources: np.ndarray,
    tiles: Sequence[Box],
    scales: Sequence[float],
    image_size: tuple[int, int],
    *,
    confidence: np.ndarray | None = None,
    iou: float = 0.5,
    method: str = "nms",
) -> list[Merged]:
    """Merge boxes found in overlapping tiles into one box per object.

    Takes boxes (n, 4) in pixels of the whole image, a class key per box (ints; equal
    keys may merge), the tile index of each box, the tile boxes, each tile's model
    pixels per image pixel, the image (width, height), optional confidences, the IoU
    threshold and the method ("nms" or "wbf"). Returns the merged objects, ordered by
    their first member.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    keys, sources = np.asarray(keys), np.asarray(sources)
    scale = np.asarray(scales, dtype=np.float64)
    candidates: list[tuple[float, int, int]] = []
    for area, in_a, in_b in _pairs(keys, sources, tiles):
        part_a, part_b = _clip(xyxy[in_a], area), _clip(xyxy[in_b], area)
        overlap = sv.box_iou_batch(part_a, part_b)
        overlap[keys[in_a][:, None] != keys[in_b][None, :]] = 0.0
        for i, j in zip(*np.nonzero(overlap >= iou)):
            candidates.append((float(overlap[i, j]), int(in_a[i]), int(in_b[j])))
    groups = _Groups(sources)
    groups.join_best_first(candidates)
    # How near an inner border a box edge must be to count as cut there: the model's
    # error grows with the resize (2 model pixels), plus 1% of the tile's shorter side.
    tolerance = np.array([1.0 + 2.0 / max(value, 1e-6) + 0.01 * min(t[2] - t[0], t[3] - t[1]) for value, t in zip(scale, tiles)])
    cut = cut_flags(xyxy, sources, tiles, image_size, tolerance)
    merged = []
    for members in groups.groups():
        merged.append(_one_box(members, xyxy, cut, scale[sources], confidence, method))
    return merged


def _one_box(members: list[int], xyxy: np.ndarray, cut: np.ndarray, scale: np.ndarray, confidence: np.ndarray | None, method: str) -> Merged:
    """The box that stands for one group (see the module doc)."""
    score = np.ones(len(xyxy)) if confidence is None else np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    whole = [index for index in members if not cut[index]]
    if not whole:  # every member is a piece: the object is larger than the overlap
        boxes = xyxy[members]
        union = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])
        largest = max(members, key=lambda index: (xyxy[index, 2] - xyxy[index, 0]) * (xyxy[index, 3] - xyxy[index, 1]))
        return Merged(largest, union, tuple(members), None if confidence is None else float(score[members].max()))
    best = max(whole, key=lambda index: (round(float(scale[index]), 6), float(score[index]), -index))
    if method == "wbf" and len(whole) > 1:
        weights = score[whole] if score[whole].sum() > 0 else np.ones(len(whole))
        value = (xyxy[whole] * weights[:, None]).sum(axis=0) / weights.sum()
        return Merged(best, value, tuple(members), None if confidence is None else float(score[whole].mean()))
    return Merged(best, xyxy[best].copy(), tuple(members), None if confidence is None else float(score[best]))


def _depth(point: np.ndarray, tile: Box, image_size: tuple[int, int]) -> float:
    """How far inside `tile` a point is: its distance to the nearest tile border that is
    not an image border (negative outside the tile; infinite for the whole image)."""
    width, height = image_size
    x, y = float(point[0]), float(point[1])
    if not (tile[0] <= x <= tile[2] and tile[1] <= y <= tile[3]):
        return -1.0
    inner = [x - tile[0] if tile[0] > 0 else np.inf, y - tile[1] if tile[1] > 0 else np.inf,
             tile[2] - x if tile[2] < width else np.inf, tile[3] - y if tile[3] < height else np.inf]
    return float(min(inner))


def merge_points(
    xy: np.ndarray,
    keys: np.ndarray,
    sources: np.ndarray,
    tiles: Sequence[Box],
    scales: Sequence[float],
    image_size: tuple[int, int],
    *,
    confidence: np.ndarray | None = None,
    radius: float = 4.0,
) -> list[Merged]:
    """Merge points found in overlapping tiles into one point per object.

    A point carries no extent, so a tile that sees only part of an object points at
    that part. Each point is therefore first kept only by the tile it lies deepest in
    (its distance to the tile's inner borders; within `radius` of the best counts as
    a tie): a part seen near one tile's border lies deeper in the neighbour that saw the
    whole object. Points of different tiles within `radius` are then one point: the one
    seen at the finest resolution (then the deepest, then the most confident).

    Takes points (n, 2) in pixels of the whole image, a class key per point, the tile
    index of each, the tile boxes, each tile's model pixels per image pixel, the image
    (width, height), optional confidences and the radius in pixels. Returns the merged
    points in order. A tile that is the whole image only takes part in the second step.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    keys, sources = np.asarray(keys), np.asarray(sources)
    whole = [tuple(tile) == (0, 0, image_size[0], image_size[1]) for tile in tiles]
    depth = np.array([_depth(point, tiles[int(source)], image_size) for point, source in zip(xy, sources)])
    kept = []
    for index, (point, source) in enumerate(zip(xy, sources)):
        best = max((_depth(point, tile, image_size) for t, tile in enumerate(tiles) if not whole[t]), default=-1.0)
        if whole[int(source)] or depth[index] >= best - radius:
            kept.append(index)
    in_kept = np.zeros(len(xy), dtype=bool)
    in_kept[np.array(kept, dtype=np.int64)] = True
    candidates: list[tuple[float, int, int]] = []
    for _, in_a, in_b in _pairs(keys, sources, tiles):
        a, b = in_a[in_kept[in_a]], in_b[in_kept[in_b]]
        if not len(a) or not len(b):
            continue
        distance = np.linalg.norm(xy[a][:, None, :] - xy[b][None, :, :], axis=2)
        same = (keys[a][:, None] == keys[b][None, :]) & (distance <= radius)
        for i, j in zip(*np.nonzero(same)):
            candidates.append((-float(distance[i, j]), int(a[i]), int(b[j])))
    groups = _Groups(sources)
    groups.join_best_first(candidates)
    scale = np.asarray(scales, dtype=np.float64)
    score = np.ones(len(xy)) if confidence is None else np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    merged = []
    for members in groups.groups():
        members = [index for index in members if in_kept[index]]
        if not members:
            continue
        best = max(members, key=lambda i: (round(float(scale[sources[i]]), 6), float(depth[i]), float(score[i]), -i))
        merged.append(Merged(best, xy[best].copy(), tuple(members), None if confidence is None else float(score[best])))
    return merged


def join_texts(pieces: Sequence[tuple[float, str]]) -> str:
    """Join the texts of the pieces of one cut text line, left to right.

    Takes (x position, text) pairs; words that end one piece and start the next (the
    part both tiles saw) are written once. Returns the joined text.
    """
    words: list[str] = []
    for _, text in sorted(pieces, key=lambda piece: piece[0]):
        new = text.split()
        shared = 0
        for size in range(min(len(words), len(new)), 0, -1):
            if words[-size:] == new[:size]:
                shared = size
                break
        words.extend(new[shared:])
    return " ".join(words)
