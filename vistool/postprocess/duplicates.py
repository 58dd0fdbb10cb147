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


def _overlap(values: np.ndarray) -> np.ndarray:
    """Pairwise overlap of items: IoU of boxes (n, 4), 1/0 identity of points (n, 2)."""
    if values.shape[1] == 2:
        return (values[:, None, :] == values[None, :, :]).all(axis=2).astype(np.float64)
    return box_iou(values)


def find_duplicates(values: np.ndarray, labels: Sequence[str | None], iou: float | None) -> list[tuple[int, int, float]]:
    """Return (item, the earlier kept item it repeats, their overlap) for each duplicate, in order.

    Takes pixel boxes (n, 4) or points (n, 2), one label per item (None counts as a
    label of its own) and the IoU threshold (None: find nothing).
    """
    count = len(values)
    if iou is None or count < 2:
        return []
    keys = [str(label) if label is not None else "\x00" for label in labels]
    if len(set(keys)) == count:  # no two items share a label
        return []
    codes = np.unique(np.array(keys, dtype=object), return_inverse=True)[1]
    overlap = _overlap(values)
    same = (codes[:, None] == codes[None, :]) & (overlap >= iou)
    kept = np.ones(count, dtype=bool)
    found: list[tuple[int, int, float]] = []
    for index in range(1, count):
        earlier = np.flatnonzero(same[index, :index] & kept[:index])
        if len(earlier):
            kept[index] = False
            found.append((index, int(earlier[0]), float(overlap[index, earlier[0]])))
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
