"""Set-of-marks: numbered marks on the screenshot, mark id -> the right element's box and click."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.postprocess.marks import draw_marks, element_for, mark_list, numbered
from vistool.runtime.replay import ReplayBackend
from vistool.tasks.gui_marks import read_mark

W, H = 800, 600
SCREEN = Image.new("RGB", (W, H), (255, 255, 255))
# Three elements in Gemma 4's answer format (box_2d = [y1, x1, y2, x2] on 0..1000).
ELEMENTS_ANSWER = json.dumps([
    {"box_2d": [100, 100, 200, 300], "label": "button", "text": "Save", "interactive": True},
    {"box_2d": [500, 600, 600, 900], "label": "link", "text": "Help", "interactive": True},
    {"box_2d": [800, 50, 900, 950], "label": "text", "text": "Footer", "interactive": False},
])
PIXEL_BOXES = {1: [80.0, 60.0, 240.0, 120.0], 2: [480.0, 300.0, 720.0, 360.0], 3: [40.0, 480.0, 760.0, 540.0]}


def test_gui_elements_are_numbered_from_one_in_answer_order():
    result = Vistool(ReplayBackend([ELEMENTS_ANSWER])).gui_elements(SCREEN)
    elements = result.extras["elements"]
    assert [element["id"] for element in elements] == [1, 2, 3]
    for element in elements:
        assert element["box"] == pytest.approx(PIXEL_BOXES[element["id"]])


def test_marks_map_ids_to_boxes_and_centres():
    elements = [{"type": "button", "text": "Save", "box": PIXEL_BOXES[1]}, {"type": "link", "text": "Help", "box": PIXEL_BOXES[2]}]
    marked = numbered(elements)
    assert [mark["id"] for mark in marked] == [1, 2]
    assert element_for(elements, 2)["center"] == [600.0, 330.0]
    assert element_for(elements, 5) is None
    assert mark_list(elements) == '1: button "Save"\n2: link "Help"'


def test_marks_are_drawn_on_each_element_box():
    elements = [{"type": "button", "box": PIXEL_BOXES[1]}, {"type": "link", "box": PIXEL_BOXES[2]}]
    drawn = np.asarray(draw_marks(SCREEN, elements))
    original = np.asarray(SCREEN)
    assert drawn.shape == original.shape
    changed = np.any(drawn != original, axis=2)
    for box in (PIXEL_BOXES[1], PIXEL_BOXES[2]):
        x1, y1, x2, y2 = (int(v) for v in box)
        assert changed[(y1 + y2) // 2, x1] and changed[(y1 + y2) // 2, x2 - 1]  # the box outline
        assert changed[y1 - 10, x1 + 5]  # the id tag on its top-left corner
    assert not changed[int(PIXEL_BOXES[3][1]) + 10, W // 2]  # nothing where no element was marked
    assert not changed[5, W - 5]


@pytest.mark.parametrize("answer, mark", [('{"mark": 2}', 2), ("```json\n{\"mark\": \"2\"}\n```", 2), ("Mark 3.", 3), ("none", None)])
def test_read_mark(answer, mark):
    assert read_mark(answer) == mark


def test_gui_ground_with_marks_picks_on_the_marked_image_and_maps_back():
    seen = []

    def answer(request):
        seen.append(request)
        return ELEMENTS_ANSWER if len(seen) == 1 else '{"mark": 2}'

    result = Vistool(ReplayBackend(answer)).gui_ground(SCREEN, "open the help", marks=True)
    assert result.ok and result.task == "gui_mark"
    assert result.extras["mark"] == 2
    assert result.extras["box"] == pytest.approx(PIXEL_BOXES[2])
    assert result.extras["click"] == pytest.approx([600.0, 330.0])
    assert result.extras["label"] == "link" and result.extras["element"]["text"] == "Help"
    assert [element["id"] for element in result.extras["elements"]] == [1, 2, 3]
    listing, choosing = seen
    assert choosing.images[0].size == SCREEN.size
    assert np.any(np.asarray(choosing.images[0]) != np.asarray(listing.images[0]))  # the marks are drawn on it
    assert '2: link "Help"' in choosing.prompt and "open the help" in choosing.prompt
    assert result.points is not None and result.points.xy.tolist() == [[600.0, 330.0]]


def test_given_elements_skip_the_listing_and_unknown_marks_are_reported():
    backend = ReplayBackend(['{"mark": 9}'])
    elements = [{"type": "button", "text": "OK", "box": [10, 10, 50, 30]}]
    result = Vistool(backend).gui_ground(SCREEN, "press ok", marks=True, elements=elements)
    assert backend.calls == 1
    assert result.extras["click"] is None and result.extras["problem"] == "mark 9 is not on the screenshot"


def test_no_elements_is_a_clear_failure():
    result = Vistool(ReplayBackend(["[]"])).gui_ground(SCREEN, "press ok", marks=True)
    assert result.error == "no user-interface elements found to mark"
