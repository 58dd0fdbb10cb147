"""Structured generation: schemas per task and family, cache keys, and the tiny model held to them.

The end-to-end test runs every structured task over the coco8 photos and generated
screenshots on the tiny random model, with the grammar and without, and prints both
side by side; with the grammar every answer must be a JSON value that validates against
its schema, with every box inside the image.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from PIL import Image

from eval.bench_structured import make_screenshots
from tests.conftest import shared_data
from vistool.api import Vistool
from vistool.batch.cache import cache_key, key_fields
from vistool.batch.runner import answer_problem
from vistool.profiles import get_profile
from vistool.runtime.replay import ReplayBackend
from vistool.structured import OTHER_LABEL, AnswerShape, answer_schema
from vistool.tasks import TASKS, RunSettings, build_request

CLASSES = ["person", "car", "dog"]


# --------------------------------------------------------------------------- schemas
def test_detect_schema_in_each_json_familys_keys_and_range() -> None:
    gemma = answer_schema(TASKS["detect"].answer, get_profile("gemma4"), CLASSES).schema
    item = gemma["items"]
    assert gemma["type"] == "array" and list(item["properties"]) == ["box_2d", "label"]  # Gemma 4's published order
    assert item["required"] == ["box_2d", "label"] and item["additionalProperties"] is False
    box = item["properties"]["box_2d"]
    assert box["minItems"] == box["maxItems"] == 4 and box["items"] == {"type": "integer", "minimum": 0, "maximum": 1000}
    assert item["properties"]["label"]["enum"] == CLASSES
    qwen = answer_schema(TASKS["detect"].answer, get_profile("qwen3vl"), CLASSES).schema["items"]["properties"]
    assert list(qwen) == ["bbox_2d", "label"]
    pixels = answer_schema(TASKS["detect"].answer, get_profile("qwen25vl"), CLASSES).schema["items"]["properties"]
    assert pixels["bbox_2d"]["items"] == {"type": "integer", "minimum": 0}  # resized pixels: no fixed top


def test_other_label_only_when_allowed_and_free_labels_without_classes() -> None:
    shape, gemma = TASKS["detect"].answer, get_profile("gemma4")
    assert OTHER_LABEL not in answer_schema(shape, gemma, CLASSES).schema["items"]["properties"]["label"]["enum"]
    assert answer_schema(shape, gemma, CLASSES, allow_other=True).schema["items"]["properties"]["label"]["enum"] == [
        *CLASSES, OTHER_LABEL,
    ]
    free = answer_schema(shape, gemma, None).schema["items"]["properties"]["label"]
    assert free["type"] == "string" and "enum" not in free and free["maxLength"] > 0
    request = build_request(TASKS["detect"], gemma, {"classes": CLASSES, "allow_other": True}, RunSettings())
    assert "or other" in request.prompt  # the prompt offers what the schema allows


@pytest.mark.parametrize("task", ["point", "ocr_regions", "gui_elements", "gui_ground"])
def test_every_structured_task_declares_its_item(task: str) -> None:
    schema = answer_schema(TASKS[task].answer, get_profile("qwen3vl")).schema
    keys = list(schema["items"]["properties"])
    expected = {
        "point": ["point_2d", "label"],
        "ocr_regions": ["bbox_2d", "text_content"],  # Qwen3-VL's own text key, as its prompt asks
        "gui_elements": ["bbox_2d", "label", "text", "interactive"],
        "gui_ground": ["bbox_2d", "point_2d", "label"],
    }[task]
    assert keys == expected
    if task == "gui_ground":
        assert schema["minItems"] == schema["maxItems"] == 1


@pytest.mark.parametrize("family", ["paligemma2", "florence2"])
def test_location_token_families_are_generated_free_and_say_why(family: str) -> None:
    profile = get_profile(family)
    request = build_request(TASKS["detect"], profile, {"classes": ["cat"]}, RunSettings())
    assert request.json_schema is None and "location tokens" in request.free_reason
    answer = "<loc0100><loc0200><loc0300><loc0400> cat" if family == "paligemma2" else "cat<loc_1><loc_2><loc_3><loc_4>"
    vt = Vistool(ReplayBackend([answer], profile_name=family))
    result = vt.detect(Image.new("RGB", (64, 64)), ["cat"])
    assert result.provenance["structured"] == "free" and "location tokens" in result.provenance["structured_note"]


def test_cache_key_tells_structured_from_free_and_free_keys_are_unchanged() -> None:
    profile = get_profile("gemma4")
    free = build_request(TASKS["detect"], profile, {"classes": CLASSES}, RunSettings(structured=False))
    structured = build_request(TASKS["detect"], profile, {"classes": CLASSES}, RunSettings())
    assert "json_schema" not in free.settings() and "structured" not in free.settings()
    # The key of a free request is as before (the JSON-close stop is recorded in settings, never keyed).
    assert set(key_fields("sha", "detect", free, "m")["settings"]) == {"budget", "max_new_tokens", "decoding", "thinking", "return_logprobs"}
    assert set(free.settings()) == {"budget", "max_new_tokens", "decoding", "thinking", "return_logprobs", "stop_when_json_closes"}
    assert structured.settings()["json_schema"] == structured.settings()["json_schema"]  # stable
    keys = {cache_key(key_fields("sha", "detect", request, "m")) for request in (free, structured)}
    assert len(keys) == 2
    other = build_request(TASKS["detect"], profile, {"classes": ["cat"]}, RunSettings())
    assert other.settings()["json_schema"] != structured.settings()["json_schema"]


# --------------------------------------------------------------------------- the tiny model
def _valid(result, task: str, profile) -> bool:
    """True when the answer is one JSON value that validates against the task's schema."""
    schema = answer_schema(TASKS[task].answer, profile, CLASSES if task == "detect" else None).schema
    try:
        jsonschema.validate(json.loads(result.text, strict=False), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _inside(result) -> bool:
    """True when every kept box (or point) lies inside the image."""
    width, height = result.image_size
    xyxy = result.detections.xyxy
    return bool(((xyxy >= 0).all() and (xyxy[:, [0, 2]] <= width).all() and (xyxy[:, [1, 3]] <= height).all()))


@pytest.mark.slow
def test_tiny_model_answers_always_validate_with_the_grammar(tiny_backend, capsys) -> None:
    photos = [str(path) for path in sorted(shared_data("coco8", "images").glob("*/*.jpg"))]
    screens = make_screenshots(4)
    calls = {
        "detect": (photos, lambda vt, images, **kw: vt.detect(images, CLASSES, **kw)),
        "ground": (photos, lambda vt, images, **kw: vt.ground(images, "the dog on the left", **kw)),
        "point": (photos, lambda vt, images, **kw: vt.point(images, "person", **kw)),
        "ocr_regions": (photos, lambda vt, images, **kw: vt.ocr(images, regions=True, **kw)),
        "gui_elements": (screens, lambda vt, images, **kw: vt.gui_elements(images, **kw)),
        "gui_ground": (screens, lambda vt, images, **kw: vt.gui_ground(images, "click Submit", **kw)),
    }
    rows = []
    for task, (images, call) in calls.items():
        # The free run is noise that never parses; capped so that it does not run to 2048 tokens per answer.
        for structured, limit in ((True, None), (False, 48)):
            vt = Vistool(tiny_backend, structured=structured, budget=70)
            results = call(vt, images, max_new_tokens=limit)
            valid = [_valid(result, task, vt.profile) for result in results]
            usable = [answer_problem(result) is None for result in results]
            rows.append((task, "structured" if structured else "free", len(results), sum(valid), sum(usable)))
            if structured:
                assert all(valid), [result.text[:120] for result, ok in zip(results, valid) if not ok]
                assert all(usable), [answer_problem(result) for result in results if answer_problem(result)]
                assert all(_inside(result) for result in results)
                assert all(result.provenance["structured"].startswith("xgrammar") for result in results)
            else:
                assert all(result.provenance["structured"] == "free" for result in results)
    with capsys.disabled():
        print("\ntask          | mode       | answers | schema-valid | usable")
        for task, mode, count, valid, usable in rows:
            print(f"{task:<13} | {mode:<10} | {count:>7} | {valid:>12} | {usable:>6}")


def test_grammar_rows_and_free_rows_share_a_batch(tiny_backend) -> None:
    images = [Image.new("RGB", (96 + 16 * i, 64), (30 * i, 90, 160)) for i in range(4)]
    vt = Vistool(tiny_backend, budget=70)
    profile = vt.profile
    requests = [
        build_request(
            TASKS["detect"], profile, {"classes": CLASSES}, RunSettings(structured=index % 2 == 0, max_new_tokens=160), image=image
        )
        for index, image in enumerate(images)
    ]
    responses = tiny_backend.generate(requests)
    for request, response in zip(requests, responses):
        assert response.ok
        if request.json_schema is not None:
            assert response.settings["structured"].startswith("xgrammar")
            jsonschema.validate(json.loads(response.text, strict=False), request.json_schema)
            # The JSON-close stop (on for detect) ends a complete answer at its bracket, before any stop token.
            ended_on_stop_token = response.finish_reason == "stop" and not request.stop_when_json_closes
            assert len(response.logprobs) == response.generated_tokens - ended_on_stop_token
        else:
            assert "structured" not in response.settings
    alone = tiny_backend.generate([requests[0]])[0]
    assert alone.text == responses[0].text  # a grammar row gives the same answer in a mixed batch as alone


def test_xgrammar_missing_falls_back_to_free_and_says_so(tiny_backend, monkeypatch) -> None:
    from vistool.runtime.answer_controls import AnswerControlBuilder
    from vistool.structured import grammar

    monkeypatch.setattr(grammar, "engine_version", lambda: None)
    builder = AnswerControlBuilder(tiny_backend.tokenizer, 512, {1}, set(), None, None, "cpu")
    request = build_request(TASKS["detect"], get_profile("gemma4"), {"classes": CLASSES}, RunSettings())
    controls = builder.build([request], prompt_length=4)
    assert controls.constraint is None
    note = controls.row(0).settings
    assert note["structured"] == "free" and "xgrammar is not installed" in note["structured_note"]



def test_cli_structured_by_default_free_on_request(tiny_model_dir, tmp_path, capsys) -> None:
    from vistool.cli import main

    photo = tmp_path / "photo.png"
    Image.new("RGB", (160, 120), (200, 40, 40)).save(photo)
    common = [str(photo), "--classes", "cat,dog", "--model", str(tiny_model_dir), "--budget", "70", "--max-new-tokens", "40"]
    assert main(["detect", *common]) == 0
    structured = json.loads(capsys.readouterr().out)["provenance"]
    assert structured["structured"].startswith("xgrammar") and "json_schema" in structured
    assert main(["detect", *common, "--free"]) == 0
    free = json.loads(capsys.readouterr().out)["provenance"]
    assert free["structured"] == "free" and "json_schema" not in free
