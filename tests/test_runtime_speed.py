"""Speed options of the transformers backend keep greedy tokens identical (issue 9).

Each optimisation is compared with the plain path on the tiny offline Gemma 4: prefetch
on/off, length bucketing on/off, compile (static cache + torch.compile; marked slow, it
compiles for ~50 s on a small CPU), stop-when-JSON-closes (a prefix of the plain
tokens), and the out-of-memory back-off (a fake OOM above a batch size).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vistool.runtime import speed
from vistool.runtime.transformers_backend import TransformersBackend, _ChosenTokenLogprobs
from vistool.runtime.types import GenerationRequest

# (W, H): landscape, portrait, a strip (few image tokens), a square, a small image.
SIZES = [(640, 480), (480, 640), (1200, 60), (512, 512), (96, 64), (800, 300)]
PROMPTS = [
    "Detect the cat.",
    'Detect every person, car, bicycle, dog, cat, bus, truck, chair, bottle and cup. Answer in JSON with "box_2d".',
    "Point to it.",
    "Read all the text in the image and return it as a JSON list.",
    "Where is the red button?",
    "Describe the image in one sentence.",
]


def make_requests(**overrides) -> list[GenerationRequest]:
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]
    settings = {"budget": 70, "max_new_tokens": 12, "return_logprobs": True, **overrides}
    return [GenerationRequest(prompt, images=[image], **settings) for prompt, image in zip(PROMPTS, images)]


def token_ids(responses) -> list[list[int]]:
    assert all(response.ok for response in responses), [response.error for response in responses]
    return [[lp.token_id for lp in response.logprobs] for response in responses]


def variant(tiny_backend, cls=TransformersBackend, **options) -> TransformersBackend:
    """A backend sharing the tiny model, with the given speed options, decoding in static batches
    (row refilling has its own tests: tests/test_refill.py)."""
    settings = {"batch_size": 3, "prefetch": 0, "bucket": False, "refill": False, **options}
    return cls.from_model(tiny_backend.model, tiny_backend.processor, model_id=tiny_backend.model_id, **settings)


@pytest.fixture(scope="module")
def plain(tiny_backend):
    """Token ids of the plain path: no prefetch, no bucketing, batches of 3 in input order."""
    return token_ids(variant(tiny_backend).generate(make_requests()))


@pytest.mark.parametrize("workers", [1, 3])
def test_prefetch_gives_identical_tokens(tiny_backend, plain, workers):
    backend = variant(tiny_backend, prefetch=workers, batch_size=1)  # six micro-batches, `workers` prepared ahead
    assert token_ids(backend.generate(make_requests())) == [ids for ids in plain]


def test_bucketing_gives_identical_tokens_in_input_order(tiny_backend, plain):
    backend = variant(tiny_backend, bucket=True, prefetch=1)
    requests = make_requests()
    plan = backend._plan(requests)
    assert sorted(i for chunk in plan for i in chunk) == list(range(len(requests)))
    assert plan != [[0, 1, 2], [3, 4, 5]]  # the strip and the small image really were regrouped
    assert token_ids(backend.generate(requests)) == plain
    # Each response still answers its own request: same tokens as that request alone.
    alone = [token_ids(backend.generate([request]))[0] for request in requests[:2]]
    assert alone == plain[:2]


def test_bucketing_orders_by_prompt_length(tiny_backend):
    requests = make_requests(budget=280)
    image_processor = tiny_backend.processor.image_processor
    keys = [speed.prompt_length_estimate(request, image_processor, 280) for request in requests]
    prepared = tiny_backend._prepare(requests).inputs
    image_tokens = (prepared["input_ids"] == tiny_backend.processor.image_token_id).sum(dim=1).tolist()
    assert [key[0] for key in keys] == image_tokens  # the estimate is the processor's exact count


@pytest.mark.slow  # ~50 s of compilation on a quiet 2-core CPU
def test_compile_gives_identical_tokens(tiny_backend, plain):
    backend = variant(tiny_backend, compile=True)
    assert token_ids(backend.generate(make_requests())) == plain
    assert token_ids(backend.generate(make_requests())) == plain  # second call reuses caches and graphs


# ----------------------------------------------------------------- JSON stop
ANSWER = '```json\n[{"box_2d": [171, 75, 245, 308], "label": "a [b] \\"c\\" {d}"}]\n```\nThe box is the view recipe element.'


def test_json_automaton_on_text():
    def close_index(text: str) -> int | None:
        state = 0
        for index, char in enumerate(text):
            state = speed.advance_json_state(state, char)
            if state == speed.DONE:
                return index
        return None

    assert close_index(ANSWER) == ANSWER.index("}]\n") + 1
    assert close_index('Sure: {"a": [1, {"b": "}"}]} trailing') == len('Sure: {"a": [1, {"b": "}"}]}') - 1
    assert close_index('The "cat" is at: [1, 2] I think') == len('The "cat" is at: [1, 2]') - 1  # prose quotes are skipped
    assert close_index('[{"text": "a\\\\"}]') == len('[{"text": "a\\\\"}]') - 1  # escaped backslash ends the string
    assert close_index('```json\n[{"box_2d": [1, 2') is None  # truncated: never closes


def test_json_table_matches_text_automaton(tiny_backend):
    tokenizer = tiny_backend.tokenizer
    ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    table = speed.json_transition_table(texts, tiny_backend._special_ids)
    state, text_state = 0, 0
    for token_id in ids:
        state = int(table[token_id, state])
        text_state = speed.advance_json_state(text_state, texts[token_id])
        assert state == text_state


def test_stopping_and_logprob_state_stay_on_device():
    """Both run per decode step; on the meta device any read back to the host would raise."""
    table = torch.zeros((50, speed.DONE + 1), dtype=torch.uint8, device="meta")
    stop = speed.JsonCloseStop(table, torch.ones(2, dtype=torch.bool, device="meta"), prompt_length=4)
    recorder = _ChosenTokenLogprobs()
    input_ids = torch.zeros((2, 5), dtype=torch.long, device="meta")
    for _ in range(3):
        recorder(input_ids, torch.zeros((2, 50), device="meta"))
        assert stop(input_ids, None).shape == (2,)
        input_ids = torch.cat([input_ids, torch.zeros((2, 1), dtype=torch.long, device="meta")], dim=1)


class _Force:
    """Logits processor that makes greedy decoding emit a fixed token script."""

    def __init__(self, script: list[int], prompt_length: int) -> None:
        self.script, self.prompt_length = script, prompt_length

    def __call__(self, input_ids, scores):
        step = min(input_ids.shape[1] - self.prompt_length, len(self.script) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step]] = 0.0
        return forced


class ScriptedBackend(TransformersBackend):
    """The tiny model, made to answer `script` (a JSON answer with a tail) on every row."""

    script: list[int] = []

    def _generate_kwargs(self, requests, prompt_length):
        kwargs, recorder, json_stop = super()._generate_kwargs(requests, prompt_length)
        kwargs["logits_processor"].append(_Force(self.script, prompt_length))
        return kwargs, recorder, json_stop


def test_json_stop_ends_at_the_closing_bracket(tiny_backend):
    script = tiny_backend.tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    ScriptedBackend.script = script
    backend = variant(tiny_backend, cls=ScriptedBackend, batch_size=4)
    requests = make_requests(max_new_tokens=len(script))[:4]
    for request in requests[::2]:
        request.stop_when_json_closes = True
    full, stopped = token_ids(backend.generate(make_requests(max_new_tokens=len(script))[:4])), backend.generate(requests)
    assert full == [script] * 4
    close = ANSWER.index("}]\n") + 2
    for row, response in enumerate(stopped):
        assert response.ok and response.finish_reason in ("stop", "length")
        ids = [lp.token_id for lp in response.logprobs]
        assert ids == full[row][: len(ids)]  # a prefix of the plain tokens
        if requests[row].stop_when_json_closes:
            assert response.finish_reason == "stop" and response.generated_tokens == len(ids) < len(script)
            assert tiny_backend.tokenizer.decode(ids) == ANSWER[: len(tiny_backend.tokenizer.decode(ids))]
            assert len(tiny_backend.tokenizer.decode(ids)) >= close > len(tiny_backend.tokenizer.decode(ids[:-1]))
            assert response.settings["stop_when_json_closes"] is True
        else:
            assert ids == script  # rows without the flag are not cut
            assert "stop_when_json_closes" not in response.settings


def test_json_stop_on_random_model_is_a_prefix(tiny_backend, plain):
    responses = variant(tiny_backend).generate(make_requests(stop_when_json_closes=True))
    for ids, full in zip(token_ids(responses), plain):
        assert ids == full[: len(ids)]


# ----------------------------------------------------------------- out of memory
class FakeOOMBackend(TransformersBackend):
    """Raises an out-of-memory error for micro-batches larger than `limit`."""

    limit = 2
    error = torch.OutOfMemoryError
    sizes: list[int] = []

    def _generate_batch(self, requests, prepared=None):
        self.sizes.append(len(requests))
        if len(requests) > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super()._generate_batch(requests, prepared)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
def test_out_of_memory_halves_the_batch_and_keeps_tokens(tiny_backend, plain, error):
    backend = variant(tiny_backend, cls=FakeOOMBackend, batch_size=6)
    backend.error, backend.sizes, backend.limit = error, [], 2
    assert token_ids(backend.generate(make_requests())) == plain
    assert backend.sizes == [6, 3, 2, 1, 3, 2, 1]  # 6 -> 3 + 3 -> (2 + 1) + (2 + 1)
    backend.sizes.clear()
    assert token_ids(backend.generate(make_requests())) == plain
    assert max(backend.sizes) <= 3  # later micro-batches of that kind start at the size that fitted


def test_out_of_memory_on_one_request_is_an_error_response(tiny_backend):
    backend = variant(tiny_backend, cls=FakeOOMBackend, batch_size=4)
    backend.error, backend.sizes, backend.limit = torch.OutOfMemoryError, [], 0
    responses = backend.generate(make_requests()[:2])
    assert [response.finish_reason for response in responses] == ["error", "error"]
    assert "out of memory" in responses[0].error


class FailingCompileBackend(TransformersBackend):
    """Fails like `torch.compile` does when compilation breaks, while `compile` is on."""

    def _generate_batch(self, requests, prepared=None):
        if self.compile:
            from torch._dynamo.exc import InternalTorchDynamoError

            raise InternalTorchDynamoError("inductor could not compile the decode step")
        return super()._generate_batch(requests, prepared)


def test_failed_compile_falls_back_to_eager_once(tiny_backend, plain):
    backend = variant(tiny_backend, cls=FailingCompileBackend, compile=True)
    assert token_ids(backend.generate(make_requests())) == plain
    assert backend.compile is False


def test_other_errors_are_not_taken_for_out_of_memory():
    assert speed.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert speed.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert not speed.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not speed.is_out_of_memory(ValueError("out of memory"))


# ----------------------------------------------------------------- defaults and timings
@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_default_batch_size_grows_as_the_budget_shrinks(device):
    sizes = [speed.default_batch_size(budget, device) for budget in (70, 140, 280, 560, 1120)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert speed.default_batch_size(None, device) >= 1
    assert speed.default_batch_size(280, "cuda:1") == speed.default_batch_size(280, "cuda")
    assert speed.default_batch_size(280, "cuda") > speed.default_batch_size(280, "cpu")


def test_timings_split_prefill_and_decode(tiny_backend):
    response = variant(tiny_backend).generate(make_requests()[:1])[0]
    assert {"preprocess_s", "generate_s", "prefill_s", "decode_s", "batch_size"} <= set(response.timings)
    assert response.timings["prefill_s"] > 0 and response.timings["decode_s"] > 0
    assert response.timings["prefill_s"] + response.timings["decode_s"] <= response.timings["generate_s"] * 1.01
