"""Duplicate items and non-maximum suppression, on items already in pixels.

Greedy decoding often writes the same item again (a loop) or a near copy of it. An item
is a duplicate when an earlier kept item has the same label and an IoU of at least the
threshold (boxes and OCR regions; for points, the same pixel position). The first one
wins: the answer's order is the model's own. Class-wise NMS is the classic detector
clean-up, offered as an option: among items of one label, the most confident (else the
earliest) suppresses those overlapping it more than the threshold.

Bounded work (issue 20): an answer may hold tens of thousands of items of one label (a
loop the token limit did not stop, a hostile server), and comparing every pair is
quadratic. Up to MAX_PAIRS same-label pairs every pair is compared; past that, each item
is compared with the DUPLICATE_WINDOW items of its label written just before it and with
its exact copies (the loop case), in time and memory linear in the items
(`duplicates_limited` says when). NMS compares each item with the kept items of its
label only, without an n x n matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_DUPLICATE_IOU = 0.9
MAX_PAIRS = 100_000  # same-label pairs compared exactly (about 450 items of one label)
DUPLICATE_WINDOW = 16  # past MAX_PAIRS: the earlier items of its label each item is compared with


def iou_with(boxes: np.ndarray, index: int, others: np.ndarray) -> np.ndarray:
    """Return the IoU of box `index` with each box in `others` (indices into boxes (n, 4) [x1, y1, x2, y2])."""
    x1, y1, x2, y2 = boxes[index]
    rest = boxes[others]
    area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    areas = np.maximum(rest[:, 2] - rest[:, 0], 0) * np.maximum(rest[:, 3] - rest[:, 1], 0)
    width = np.clip(np.minimum(x2, rest[:, 2]) - np.maximum(x1, rest[:, 0]), 0, None)
    height = np.clip(np.minimum(y2, rest[:, 3]) - np.maximum(y1, rest[:, 1]), 0, None)
    inter = width * height
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def label_codes(labels: Sequence[str | None]) -> np.ndarray | None:
    """Return an int code per label (None counts as a label of its own), or None when no two items share one."""
    table: dict[object, int] = {}
    codes = [table.setdefault(label, len(table)) for label in labels]
    return None if len(table) == len(codes) else np.array(codes)


def same_label_pairs(codes: np.ndarray, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the index pairs (i, j), i < j, of items whose label codes are equal, ordered by i then j.

    With `window`, only pairs at most `window` apart among the items of their code (each
    item with the `window` items of its label just before it). Memory is linear in the
    pairs returned (items are sorted by code; no n x n matrix).
    """
    total = len(codes)
    order = np.argsort(codes, kind="stable")  # stable: within a code, indices ascend
    ordered = codes[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    sizes = np.diff(np.append(starts, total))
    position = np.arange(total) - np.repeat(starts, sizes)  # each item's place among its label's items
    later = np.repeat(sizes, sizes) - 1 - position  # how many items of its label come after it
    if window is not None:
        later = np.minimum(later, window)
    first = np.repeat(np.arange(total), later)
    pair_starts = np.cumsum(later) - later
    second = first + 1 + (np.arange(len(first)) - pair_starts[first])
    first, second = order[first], order[second]
    ranked = np.lexsort((second, first))
    return first[ranked], second[ranked]


def same_label_pair_count(codes: np.ndarray) -> int:
    """Return how many pairs of items share a label code (what comparing every pair costs)."""
    counts = np.bincount(codes)
    return int((counts * (counts - 1) // 2).sum())


def duplicates_limited(labels: Sequence[str | None]) -> bool:
    """True when `find_duplicates` compares each item with a window of its label, not with every item."""
    codes = label_codes(labels)
    return codes is not None and same_label_pair_count(codes) > MAX_PAIRS


def _exact_copies(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (first copy, later copy) index pairs of items with the same label code and equal values."""
    rows = np.column_stack([codes.astype(np.float64), values]).copy()
    _, first_of, group = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    leader = first_of[group.reshape(-1)]
    copies = np.flatnonzero(leader != np.arange(len(codes)))
    return leader[copies], copies


def pair_overlap(values: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the overlap of each pair: the IoU of boxes (n, 4), 1.0 or 0.0 (same position or not) for points (n, 2)."""
    columns = np.ascontiguousarray(values.T)
    a, b = columns[:, first], columns[:, second]
    if len(columns) == 2:
        return ((a[0] == b[0]) & (a[1] == b[1])).astype(np.float64)
    width = np.minimum(a[2], b[2]) - np.maximum(a[0], b[0])
    height = np.minimum(a[3], b[3]) - np.maximum(a[1], b[1])
    inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def find_duplicates(values: np.ndarray, labels: Sequence[str | None], iou: float | None) -> list[tuple[int, int, float]]:
    """Return (item, the earlier kept item it repeats, their overlap) for each duplicate, in order.

    Takes pixel boxes (n, 4) or points (n, 2), one label per item (None counts as a
    label of its own) and the IoU threshold (None: find nothing). Only pairs with one
    label are compared, so the usual answer costs a pass over its labels and a few
    array operations. Past MAX_PAIRS same-label pairs, an item is compared with the
    DUPLICATE_WINDOW earlier items of its label and with its exact copies (module docstring).
    """
    if iou is None or len(values) < 2:
        return []
    codes = label_codes(labels)
    if codes is None:
        return []
    limited = same_label_pair_count(codes) > MAX_PAIRS
    first, second = same_label_pairs(codes, DUPLICATE_WINDOW if limited else None)
    if limited:  # add the exact copies (a loop), however far apart; each pair once, ordered by i then j
        copy_first, copy_second = _exact_copies(values, codes)
        pairs = np.unique(np.column_stack([np.concatenate([first, copy_first]), np.concatenate([second, copy_second])]), axis=0)
        first, second = pairs[:, 0], pairs[:, 1]
    overlap = pair_overlap(values, first, second)
    hits = overlap >= iou
    if not hits.any():
        return []
    earlier: dict[int, list[tuple[int, float]]] = {}
    for i, j, value in zip(first[hits].tolist(), second[hits].tolist(), overlap[hits].tolist()):
        earlier.setdefault(j, []).append((i, value))
    repeats: dict[int, tuple[int, float]] = {}  # dropped item -> (the kept item it repeats, overlap)
    found: list[tuple[int, int, float]] = []
    for index in sorted(earlier):
        for other, value in earlier[index]:  # in order of i: the earliest kept item wins
            if other in repeats:
                if not (limited and np.array_equal(values[other], values[index])):
                    continue
                other, value = repeats[other]  # an exact copy of a dropped item repeats what that one repeats
            repeats[index] = (other, value)
            found.append((index, other, value))
            break
    return found


def suppressed(boxes: np.ndarray, labels: Sequence[str | None], scores: np.ndarray | None, iou: float) -> list[tuple[int, int, float]]:
    """Return (item, the item that suppresses it, their IoU) for class-wise NMS at `iou`.

    Takes pixel boxes (n, 4), one label per item and one score per item (None: the
    earlier item ranks higher). An item is suppressed by a higher-ranked kept item of
    the same label whose IoU with it exceeds `iou` (the one it overlaps most; the
    earliest of those on a tie). Each item is compared with its label's kept items only.
    """
    count = len(boxes)
    if count < 2:
        return []
    boxes = np.asarray(boxes, dtype=np.float64)
    order = np.arange(count) if scores is None else np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keys = [str(label) if label is not None else "\x00" for label in labels]
    kept_of: dict[str, list[int]] = {}
    found: list[tuple[int, int, float]] = []
    for index in order.tolist():
        kept = kept_of.setdefault(keys[index], [])
        if kept:
            others = np.array(kept)
            overlap = iou_with(boxes, index, others)
            rivals = overlap > iou
            if rivals.any():
                best_value = overlap[rivals].max()
                best = int(others[rivals & (overlap == best_value)].min())
                found.append((index, best, float(best_value)))
                continue
        kept.append(index)
    return sorted(found)
