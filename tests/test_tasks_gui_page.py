"""GUI grounding on a real rendered page: the oracle answer's click lands inside the real button."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.runtime.replay import ReplayBackend

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = """<!doctype html><html><body style="font-family: sans-serif; margin: 40px; width: 900px">
<h1>Sign up</h1>
<form><p><label>Email <input id="email" style="width: 300px"></label></p>
<p><label><input type="checkbox" id="terms"> I accept the terms</label></p>
<button id="cancel" type="button" style="padding: 8px 20px">Cancel</button>
<button id="submit" type="button" style="padding: 8px 20px; margin-left: 200px">Submit</button></form>
</body></html>"""


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory):
    """Render PAGE in headless Chromium; return (png path, {element id: (x1, y1, x2, y2)})."""
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    path = tmp_path_factory.mktemp("gui") / "page.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 400})
        page.set_content(PAGE)
        boxes = {}
        for element_id in ("email", "terms", "cancel", "submit"):
            rect = page.locator(f"#{element_id}").bounding_box()
            boxes[element_id] = (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
        page.screenshot(path=str(path))
        browser.close()
    return path, boxes


def oracle_answer(box: tuple[float, float, float, float], size: tuple[int, int]) -> str:
    """A perfect Gemma 4 answer for `box` (pixels) on an image of `size` (W, H)."""
    width, height = size
    x1, y1, x2, y2 = box
    box_2d = [round(y1 / height * 1000), round(x1 / width * 1000), round(y2 / height * 1000), round(x2 / width * 1000)]
    return f'```json\n[{{"box_2d": {box_2d}, "label": "Submit button"}}]\n```'


def inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_click_the_submit_button_lands_inside_it(screenshot):
    path, boxes = screenshot
    size = Image.open(path).size
    vt = Vistool(ReplayBackend([oracle_answer(boxes["submit"], size)]))
    result = vt.gui_ground(path, "click the Submit button")
    assert inside(result.extras["click"], boxes["submit"])
    assert not inside(result.extras["click"], boxes["cancel"])


def test_gui_elements_oracle_recovers_every_element(screenshot):
    path, boxes = screenshot
    width, height = Image.open(path).size
    kinds = {"email": "input", "terms": "checkbox", "cancel": "button", "submit": "button"}
    items = []
    for element_id, (x1, y1, x2, y2) in boxes.items():
        box_2d = [round(y1 / height * 1000), round(x1 / width * 1000), round(y2 / height * 1000), round(x2 / width * 1000)]
        items.append(f'{{"box_2d": {box_2d}, "label": "{kinds[element_id]}", "text": "{element_id}", "interactive": true}}')
    result = Vistool(ReplayBackend(["[" + ", ".join(items) + "]"])).gui_elements(path)
    found = {element["text"]: element for element in result.extras["elements"]}
    for element_id, box in boxes.items():
        got = found[element_id]["box"]
        assert got[0] == pytest.approx(box[0], abs=width / 1000) and got[3] == pytest.approx(box[3], abs=height / 1000)
        assert found[element_id]["type"] == kinds[element_id]
