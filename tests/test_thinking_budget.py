"""Thinking without starvation, and structured answers over HTTP.

With thinking on, the token limit is the answer's plus the thought's; the local backend
closes a thought that spends its budget (then the answer, held to its grammar, still
gets its own tokens); an answer cut off inside the thought says so. A server gets the
schema as `response_format`, is sent free when it refuses it (and says so), and has a
looping answer's repeated tail cut.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from PIL import Image

from tests.test_openai_backend import Reply, ScriptedServer, backend_for, completion, server  # noqa: F401 (fixture)
from vistool.api import Vistool
from vistool.batch.runner import answer_problem
from vistool.profiles import get_profile
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks import TASKS, RunSettings, build_request
from vistool.tasks.base import DEFAULT_THOUGHT_TOKENS

IMAGE = Image.new("RGB", (96, 64), (40, 90, 160))


def test_thinking_adds_the_thought_budget_to_the_answers_limit() -> None:
    profile = get_profile("gemma4")
    plain = build_request(TASKS["detect"], profile, {"classes": ["cat"]}, RunSettings())
    thinking = build_request(TASKS["detect"], profile, {"classes": ["cat"]}, RunSettings(thinking=True))
    own = build_request(TASKS["detect"], profile, {"classes": ["cat"]}, RunSettings(thinking=True, thought_tokens=300, max_new_tokens=50))
    assert plain.max_new_tokens == 1024 and plain.thought_tokens is None and "thought_tokens" not in plain.settings()
    assert thinking.max_new_tokens == 1024 + DEFAULT_THOUGHT_TOKENS + 2
    assert thinking.settings()["thought_tokens"] == DEFAULT_THOUGHT_TOKENS
    assert own.max_new_tokens == 50 + 300 + 2 and own.thought_tokens == 300


class _Rambling:
    """Pushes the model to open the thought channel, then to think on and on (never closing it).

    A bias, not a mask: tokens another processor has ruled out stay ruled out.
    """

    def __init__(self, opener: int, word: int, prompt_length: int) -> None:
        self.opener, self.word, self.prompt_length = opener, word, prompt_length

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        boosted = scores.clone()
        boosted[:, self.opener if step == 0 else self.word] += 1e4
        return boosted


class RamblingBackend(TransformersBackend):
    def _generate_kwargs(self, requests, prompt_length):
        kwargs, recorder, controls = super()._generate_kwargs(requests, prompt_length)
        word = self.tokenizer("thought", add_special_tokens=False)["input_ids"][0]
        kwargs["logits_processor"].append(_Rambling(self._channel_open, word, prompt_length))
        return kwargs, recorder, controls


@pytest.fixture(scope="module")
def rambling(tiny_model_dir) -> RamblingBackend:
    return RamblingBackend(str(tiny_model_dir), device="cpu", dtype="float32")


def test_a_thought_that_spends_its_budget_is_closed_and_the_answer_still_comes(rambling) -> None:
    vt = Vistool(rambling, budget=70, thinking=True, thought_tokens=12)
    result = vt.detect(IMAGE, ["cat", "dog"], max_new_tokens=60)
    provenance = result.provenance
    assert result.ok and provenance["thought_capped"] is True and provenance["thought_tokens"] == 12
    assert provenance["thought"] and len(provenance["thought"]) >= 12  # twelve tokens of thought, kept
    assert provenance["structured"].startswith("xgrammar")
    schema = build_request(TASKS["detect"], vt.profile, {"classes": ["cat", "dog"]}, RunSettings()).json_schema
    jsonschema.validate(json.loads(result.text, strict=False), schema)  # the answer, after the thought, held to its schema
    assert answer_problem(result) is None


def test_an_answer_cut_off_inside_the_thought_says_so(rambling) -> None:
    vt = Vistool(rambling, budget=70, thinking=True, thought_tokens=10_000)  # a budget the limit below never lets it reach
    request = build_request(TASKS["detect"], vt.profile, {"classes": ["cat"]}, RunSettings(thinking=True, thought_tokens=10_000))
    request.images = [IMAGE]
    request.max_new_tokens = 40
    response = rambling.generate([request])[0]
    assert response.finish_reason == "length" and response.text == ""
    from vistool.tasks import interpret

    result = interpret(TASKS["detect"], vt.profile, {"classes": ["cat"]}, request, response, IMAGE.size, "x.png")
    assert not result.ok and "cut off inside the thought" in result.error
    assert result.provenance["thought"]  # what the model thought is kept
    assert answer_problem(result) == result.error  # annotate reports it, not "0 boxes"


@pytest.mark.parametrize(
    "raw, thought",
    [
        ("<|channel>thought\nLet me look at the left side, then", None),  # channel left open (local, vLLM without parser)
        ("", "Let me look at the left side, then"),  # a server that returns the thought apart (reasoning_content)
    ],
)
def test_cut_off_in_the_thought_from_any_backend(raw: str, thought: str | None) -> None:
    def answer(request: GenerationRequest) -> GenerationResponse:
        return GenerationResponse(text="", raw_text=raw, thought=thought, finish_reason="length", settings=request.settings())

    result = Vistool(ReplayBackend(answer), thinking=True).detect(IMAGE, ["cat"])
    assert result.error and "cut off inside the thought" in result.error
    complete = Vistool(ReplayBackend(["[]"]), thinking=True).detect(IMAGE, ["cat"])
    assert complete.ok  # an answer that did come is never flagged


# --------------------------------------------------------------------------- over HTTP
def test_server_gets_the_schema_as_response_format(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (200, completion('[{"box_2d": [1, 2, 300, 400], "label": "cat"}]'), {})
    vt = Vistool(backend_for(server))
    result = vt.detect(IMAGE, ["cat"])
    body = server.bodies[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["items"]["properties"]["label"]["enum"] == ["cat"]
    assert result.provenance["structured"] == "response_format" and len(result.detections) == 1
    free = Vistool(backend_for(server), structured=False).detect(IMAGE, ["cat"])
    assert "response_format" not in server.bodies[-1] and free.provenance["structured"] == "free"


def test_server_that_refuses_response_format_is_asked_again_without_it(server: ScriptedServer) -> None:
    def reply(body: dict[str, Any], srv: ScriptedServer) -> Reply:
        if "response_format" in body:
            return 400, {"error": {"message": "Unsupported parameter: 'response_format'"}}, {}
        return 200, completion("[]"), {}

    server.reply = reply
    backend = backend_for(server, engine="generic")
    vt = Vistool(backend)
    with pytest.warns(UserWarning, match="refused response_format"):
        first = vt.detect(IMAGE, ["cat"])
    assert first.ok and first.provenance["structured"] == "free"
    assert "refused response_format" in first.provenance["structured_note"]
    count = server.count
    second = vt.detect(IMAGE, ["cat"])
    assert server.count == count + 1 and "response_format" not in server.bodies[-1]  # not tried again
    assert second.provenance["structured"] == "free"


def test_thinking_over_http_is_sent_free_and_says_why(server: ScriptedServer) -> None:
    server.reply = lambda body, srv: (200, completion("[]", reasoning="hmm"), {})
    result = Vistool(backend_for(server), thinking=True).detect(IMAGE, ["cat"])
    assert "response_format" not in server.bodies[-1]
    assert result.provenance["structured"] == "free" and "thinking" in result.provenance["structured_note"]
    assert server.bodies[-1]["max_tokens"] == 1024 + DEFAULT_THOUGHT_TOKENS + 2


def test_a_servers_looping_answer_has_its_repeated_tail_cut(server: ScriptedServer) -> None:
    item = '{"box_2d": [100, 200, 300, 400], "label": "cat"}, '
    looping = "[" + item * 60 + '{"box_2d": [10'
    server.reply = lambda body, srv: (200, completion(looping, finish="length"), {})
    result = Vistool(backend_for(server)).detect(IMAGE, ["cat"])
    assert result.provenance["raw_answer"] == looping  # nothing paid for is lost
    assert result.text == "[" + item.rstrip(", ")
    assert result.provenance["repeat_cut_chars"] == len(looping) - len(result.text)
    assert len(result.detections) == 1
