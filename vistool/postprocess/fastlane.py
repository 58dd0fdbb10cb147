"""The fast lane of `parse_many`: boxes in strict JSON, with nothing to repair or clean.

Almost every detection answer is the same thing: one ```json fence (or a bare list)
holding flat objects that all carry the family's box key with four numbers and a
non-empty string label, every box inside the image with its corners in order. For such
answers the general path (extract -> readers -> geometry -> results) does a dozen small
steps per answer; this lane reads each answer with one JSON decode and does the
numeric work (numbers -> array, mapping to pixels, the inside-the-image check) once for
the whole batch.

An answer the lane cannot take whole (longer than the parser reads, MAX_ANSWER_CHARS;
a thinking channel, several fences, repairs,
scores, odd labels, a box that needs clipping or reordering, a duplicate item, numbers
that may be on a 0-1 scale, ...) is handed back, and the general path parses it. Both
give the same result; the tests compare them. Answer variants (other keys, a label ->
box dict, a wrapper object, JSON lines) never enter the lane: it takes only a strict
list of the family's own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from vistool.postprocess.duplicates import MAX_PAIRS, pair_overlap
from vistool.postprocess.extract import MAX_ANSWER_CHARS, brace_spans_many, fenced_regions, loads_strict
from vistool.postprocess.geometry import pixel_factors, swap_columns
from vistool.profiles.base import ModelProfile

Size = tuple[int, int]


class SimpleAnswer(NamedTuple):
    """One answer the lane can take, as written: its numbers, labels and where its list is.

    numbers: the four numbers of every box, one flat list; labels: one stripped label
    per box; text, begin, stop: the answer and the list's place in it (item spans are
    found later, for the whole batch at once). Flat lists, not one object per item: a
    batch keeps these alive until it is mapped, and thousands of small containers kept
    alive cost more in Python's garbage collector than the parsing itself.
    """

    numbers: list[Any]
    labels: list[str]
    text: str
    begin: int
    stop: int


def read_simple(text: str, profile: ModelProfile) -> SimpleAnswer | None:
    """Read `text` when it is a strict JSON list of flat box objects; else return None.

    Takes the answer text and a JSON family's profile. Accepts one fenced body (prose
    around the fence is ignored, as the general path does) or a whole answer that is the
    list. Every element must be an object with the profile's first box key (four JSON
    numbers) and first label key (a non-empty string after stripping), and no item may
    carry a score key. An answer longer than MAX_ANSWER_CHARS is never taken: the
    general path reads only that much of it (and says so), and so must the batch.
    (That every brace in the list belongs to an item, so that the item spans are brace
    pairs, is checked by `map_simple`.)
    """
    if len(text) > MAX_ANSWER_CHARS:
        return None
    for open_marker, close_marker in profile.thought_markers:
        if open_marker in text or close_marker in text:
            return None
    fences = fenced_regions(text, 0, len(text))
    if fences is None:
        start, end = 0, len(text)
    elif len(fences) == 1:
        start, end = fences[0]
    else:
        return None
    items, begin, stop = loads_strict(text, start, end)
    if type(items) is not list or not items or not profile.label_keys:
        return None
    try:  # every item an object with the box key holding four values and a string label
        rows = list(map(itemgetter(profile.box_keys[0]), items))
        labels = list(map(str.strip, map(itemgetter(profile.label_keys[0]), items)))
        if set(map(len, rows)) != {4}:  # (a string or an object of four fails the number check below)
            return None
    except (KeyError, TypeError):
        return None
    if "" in labels:
        return None
    if set(map(len, items)) != {2}:  # more keys than box and label: a score, perhaps
        for key in profile.confidence_keys:
            if key in text:
                return None
    numbers = list(chain.from_iterable(rows))
    if not set(map(type, numbers)) <= {int, float}:  # strings, booleans, nulls: the general path
        return None
    return SimpleAnswer(numbers, labels, text, begin, stop)


class MappedBoxes(NamedTuple):
    """The lane's batch result for the answers that stayed in the lane.

    xyxy: float array (n, 4) of their pixel boxes, answer after answer; spans: int
    array (n, 2) of each box's item (start, end) in its answer's text; bounds: for each
    input answer, its rows (start, end) in `xyxy` and `spans`, or None when the answer
    must take the general path.
    """

    xyxy: np.ndarray
    spans: np.ndarray
    bounds: list[tuple[int, int] | None]


def map_simple(
    answers: Sequence[SimpleAnswer | None],
    image_sizes: Sequence[Size],
    profile: ModelProfile,
    resized_sizes: Sequence[Size | None],
    duplicate_iou: float | None = None,
) -> MappedBoxes:
    """Map the boxes of a batch of simple answers to pixels and find their spans, all at once.

    Takes the answers (None for one the lane does not take), each answer's displayed
    (width, height) and resized (width, height) (None unless the family answers in
    resized pixels), and the duplicate threshold of the parse (None: no duplicates
    dropped). An answer is handed back (bounds None) when its numbers are not plain
    numbers, when a box would need clipping, reordering or dropping, when its list
    holds braces that are not its items' own (inside strings), when two of its items
    may be duplicates, or when all its numbers lie in 0..1 and the family reads 0-1
    scales. Returns `MappedBoxes`.
    """
    bounds: list[tuple[int, int] | None] = [None] * len(answers)
    indices = [index for index, answer in enumerate(answers) if answer is not None]
    taken = [answers[index] for index in indices]
    counts = [len(answer.labels) for answer in taken]
    total = sum(counts)
    if not total:
        return MappedBoxes(np.empty((0, 4)), np.empty((0, 2), dtype=np.int64), bounds)
    try:
        coords = np.fromiter(
            chain.from_iterable(answer.numbers for answer in taken), dtype=np.float64, count=4 * total
        ).reshape(total, 4)
    except OverflowError:  # an integer beyond any float: hand back the answers that hold one
        return map_simple(
            [answer if _fits_floats(answer) else None for answer in answers], image_sizes, profile, resized_sizes, duplicate_iou
        )
    system = profile.coords
    factors = np.array([pixel_factors(system, image_sizes[i], resized_sizes[i]) for i in indices])
    scale = np.tile(np.repeat(factors, counts, axis=0), 2)
    coords = swap_columns(coords, system)
    xyxy = (coords + system.offset) * scale if system.offset else coords * scale
    limits = np.repeat(np.array([image_sizes[i] for i in indices], dtype=np.float64), counts, axis=0)
    x1, y1, x2, y2 = xyxy.T
    # Finite, inside, ordered and non-empty (NaN fails every comparison). Column by
    # column: numpy reduces a 2-wide axis slowly.
    good = (x1 >= 0) & (y1 >= 0) & (x2 <= limits[:, 0]) & (y2 <= limits[:, 1]) & (x2 > x1) & (y2 > y1)
    starts = np.cumsum([0] + counts[:-1])
    spans, flat = brace_spans_many(
        [answer.text for answer in taken], [answer.begin for answer in taken], [answer.stop for answer in taken], counts
    )
    answer_good = np.logical_and.reduceat(good, starts) & flat
    if profile.variants.unit_scale:  # the general path decides whether such an answer is on a 0-1 scale
        answer_good &= np.maximum.reduceat(np.abs(coords).max(axis=1), starts) > 1.0
    if duplicate_iou is not None:
        answer_good &= ~_has_duplicates(xyxy, [answer.labels for answer in taken], counts, duplicate_iou)
    answer_good = answer_good.tolist()
    for index, start, count, ok in zip(indices, starts.tolist(), counts, answer_good):
        if ok:
            bounds[index] = (start, start + count)
    return MappedBoxes(xyxy, spans, bounds)


def _has_duplicates(xyxy: np.ndarray, labels: list[list[str]], counts: list[int], iou: float) -> np.ndarray:
    """Return, per answer, whether two of its boxes share a label and overlap at IoU >= `iou`.

    For the whole batch at once, with no loop over answers or groups: boxes are sorted
    by (answer, label); every pair inside a run of equal keys is listed (each box pairs
    with the later boxes of its run) and all pairs are compared in one array operation.
    An answer with more than MAX_PAIRS same-label pairs counts as having duplicates
    without being compared: it goes the general way, which bounds that search.
    """
    total = len(xyxy)
    table = {name: code for code, name in enumerate(dict.fromkeys(chain.from_iterable(labels)))}
    codes = np.fromiter(map(table.__getitem__, chain.from_iterable(labels)), dtype=np.int64, count=total)
    keys = np.repeat(np.arange(len(counts)), counts) * max(1, len(table)) + codes
    answer_of = keys // max(1, len(table))
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    run_starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    run_sizes = np.diff(np.append(run_starts, total))
    position = np.arange(total) - np.repeat(run_starts, run_sizes)  # each box's place in its run
    later = np.repeat(run_sizes, run_sizes) - 1 - position  # how many boxes of its run come after it
    found = np.zeros(len(counts), dtype=bool)
    pairs = np.bincount(answer_of[order][run_starts], weights=run_sizes * (run_sizes - 1) // 2, minlength=len(counts))
    crowded = pairs > MAX_PAIRS
    if crowded.any():
        found |= crowded
        later = np.where(crowded[answer_of[order]], 0, later)
    if not later.any():
        return found
    first = np.repeat(np.arange(total), later)
    pair_starts = np.cumsum(later) - later
    second = first + 1 + (np.arange(len(first)) - pair_starts[first])
    first, second = order[first], order[second]
    hits = pair_overlap(xyxy, first, second) >= iou
    found[answer_of[first[hits]]] = True
    return found


def _fits_floats(answer: SimpleAnswer | None) -> bool:
    """True when every number of `answer` converts to a float (False for None)."""
    if answer is None:
        return False
    try:
        np.fromiter(answer.numbers, dtype=np.float64, count=len(answer.numbers))
    except OverflowError:
        return False
    return True
