"""Duplicate items and non-maximum suppression, on items already in pixels.

Greedy decoding often writes the same item again (a loop) or a near copy of it. An item
is a duplicate when an earlier kept item has the same label and an IoU of at least the
threshold (boxes and OCR regions; for points, the same pixel position). The first one
wins: the answer's order is the model's own. Class-wise NMS is the classic detector
clean-up, offered as an option: among items of one label, the most confident (else the
earliest) suppresses those overlapping it more than the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_DUPLICATE_IOU = 0.9


def box_iou(boxes: np.ndarray) -> np.ndarray:
    """Return the pairwise IoU (n, n) of boxes (n, 4) [x1, y1, x2, y2]."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    width = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    height = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = width * height
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def label_codes(labels: Sequence[str | None]) -> np.ndarray | None:
    """Return an int code per label (None counts as a label of its own), or None when no two items share one."""
    table: dict[object, int] = {}
    codes = [table.setdefault(label, len(table)) for label in labels]
    return None if len(table) == len(codes) else np.array(codes)


def same_label_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the index pairs (i, j), i < j, of items whose label codes are equal, ordered by i then j."""
    first, second = np.nonzero(codes[:, None] == codes[None, :])
    later = first < second
    return first[later], second[later]


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
    array operations.
    """
    if iou is None or len(values) < 2:
        return []
    codes = label_codes(labels)
    if codes is None:
        return []
    first, second = same_label_pairs(codes)
    overlap = pair_overlap(values, first, second)
    hits = overlap >= iou
    if not hits.any():
        return []
    earlier: dict[int, list[tuple[int, float]]] = {}
    for i, j, value in zip(first[hits].tolist(), second[hits].tolist(), overlap[hits].tolist()):
        earlier.setdefault(j, []).append((i, value))
    dropped: set[int] = set()
    found: list[tuple[int, int, float]] = []
    for index in sorted(earlier):
        for other, value in earlier[index]:  # in order of i: the earliest kept item wins
            if other not in dropped:
                dropped.add(index)
                found.append((index, other, value))
                break
    return found


def suppressed(boxes: np.ndarray, labels: Sequence[str | None], scores: np.ndarray | None, iou: float) -> list[tuple[int, int, float]]:
    """Return (item, the item that suppresses it, their IoU) for class-wise NMS at `iou`.

    Takes pixel boxes (n, 4), one label per item and one score per item (None: the
    earlier item ranks higher). An item is suppressed by a higher-ranked kept item of
    the same label whose IoU with it exceeds `iou`.
    """
    count = len(boxes)
    if count < 2:
        return []
    order = np.arange(count) if scores is None else np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keys = [str(label) if label is not None else "\x00" for label in labels]
    overlap = box_iou(boxes)
    kept = np.zeros(count, dtype=bool)
    found: list[tuple[int, int, float]] = []
    for index in order.tolist():
        rivals = [j for j in np.flatnonzero(kept).tolist() if keys[j] == keys[index] and overlap[index, j] > iou]
        if rivals:
            best = max(rivals, key=lambda j: overlap[index, j])
            found.append((index, best, float(overlap[index, best])))
        else:
            kept[index] = True
    return sorted(found)
