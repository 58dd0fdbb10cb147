"""Every model family, on its own tiny checkpoint, through the local backend.

For each family and each task it supports: the request is built in the family's own
wording, the image tokens and resized sizes follow the family's rule
(`vistool.profiles.resize`), the noise answer goes through parse without an exception,
and batched generation gives the same greedy tokens as one request at a time. Each tiny
checkpoint is built once per session (tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from vistool.api import Vistool
from vistool.io.video import VideoFrames
from vistool.postprocess import parse
from vistool.profiles import get_profile
from vistool.runtime.backend import answer_requests
from vistool.runtime.types import GenerationRequest
from vistool.tasks import TASKS, RunSettings, build_request, interpret, supported_tasks

FAMILIES = ("gemma4", "qwen25vl", "qwen3vl", "paligemma2", "florence2")
OPTIONS = {
    "detect": {"classes": ["cat", "dog"]},
    "ground": {"expression": "the red cat"},
    "point": {"description": "cat"},
    "ocr": {},
    "ocr_regions": {"granularity": "line"},
    "caption": {"length": "short"},
    "vqa": {"question": "What is this?"},
    "gui_elements": {},
    "gui_ground": {"instruction": "click OK"},
    "video": {"question": "What happens?"},
    "video_locate": {"event": "the flash", "duration": 2.0},
    "classify": {"labels": ["cat", "dog", "red car"]},
    "region": {"target": "the cat"},
    "gui_mark": {"instruction": "click OK", "elements": [{"box": [10, 10, 60, 40], "type": "button"}, {"box": [80, 5, 120, 30]}]},
}
CASES = [(family, task) for family in FAMILIES for task in supported_tasks(get_profile(family))]


def noise_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in ((320, 240), (150, 450))]


def clip() -> VideoFrames:
    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)) for _ in range(4)]
    return VideoFrames(frames=frames, timestamps=[0.0, 0.5, 1.0, 1.5], fps=8.0, duration=2.0)


def test_the_expected_families_and_tasks_are_covered():
    assert set(supported_tasks(get_profile("paligemma2"))) == {"detect", "ground", "ocr", "caption", "vqa"}
    assert set(supported_tasks(get_profile("florence2"))) == {"detect", "ground", "ocr", "ocr_regions", "caption"}
    for family in ("gemma4", "qwen25vl", "qwen3vl"):
        assert set(supported_tasks(get_profile(family))) == set(TASKS)


@pytest.mark.parametrize(("family", "task"), CASES)
def test_family_runs_task_on_its_tiny_checkpoint(family, task, tiny_family_backend):
    backend = tiny_family_backend(family)
    profile = get_profile(family)
    assert backend.profile is profile  # detected from the checkpoint's config.json
    spec, options = TASKS[task], OPTIONS[task]
    # The smallest budget keeps this quick; the rule is checked the same at every budget.
    settings = RunSettings(max_new_tokens=8, budget=min(profile.budgets) if profile.budgets else None)
    if spec.media == "video":
        video = clip()
        requests = [build_request(spec, profile, options, settings, video=video)]
        sizes = [video.size]
    else:
        images = noise_images()
        requests = [build_request(spec, profile, options, settings, image=image) for image in images]
        sizes = [image.size for image in images]
    responses = answer_requests(backend, requests)  # generated, or scored (classify)
    for request, response, size in zip(requests, responses, sizes):
        assert response.ok, response.error
        assert response.image_tokens > 0 and response.prompt_tokens > response.image_tokens
        if spec.media == "image":
            rule = profile.resize
            assert response.image_tokens == rule.image_tokens(*size, request.budget)
            assert response.image_sizes == [rule.resized_size(*size, request.budget)]
        result = interpret(spec, profile, options, request, response, size, "noise")  # noise never raises
        assert result.ok
        assert isinstance(result.detections, sv.Detections)
        assert (result.detections.xyxy[:, :2] <= result.detections.xyxy[:, 2:]).all()
        assert (result.detections.xyxy >= 0).all()
        assert (result.detections.xyxy[:, [0, 2]] <= size[0]).all() and (result.detections.xyxy[:, [1, 3]] <= size[1]).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_equals_one_at_a_time_with_logprobs(family, tiny_family_backend):
    backend = tiny_family_backend(family)
    profile = get_profile(family)
    prompt = TASKS["detect"].prompt(profile, OPTIONS["detect"])
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in ((320, 240), (150, 450), (500, 90))]
    requests = [GenerationRequest(prompt, images=[image], max_new_tokens=12, return_logprobs=True) for image in images]
    batched = backend.generate(requests)
    alone = [backend.generate([request])[0] for request in requests]
    for together, single in zip(batched, alone):
        assert together.ok and single.ok, (together.error, single.error)
        assert together.generated_tokens >= 1 and len(together.logprobs) >= 1
        assert [lp.token_id for lp in together.logprobs] == [lp.token_id for lp in single.logprobs]
        assert np.allclose([lp.logprob for lp in together.logprobs], [lp.logprob for lp in single.logprobs], atol=1e-4)
        assert all(lp.logprob <= 0 for lp in together.logprobs)
        assert together.text == single.text and together.image_sizes == single.image_sizes


def test_image_tokens_follow_each_family_rule_at_every_budget(tiny_family_backend):
    image = Image.new("RGB", (1920, 1080), (90, 120, 30))
    for family in ("qwen25vl", "qwen3vl"):
        backend, rule = tiny_family_backend(family), get_profile(family).resize
        requests = [GenerationRequest("Read.", images=[image], budget=budget, max_new_tokens=1) for budget in (70, 280, 1280)]
        for request, response in zip(requests, backend.generate(requests)):
            width, height = response.image_sizes[0]
            assert width % rule.factor == 0 and height % rule.factor == 0
            assert response.image_tokens == (width // rule.factor) * (height // rule.factor) <= request.budget
    for family, side, tokens in (("paligemma2", 224, 256), ("florence2", 768, 577)):
        response = tiny_family_backend(family).generate([GenerationRequest("ocr" if family == "paligemma2" else "<OCR>",
                                                                           images=[image], max_new_tokens=1)])[0]
        assert response.image_sizes == [(side, side)] and response.image_tokens == tokens


def test_noise_answers_give_no_items_in_every_family():
    rng = np.random.default_rng(3)
    alphabet = list("abc xyz{}[]<>:;,.0123456789\"'_-") + ["<loc", "<loc_", "box_2d", "bbox_2d", "\n"]
    for _ in range(30):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 60))))
        for family in FAMILIES:
            profile = get_profile(family)
            for kind in profile.kinds:
                result = parse(text, (640, 480), family, kind, resized_size=(644, 476))
                assert len(result) == 0 or np.isfinite(result.detections.xyxy).all()


def test_plain_format_families_refuse_a_system_turn_and_thinking(tiny_family_backend):
    from vistool.errors import RequestError

    backend = tiny_family_backend("paligemma2")
    image = noise_images()[0]
    with pytest.raises(RequestError, match="plain task prompt .* system prompt"):
        backend.generate([GenerationRequest("caption en", images=[image], system="be brief")])
    with pytest.raises(RequestError, match="cannot take thinking"):
        backend.generate([GenerationRequest("caption en", images=[image], thinking=True)])
    with pytest.raises(RequestError, match="takes no video input"):
        backend.generate([GenerationRequest("caption en", video=clip())])


def test_prompt_formats_reach_the_processor(tiny_family_backend):
    image = noise_images()[0]
    request = GenerationRequest("detect cat ; dog", images=[image])
    pali = tiny_family_backend("paligemma2")
    assert pali._render(request) == "<image>detect cat ; dog"  # the processor adds <bos> and "\n"
    ids = pali._prepare([request]).inputs["input_ids"][0].tolist()
    assert pali.tokenizer.decode(ids[256:]) == "<bos>detect cat ; dog\n"
    florence = tiny_family_backend("florence2")
    assert florence.tokenizer.padding_side == "right"  # an encoder-decoder pads its encoder input on the right
    text = florence.tokenizer.decode(florence._prepare([GenerationRequest("<OD>", images=[image])]).inputs["input_ids"][0, 577:])
    assert text == "<s>Locate the objects with category name in the image.</s>"  # Florence-2's own task prompt
    qwen = tiny_family_backend("qwen25vl")
    assert qwen._render(request) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>detect cat ; dog<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tiny_family_backend("qwen3vl")._render(request).startswith("<|im_start|>user\n<|vision_start|>")


def test_vistool_api_runs_each_family(tiny_family_backend):
    for family in FAMILIES:
        vt = Vistool(tiny_family_backend(family), max_new_tokens=6)
        result = vt.detect(noise_images(), ["cat"])
        assert [r.ok for r in result] == [True, True]
        assert all(r.provenance["profile"] == family for r in result)


@pytest.mark.parametrize("family", ["gemma4", "qwen25vl", "qwen3vl"])
def test_classify_scores_equal_teacher_forcing_in_every_chat_family(family, tiny_family_backend):
    import torch

    from vistool.runtime import inputs as family_inputs
    from vistool.runtime.scoring import choice_token_ids

    backend, profile = tiny_family_backend(family), get_profile(family)
    options = OPTIONS["classify"]
    request = build_request(TASKS["classify"], profile, options, RunSettings(budget=70), image=noise_images()[1])
    response = answer_requests(backend, [request])[0]
    assert response.ok, response.error
    prepared = family_inputs.model_inputs(backend._prepare([request]).inputs, backend.processor, "cpu")
    length = prepared["input_ids"].shape[1]
    for choice, tokens, score in zip(request.choices, choice_token_ids(backend.tokenizer, request.choices, profile.answer_end),
                                     response.choice_logprobs):
        full = dict(prepared)
        extra = torch.tensor([tokens])
        full["input_ids"] = torch.cat([prepared["input_ids"], extra], dim=1)
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        if "mm_token_type_ids" in full:
            full["mm_token_type_ids"] = torch.cat([prepared["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
        with torch.inference_mode():
            logits = backend.model(**full).logits[0, length - 1 : -1].float()
        expected = torch.log_softmax(logits, dim=-1).gather(-1, extra[0][:, None]).sum().item()
        assert score == pytest.approx(expected, abs=1e-3), choice
