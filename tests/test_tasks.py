"""Task adapters and the public API: replayed answers give exact pixels; the tiny model never crashes."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from vistool.api import Vistool
from vistool.errors import BudgetError, ImageLoadError, VistoolError
from vistool.postprocess import format_answer
from vistool.profiles import get_profile
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse, TokenLogprob
from vistool.tasks import TASKS, RunSettings, build_request
from vistool.tasks.confidence import item_confidences, value_mask

W, H = 640, 480
IMAGE = Image.new("RGB", (W, H), (90, 120, 150))


def replay(*answers, profile: str = "gemma4") -> Vistool:
    return Vistool(ReplayBackend(list(answers), profile_name=profile))


# ---------------------------------------------------------------- exact pixels, every task
def test_published_gemma4_answer_grounds_to_exact_pixels():
    answer = '```json\n[{"box_2d": [171, 75, 245, 308], "label": "view recipe element"}]\n```'
    result = replay(answer).ground(IMAGE, "view recipe")
    np.testing.assert_allclose(result.detections.xyxy, [[75 / 1000 * W, 171 / 1000 * H, 308 / 1000 * W, 245 / 1000 * H]])
    assert result.provenance["prompt"].startswith('What\'s the bounding box for "view recipe"')
    assert result.provenance["raw_answer"] == answer


def test_detect_matches_labels_to_asked_classes_and_flags_unknown():
    answer = json.dumps(
        [
            {"box_2d": [0, 0, 500, 500], "label": "Cars"},
            {"box_2d": [500, 500, 1000, 1000], "label": "  person "},
            {"box_2d": [100, 100, 200, 200], "label": "tree"},
        ]
    )
    result = replay(answer).detect(IMAGE, ["person", "car"])
    assert list(result.detections.data["class_name"]) == ["car", "person", "tree"]
    assert result.detections.class_id.tolist() == [1, 0, 2]
    assert result.diagnostics["unknown_labels"] == ["tree"]
    assert "person, car" in result.provenance["prompt"]


def test_detect_all_objects_uses_its_own_prompt():
    result = replay("[]").detect(IMAGE)
    assert result.provenance["prompt"].startswith("Detect all objects")
    assert len(result.detections) == 0


@pytest.mark.parametrize("profile", ["gemma4", "gemini", "qwen3vl", "paligemma2", "florence2"])
def test_detect_reads_each_family_native_answer(profile):
    boxes = np.array([[32.0, 48.0, 320.0, 240.0], [400.0, 100.0, 620.0, 470.0]])
    answer = format_answer(profile, "boxes", boxes, ["cat", "dog"], (W, H))
    result = replay(answer, profile=profile).detect(IMAGE, ["cat", "dog"])
    assert result.detections.class_id.tolist() == [0, 1]
    # One quantisation step of the family's grid (1000 or 1024 bins) at most.
    np.testing.assert_allclose(result.detections.xyxy, boxes, atol=W / 1000 + 1e-6)


def test_qwen25vl_answer_in_resized_pixels_maps_back():
    boxes = np.array([[64.0, 48.0, 320.0, 240.0]])
    resized = (644, 476)  # what Qwen2.5-VL's processor would make of 640x480 (multiples of 28)
    answer = format_answer("qwen25vl", "boxes", boxes, ["cat"], (W, H), resized)
    response = GenerationResponse(text=answer, raw_text=answer, image_sizes=[resized])
    result = replay(response, profile="qwen25vl").detect(IMAGE, ["cat"])
    np.testing.assert_allclose(result.detections.xyxy, boxes, atol=1.2)


def test_point_counts_and_maps_y_first():
    answer = '[{"point_2d": [500, 250], "label": "cat"}, {"point_2d": [100, 900], "label": "cat"}]'
    result = replay(answer).point(IMAGE, "cat")
    np.testing.assert_allclose(result.points.xy, [[0.25 * W, 0.5 * H], [0.9 * W, 0.1 * H]])
    assert result.extras["count"] == 2
    assert isinstance(result.points.to_keypoints(), sv.KeyPoints)


def test_ocr_plain_and_regions():
    assert replay("Hello\nWorld").ocr(IMAGE).text == "Hello\nWorld"
    answer = '[{"box_2d": [100, 100, 200, 500], "text": "Hello"}, {"box_2d": [300, 100, 400, 600], "text": "World"}]'
    result = replay(answer).ocr(IMAGE, regions=True)
    assert [region.text for region in result.regions.regions] == ["Hello", "World"]
    np.testing.assert_allclose(result.regions.regions[0].box, [0.1 * W, 0.1 * H, 0.5 * W, 0.2 * H])
    assert result.extras["text"].split() == ["Hello", "World"]
    assert "line of text" in result.provenance["prompt"]
    words = replay("[]").ocr(IMAGE, regions=True, granularity="word")
    assert "word of text" in words.provenance["prompt"]


def test_caption_lengths_and_vqa():
    vt = replay("A cat.", "A grey cat on a mat.", "Blue.")
    assert vt.caption(IMAGE, "short").provenance["prompt"] == "Describe the image in a few words."
    assert "detail" in vt.caption(IMAGE, "detailed").provenance["prompt"]
    answer = vt.ask(IMAGE, "What colour is the sky?")
    assert answer.text == "Blue." and answer.provenance["prompt"] == "What colour is the sky?"
    with pytest.raises(VistoolError, match="caption length"):
        vt.caption(IMAGE, "epic")


def test_gui_elements_keep_type_text_and_interactivity():
    answer = json.dumps(
        [
            {"box_2d": [0, 0, 100, 200], "label": "button", "text": "Submit", "interactive": True},
            {"box_2d": [200, 0, 300, 900], "label": "text", "text": "Welcome back"},
            {"box_2d": [400, 0, 500, 100], "label": "Icon", "text": "", "interactive": "false"},
        ]
    )
    result = replay(answer).gui_elements(IMAGE)
    elements = result.extras["elements"]
    assert [(e["type"], e["text"], e["interactive"]) for e in elements] == [
        ("button", "Submit", True),
        ("text", "Welcome back", False),
        ("icon", "", False),
    ]
    np.testing.assert_allclose(elements[0]["box"], [0, 0, 0.2 * W, 0.1 * H])


def test_gui_ground_click_is_model_point_or_box_centre():
    with_point = '[{"box_2d": [100, 100, 200, 300], "point_2d": [150, 120], "label": "Submit"}]'
    without = '[{"box_2d": [100, 100, 200, 300], "label": "Submit"}]'
    vt = replay(with_point, without, "no element here")
    np.testing.assert_allclose(vt.gui_ground(IMAGE, "submit").extras["click"], [0.12 * W, 0.15 * H])
    np.testing.assert_allclose(vt.gui_ground(IMAGE, "submit").extras["click"], [0.2 * W, 0.15 * H])
    assert vt.gui_ground(IMAGE, "submit").extras["click"] is None


def _write_clip(path, frames=32, fps=8.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 7 % 255, dtype=np.uint8))
    writer.release()


def test_video_question_and_temporal_localisation(tmp_path):
    clip = tmp_path / "clip.mp4"
    _write_clip(clip)  # 4 s at 8 fps
    vt = replay("A grey square.", '{"start": "00:01", "end": "00:02.5"}', '{"start": 3.5, "end": 99}')
    answer = vt.video(clip, "What is shown?", frames=8)
    assert answer.text == "A grey square." and len(answer.extras["timestamps"]) == 8
    assert answer.provenance["budget"] == 70  # Gemma 4's per-frame budget, what the frames really get
    located = vt.video(clip, locate="the square turns white", frames=8)
    assert (located.extras["start_s"], located.extras["end_s"]) == (1.0, 2.5)
    clipped = vt.video(clip, locate="it ends", frames=8)
    assert clipped.extras["end_s"] == pytest.approx(4.0)  # clipped to the video's duration


# ------------------------------------------------------------------------ confidence
def test_confidence_is_geometric_mean_over_value_tokens():
    answer = '[{"box_2d": [10, 20, 30, 40], "label": "cat"}]'
    # Tokenise by hand: structural tokens get logprob -0.01, value tokens known values.
    pieces = ['[{"', "box_2d", '":', " [", "10", ",", " 20", ",", " 30", ",", " 40", "],", ' "', "label", '":', ' "', "cat", '"}]']
    values = {"10": -0.1, " 20": -0.2, " 30": -0.3, " 40": -0.4, "cat": -1.0}
    logprobs, offset = [], 0
    for piece in pieces:
        logprobs.append(TokenLogprob(piece, values.get(piece, -0.01), offset))
        offset += len(piece)
    assert "".join(pieces) == answer
    response = GenerationResponse(text=answer, raw_text=answer, logprobs=logprobs)
    result = replay(response).detect(IMAGE, ["cat"])
    expected = math.exp((-0.1 - 0.2 - 0.3 - 0.4 - 1.0) / 5)
    np.testing.assert_allclose(result.detections.confidence, [expected])


def test_confidence_separates_items_and_ignores_keys():
    answer = '[{"box_2d":[1,2,3,4],"label":"a"},{"box_2d":[5,6,7,8],"label":"b"}]'
    mask = value_mask(answer)
    assert not any(mask[answer.index("box_2d") : answer.index("box_2d") + 6])
    assert mask[answer.index("[1") + 1]
    logprobs = [TokenLogprob(char, -1.0 if index < answer.index("},{") else -2.0, index) for index, char in enumerate(answer)]
    spans = [(1, answer.index("},{") + 1), (answer.index("},{") + 2, len(answer) - 1)]
    first, second = item_confidences(answer, spans, logprobs)
    assert first == pytest.approx(math.exp(-1.0)) and second == pytest.approx(math.exp(-2.0))
    assert item_confidences(answer, spans, None) == [None, None]


# ------------------------------------------------------------------ API behaviour
def test_list_input_reports_bad_image_and_keeps_the_rest(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    vt = replay('[{"box_2d": [0, 0, 10, 10], "label": "cat"}]', '[{"box_2d": [0, 0, 20, 20], "label": "cat"}]')
    results = vt.detect([IMAGE, broken, IMAGE], ["cat"])
    assert [r.ok for r in results] == [True, False, True]
    assert str(broken) in results[1].error
    assert vt.backend.calls == 2
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        vt.detect(broken, ["cat"])


def test_bad_options_fail_before_any_generation():
    vt = replay()
    with pytest.raises(VistoolError, match="empty class list"):
        vt.detect(IMAGE, [])
    with pytest.raises(VistoolError, match="empty referring expression"):
        vt.ground(IMAGE, "  ")
    with pytest.raises(BudgetError):
        vt.detect(IMAGE, ["cat"], budget=123)
    assert vt.backend.calls == 0


def test_task_defaults_budget_and_tokens():
    profile = get_profile("gemma4")
    defaults = {name: build_request(spec, profile, _options(name), RunSettings()).budget for name, spec in TASKS.items() if not name.startswith("video")}
    assert defaults["ocr"] == defaults["ocr_regions"] == defaults["gui_elements"] == defaults["gui_ground"] == 1120
    assert defaults["caption"] == 140 and defaults["detect"] == 280
    assert defaults["classify"] == 140 and defaults["gui_mark"] == 1120
    assert build_request(TASKS["detect"], profile, {"classes": ["a"]}, RunSettings(budget=560)).budget == 560


def _options(name: str) -> dict:
    return {
        "detect": {"classes": ["cat"]},
        "ground": {"expression": "cat"},
        "point": {"description": "cat"},
        "vqa": {"question": "why?"},
        "gui_ground": {"instruction": "click ok"},
        "gui_mark": {"instruction": "click ok", "elements": [{"type": "button", "text": "OK", "box": [0, 0, 10, 10]}]},
        "classify": {"labels": ["cat", "dog"]},
        "region": {"target": "the ok button"},
    }.get(name, {})


def test_result_round_trips_through_json():
    answer = '[{"box_2d": [100, 100, 200, 300], "point_2d": [150, 120], "label": "Submit"}]'
    result = replay(answer).gui_ground(IMAGE, "submit")
    again = type(result).from_json(result.to_json())
    assert again.to_dict() == result.to_dict()
    assert isinstance(result.annotate(IMAGE), Image.Image)


# -------------------------------------------------------- tiny model, every task, no crash
def test_every_task_runs_on_the_tiny_model(tiny_backend, tmp_path):
    vt = Vistool(tiny_backend, budget=70, max_new_tokens=12)
    images = [IMAGE, Image.new("RGB", (300, 900), (10, 10, 10))]
    calls = {
        "detect": lambda: vt.detect(images, ["cat", "dog"]),
        "detect_all": lambda: vt.detect(images),
        "ground": lambda: vt.ground(images, "the cat"),
        "point": lambda: vt.point(images, "cat"),
        "ocr": lambda: vt.ocr(images),
        "ocr_regions": lambda: vt.ocr(images, regions=True),
        "caption": lambda: vt.caption(images, "short"),
        "ask": lambda: vt.ask(images, "What is this?"),
        "gui_elements": lambda: vt.gui_elements(images),
        "gui_ground": lambda: vt.gui_ground(images, "click ok"),
    }
    for name, call in calls.items():
        for result in call():
            assert result.ok, (name, result.error)
            assert result.provenance["budget"] == 70 and result.provenance["image_tokens"] > 0
            assert isinstance(result.detections, sv.Detections)
            assert (result.detections.xyxy[:, :2] <= result.detections.xyxy[:, 2:]).all()
            json.loads(result.to_json())
    clip = tmp_path / "clip.mp4"
    _write_clip(clip)
    video = vt.video(clip, "What happens?", frames=4)
    assert video.ok and video.provenance["image_tokens"] > 0
    located = vt.video(clip, locate="the flash", frames=4)
    assert located.ok and "start_s" in located.extras


def test_family_prompts_and_refusals():
    qwen = TASKS["detect"].prompt(get_profile("qwen3vl"), {"classes": ["cat", "dog"]})
    assert '"bbox_2d": [x1, y1, x2, y2]' in qwen and "cat, dog" in qwen
    assert TASKS["detect"].prompt(get_profile("paligemma2"), {"classes": ["cat", "dog"]}) == "detect cat ; dog"
    assert TASKS["ocr_regions"].prompt(get_profile("florence2"), {}) == "<OCR_WITH_REGION>"
    with pytest.raises(VistoolError, match="paligemma2.*point"):
        TASKS["point"].prompt(get_profile("paligemma2"), {"description": "cat"})
    with pytest.raises(VistoolError, match="florence2.*point"):
        TASKS["point"].prompt(get_profile("florence2"), {"description": "cat"})
