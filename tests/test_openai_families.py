"""Every family through the OpenAI-compatible backend: the budget knob each engine takes,
and the resized size computed on the client with the server's own rule, so that
Qwen2.5-VL's answers in resized pixels come back as exact pixels of the original image.

Two kinds of server on 127.0.0.1 (no HTTP layer mocked): the scripted server of
tests/test_openai_backend.py, answering recorded native-format answers, and `transformers
serve` on the tiny Gemma 4 and Qwen2.5-VL checkpoints.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from tests.test_openai_backend import ScriptedServer, completion, noise_image, serve_on_loopback
from vistool.api import Vistool
from vistool.errors import BudgetError
from vistool.profiles import get_profile
from vistool.runtime.openai_backend import OpenAIBackend
from vistool.runtime.types import GenerationRequest
from vistool.tasks import TASKS, RunSettings, build_request, interpret


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def backend(server: ScriptedServer, model: str, **options) -> OpenAIBackend:
    options.setdefault("engine", "vllm")
    return OpenAIBackend(model, server.base_url, backoff=0.01, timeout=10.0, **options)


def test_qwen25vl_boxes_in_resized_pixels_come_back_exact_from_vllm(server):
    # 1000 x 600 at a budget of 280 tokens: smart_resize gives 588 x 336 (multiples of 28).
    # The recorded answer is in those pixels: (147, 84, 294, 168) is (250, 150, 500, 300) of the original.
    server.reply = lambda body, srv: (200, completion('```json\n[{"bbox_2d": [147, 84, 294, 168], "label": "cat"}]\n```'), {})
    with backend(server, "Qwen/Qwen2.5-VL-7B-Instruct") as http:
        assert http.profile_name == "qwen25vl"
        vt = Vistool(http, budget=280, logprobs=False)
        result = vt.detect(noise_image(1000, 600), ["cat"])
    body = server.bodies[0]
    assert body["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 280 * 28 * 28}
    assert "bbox_2d" in body["messages"][-1]["content"][-1]["text"]  # asked in Qwen's wording
    assert np.allclose(result.detections.xyxy, [[250, 150, 500, 300]], rtol=0, atol=1e-9)
    resize = result.provenance["resize"]
    assert resize == {"rule": "smart_resize", "multiple_of": 28, "min_pixels": 3136, "max_pixels": 219520,
                      "computed_on": "client", "assumed": False}


def test_server_fixed_budget_assumes_the_checkpoint_default_and_says_so(server):
    server.reply = lambda body, srv: (200, completion('[{"bbox_2d": [0, 0, 966, 546], "label": "screen"}]'), {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "budget is not applied" (llama-server fixes it at launch)
        with backend(server, "qwen2.5-vl-7b", engine="llamacpp") as http:
            result = Vistool(http, logprobs=False).gui_ground(noise_image(1920, 1080), "open it")
    # 1920 x 1080 is within Qwen2.5-VL's default 16384 x 28 x 28 pixels: rounded to 1932 x 1092.
    assert result.provenance["resize"]["assumed"] is True and result.provenance["resize"]["max_pixels"] == 16384 * 784
    assert "mm_processor_kwargs" not in server.bodies[0]
    # (966, 546) of 1932 x 1092 is half of 1920 x 1080
    assert np.allclose(result.detections.xyxy, [[0, 0, 960, 540]], rtol=0, atol=1e-9)


def test_gemma4_and_qwen3vl_sizes_are_computed_and_fixed_size_families_send_no_budget(server):
    with backend(server, "google/gemma-4-E2B-it") as http:
        gemma = http.generate([GenerationRequest("p", images=[noise_image(1920, 1080)], budget=280)])[0]
    assert gemma.image_sizes == [(1056, 576)] and server.bodies[-1]["mm_processor_kwargs"] == {"max_soft_tokens": 280}
    with backend(server, "Qwen/Qwen3-VL-8B-Instruct") as http:
        qwen = http.generate([GenerationRequest("p", images=[noise_image(1920, 1080)], budget=1280)])[0]
    assert qwen.image_sizes == [get_profile("qwen3vl").resize.resized_size(1920, 1080, 1280)]
    assert server.bodies[-1]["mm_processor_kwargs"] == {"min_pixels": 65536, "max_pixels": 1280 * 1024}
    with backend(server, "google/paligemma2-3b-mix-448") as http:
        pali = http.generate([GenerationRequest("detect cat", images=[noise_image(640, 480)])])[0]
        with pytest.raises(BudgetError, match="fixed square"):
            http.generate([GenerationRequest("detect cat", images=[noise_image(640, 480)], budget=280)])
    assert pali.image_sizes == [] and "mm_processor_kwargs" not in server.bodies[-1]


# --------------------------------------------------------------------------- transformers serve
@pytest.fixture(scope="module")
def qwen_server(tiny_family_dir, tmp_path_factory) -> Iterator[str]:
    """`transformers serve` on the tiny Qwen2.5-VL, on 127.0.0.1; yields the base URL."""
    yield from serve_on_loopback(tiny_family_dir("qwen25vl"), tmp_path_factory)


@pytest.mark.slow
def test_serve_qwen25vl_end_to_end_with_exact_pixels(qwen_server, tiny_family_dir, tiny_family_backend):
    folder = str(tiny_family_dir("qwen25vl"))
    profile = get_profile("qwen25vl")
    image = noise_image(1000, 600)
    spec, options = TASKS["detect"], {"classes": ["cat"]}
    requests = [build_request(spec, profile, options, RunSettings(budget=budget, max_new_tokens=4), image=image)
                for budget in (70, 280)]
    with OpenAIBackend(folder, qwen_server, engine="auto") as http:
        assert http.profile_name == "qwen25vl"  # from the served folder's config.json
        remote = http.generate(requests)
    local = tiny_family_backend("qwen25vl").generate(requests)
    for far, near in zip(remote, local):
        assert far.ok, far.error
        assert far.settings["engine"] == "transformers"
        assert far.prompt_tokens == near.prompt_tokens  # the budget reached the server's processor
        assert far.image_sizes == near.image_sizes  # the client's smart_resize is the server's
    assert remote[1].image_sizes == [(588, 336)]
    # A recorded native answer through the server path's parser: pixels of the 588 x 336 image the server saw.
    recorded = dataclasses.replace(remote[1], text='[{"bbox_2d": [147, 84, 294, 168], "label": "cat"}]', logprobs=None)
    result = interpret(spec, profile, options, requests[1], recorded, image.size, "photo")
    assert np.allclose(result.detections.xyxy, [[250, 150, 500, 300]], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_serve_qwen25vl_through_the_api(qwen_server, tiny_family_dir):
    vt = Vistool(OpenAIBackend(str(tiny_family_dir("qwen25vl")), qwen_server, engine="transformers"), max_new_tokens=4)
    for result in (vt.detect(noise_image(320, 240), ["cat"]), vt.point(noise_image(200, 300), "cat"),
                   vt.gui_ground(noise_image(640, 360), "click OK"), vt.caption(noise_image(300, 200), "short")):
        assert result.ok, result.error
        assert result.provenance["profile"] == "qwen25vl" and result.provenance["prompt_tokens"] > 0
