"""Each family is asked in its own coordinate wording, and an answer that obeys the prompt
maps to exact pixels (replayed answers, no model)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.profiles import get_profile
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse
from vistool.tasks import TASKS, supported_tasks

W, H = 1000, 600
IMAGE = Image.new("RGB", (W, H), (90, 120, 150))
RESIZED = (588, 336)  # Qwen2.5-VL at budget 280 (smart_resize, multiples of 28)


def replay(answer: str, profile: str) -> tuple[Vistool, list]:
    """A Vistool whose backend answers `answer` (with Qwen2.5-VL's resized size) and records requests."""
    seen = []

    def respond(request):
        seen.append(request)
        return GenerationResponse(text=answer, image_sizes=[RESIZED] if profile == "qwen25vl" else [])

    return Vistool(ReplayBackend(respond, profile_name=profile), logprobs=False), seen


@pytest.mark.parametrize("family", ["qwen3vl", "qwen25vl"])
def test_qwen_structured_tasks_are_asked_x_first_in_bbox_2d(family):
    profile = get_profile(family)
    options = {"detect": {"classes": ["cat"]}, "ground": {"expression": "it"}, "point": {"description": "cat"},
               "ocr_regions": {"granularity": "word"}, "gui_elements": {}, "gui_ground": {"instruction": "save"},
               "region": {"target": "the cat"}}
    scale = "coordinates relative to 0-1000" if family == "qwen3vl" else "absolute pixel coordinates"
    for task, task_options in options.items():
        prompt = TASKS[task].prompt(profile, task_options)
        assert "box_2d" not in prompt.replace("bbox_2d", "") and "y_min" not in prompt, (task, prompt)
        assert ("[x, y]" in prompt) if task == "point" else ("[x1, y1, x2, y2]" in prompt), (task, prompt)
        assert scale in prompt


def test_qwen25vl_gui_ground_box_and_click_in_resized_pixels():
    # The element (147, 84)-(294, 168) and click (196, 112) of the 588 x 336 image the model saw.
    answer = '[{"bbox_2d": [147, 84, 294, 168], "point_2d": [196, 112], "label": "Save"}]'
    vt, seen = replay(answer, "qwen25vl")
    result = vt.gui_ground(IMAGE, "save the file", budget=280)
    assert '"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]' in seen[0].prompt
    np.testing.assert_allclose(result.extras["box"], [250, 150, 500, 300])
    np.testing.assert_allclose(result.extras["click"], [196 * W / 588, 112 * H / 336])
    assert result.provenance["image_sizes"] == [list(RESIZED)]


def test_qwen3vl_gui_elements_in_relative_coordinates():
    answer = '[{"bbox_2d": [100, 500, 300, 750], "label": "button", "text": "OK", "interactive": true}]'
    vt, seen = replay(answer, "qwen3vl")
    result = vt.gui_elements(IMAGE)
    assert "element type, one of: button, link" in seen[0].prompt
    assert result.extras["elements"] == [{"id": 1, "type": "button", "text": "OK", "interactive": True, "box": [100.0, 300.0, 300.0, 450.0]}]


def test_paligemma_and_florence_prompts_are_their_task_prefixes():
    pali, florence = get_profile("paligemma2"), get_profile("florence2")
    assert TASKS["detect"].prompt(pali, {"classes": ["cat", "red dog"]}) == "detect cat ; red dog"
    assert TASKS["ground"].prompt(pali, {"expression": "the red dog"}) == "detect the red dog"
    assert TASKS["caption"].prompt(pali, {"length": "detailed"}) == "describe en"
    assert TASKS["vqa"].prompt(pali, {"question": "what colour?"}) == "answer en what colour?"
    assert TASKS["detect"].prompt(florence, {"classes": None}) == "<OD>"
    assert TASKS["detect"].prompt(florence, {"classes": ["cat"]}) == "<CAPTION_TO_PHRASE_GROUNDING>cat"
    assert TASKS["ocr_regions"].prompt(florence, {"granularity": "line"}) == "<OCR_WITH_REGION>"
    assert TASKS["caption"].prompt(florence, {"length": "short"}) == "<CAPTION>"


def test_paligemma_and_florence_native_answers_map_to_pixels():
    # PaliGemma: 1024 bins, y first; Florence-2: 1000 bins, x first, decoded at the bin centre.
    vt, _ = replay("<loc0256><loc0256><loc0768><loc0512> cat", "paligemma2")
    np.testing.assert_allclose(vt.detect(IMAGE, ["cat"]).detections.xyxy, [[250, 150, 500, 450]])
    vt, _ = replay("cat<loc_250><loc_250><loc_500><loc_750>", "florence2")
    np.testing.assert_allclose(vt.detect(IMAGE, ["cat"]).detections.xyxy, [[250.5, 150.3, 500.5, 450.3]])


def test_every_family_task_has_a_prompt_in_its_own_format():
    for name in ("gemma4", "gemini", "qwen3vl", "qwen25vl", "paligemma2", "florence2"):
        profile = get_profile(name)
        for task in supported_tasks(profile):
            spec = TASKS[task]
            variants = [variant for variant in spec.prompts if spec.refusal(profile, variant) is None]
            assert variants, (name, task)
            if profile.loc_format is not None:  # location-token families are never asked for Gemma-style JSON
                for variant in variants:
                    assert "box_2d" not in (profile.prompts.get(f"{task}.{variant}") or profile.prompts.get(task) or "")
