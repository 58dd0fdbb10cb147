"""Geometry: conventions to pixels and back, clean-up of boxes, points and quads."""

from __future__ import annotations

import numpy as np
import pytest

from vistool.errors import VistoolError
from vistool.postprocess.diagnostics import NON_FINITE, OUTSIDE_IMAGE, ZERO_AREA
from vistool.postprocess.geometry import (
    check_size,
    fix_boxes,
    fix_points,
    fix_quads,
    from_pixels,
    to_pixels,
)
from vistool.profiles import get_profile
from vistool.profiles.base import CoordSystem


def test_yx_thousandths_to_pixels() -> None:
    pixels = to_pixels(np.array([[171.0, 75, 245, 308]]), CoordSystem("yx", 1000.0), (2000, 1000))
    np.testing.assert_allclose(pixels, [[150, 171, 616, 245]])


def test_xy_resized_pixels_to_pixels() -> None:
    pixels = to_pixels(np.array([[28.0, 56, 280, 112]]), CoordSystem("xy", None), (1000, 500), (280, 140))
    np.testing.assert_allclose(pixels, [[100, 200, 1000, 400]])
    with pytest.raises(VistoolError, match="resized_size"):
        to_pixels(np.zeros((1, 4)), CoordSystem("xy", None), (10, 10))


def test_bin_centres_and_quads() -> None:
    florence = get_profile("florence2").coords
    pixels = to_pixels(np.array([[0.0, 0, 999, 0, 999, 999, 0, 999]]), florence, (1000, 2000))
    np.testing.assert_allclose(pixels, [[0.5, 1, 999.5, 1, 999.5, 1999, 0.5, 1999]])


@pytest.mark.parametrize("name", ["gemma4", "qwen3vl", "paligemma2", "florence2"])
def test_from_pixels_inverts_to_pixels_on_the_grid(name: str) -> None:
    coords = get_profile(name).coords
    upper = coords.scale - (1 if coords.quantise == "floor" else 0)
    values = np.array([[0, 1, upper, upper - 1], [10, 20, 30, 40]], dtype=np.float64)
    pixels = to_pixels(values, coords, (640, 480))
    np.testing.assert_array_equal(from_pixels(pixels, coords, (640, 480)), values)


def test_from_pixels_clamps_to_the_family_range() -> None:
    pixels = np.array([[-5.0, -5, 700, 500]])
    np.testing.assert_array_equal(from_pixels(pixels, get_profile("gemma4").coords, (640, 480)), [[0, 0, 1000, 1000]])
    np.testing.assert_array_equal(from_pixels(pixels, get_profile("paligemma2").coords, (640, 480)), [[0, 0, 1023, 1023]])


def test_fix_boxes() -> None:
    boxes = np.array(
        [
            [10, 10, 20, 20],  # fine
            [20, 30, 10, 5],  # reversed
            [-5, 90, 50, 120],  # crosses the border
            [110, 10, 150, 20],  # outside
            [5, 5, 5, 50],  # no width
            [np.nan, 1, 2, 3],
        ],
        dtype=np.float64,
    )
    fixed = fix_boxes(boxes, (100, 100))
    assert fixed.keep.tolist() == [True, True, True, False, False, False]
    np.testing.assert_allclose(fixed.values[:3], [[10, 10, 20, 20], [10, 5, 20, 30], [0, 90, 50, 100]])
    assert fixed.dropped == [(3, OUTSIDE_IMAGE), (4, ZERO_AREA), (5, NON_FINITE)]
    assert fixed.reordered == 1 and fixed.clipped == 1


def test_fix_boxes_fast_path_leaves_clean_boxes_alone() -> None:
    boxes = np.array([[0, 0, 100, 50], [1, 2, 3, 4]], dtype=np.float64)
    fixed = fix_boxes(boxes, (100, 50))
    np.testing.assert_array_equal(fixed.values, boxes)
    assert fixed.keep.all() and fixed.dropped == [] and fixed.reordered == fixed.clipped == 0
    assert len(fix_boxes(np.empty((0, 4)), (10, 10)).values) == 0


def test_fix_points() -> None:
    fixed = fix_points(np.array([[5.0, 5], [-1, 200], [np.inf, 3]]), (10, 100))
    assert fixed.keep.tolist() == [True, True, False]
    np.testing.assert_allclose(fixed.values[:2], [[5, 5], [0, 100]])
    assert fixed.clipped == 1 and fixed.dropped == [(2, NON_FINITE)]


def test_fix_quads_orders_clips_and_drops() -> None:
    quads = np.array(
        [
            [[10, 10], [50, 10], [50, 30], [10, 30]],  # already clockwise from top-left
            [[50, 30], [50, 10], [10, 10], [10, 30]],  # counter-clockwise from bottom-right
            [[10, 10], [20, 10], [30, 10], [40, 10]],  # a line: no area
            [[-10, 5], [200, 5], [200, 20], [-10, 20]],  # crosses the border
        ],
        dtype=np.float64,
    )
    fixed = fix_quads(quads, (100, 100))
    assert fixed.keep.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(fixed.values[0], quads[0])
    np.testing.assert_array_equal(fixed.values[1], quads[0])
    np.testing.assert_array_equal(fixed.values[3], [[0, 5], [100, 5], [100, 20], [0, 20]])
    assert fixed.reordered == 1 and fixed.clipped == 1 and fixed.dropped == [(2, ZERO_AREA)]


@pytest.mark.parametrize("bad", [(0, 10), (10, -1), (10,), "ab", None, (1.5, 2), (True, 3.2)])
def test_check_size_refuses_bad_sizes(bad) -> None:
    with pytest.raises(VistoolError):
        check_size(bad)


def test_check_size_accepts_integral_sizes() -> None:
    assert check_size((640, 480)) == (640, 480)
    assert check_size([np.int64(7), 7.0]) == (7, 7)
