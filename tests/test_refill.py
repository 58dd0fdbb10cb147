"""Row refilling on the local backend (issue 19, item 2): a finished row's place goes to the next request.

Each family's tiny checkpoint runs in float64 (so that a different batch shape cannot
flip a near-tie of a random model's flat distribution), rows end at lengths of their own
(an end-of-sequence forced after a per-prompt number of tokens), and the refilled run
must give every request the tokens and log-probs of the static run. The tests also
check that refilling really happened (requests joined while others were decoding),
that a sliding-window layer's cache survives joins and trims, that answer controls
(grammar, loop stop, JSON stop) behave per request, and that failures stay isolated.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vistool import Vistool
from vistool.runtime import kv_rows, refill
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest

FAMILIES = ["gemma4", "qwen25vl", "qwen3vl", "paligemma2"]


class EndAfter:
    """A logits processor forcing end-of-sequence once a row has `2 + sum(prompt ids) % spread` tokens."""

    def __init__(self, prompt_length: int, eos: int, spread: int) -> None:
        self.prompt_length, self.eos, self.spread = prompt_length, eos, spread

    def __call__(self, input_ids, scores):
        limit = 2 + input_ids[:, : self.prompt_length].sum(dim=1) % self.spread
        ended = input_ids.shape[1] - self.prompt_length >= limit
        scores = scores.clone()
        scores[ended] = float("-inf")
        scores[ended, self.eos] = 0.0
        return scores


def float64_backend(source: TransformersBackend, *, refill_on: bool, slots: int, spread: int) -> TransformersBackend:
    """A float64 copy of a tiny backend whose rows end at their own lengths (`EndAfter`)."""
    model = copy.deepcopy(source.model).double()
    backend = TransformersBackend.from_model(
        model, source.processor, model_id=source.model_id, profile=source.profile, batch_size=slots, refill=refill_on
    )
    original = backend._generate_kwargs
    eos = min(backend._stop_ids)

    def with_lengths(requests, prompt_length):
        kwargs, recorder, controls = original(requests, prompt_length)
        kwargs["logits_processor"].insert(0, EndAfter(prompt_length, eos, spread))
        return kwargs, recorder, controls

    backend._generate_kwargs = with_lengths
    return backend


def image_requests(backend: TransformersBackend, count: int, **settings) -> list[GenerationRequest]:
    """Requests with images of different sizes and prompts of different lengths (one group)."""
    rng = np.random.default_rng(3)
    budget = backend.profile.default_budget if backend.profile.budgets else None
    requests = []
    for index in range(count):
        size = (48 + 24 * (index % 4), 40 + 16 * (index % 3))
        image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        prompt = "Detect the cat" + " and the dog" * (index % 3) + f" number {index}."
        requests.append(GenerationRequest(prompt, images=[image], budget=budget, return_logprobs=True, **settings))
    return requests


@pytest.fixture
def joins(monkeypatch):
    """Records, for every group that joins a running batch, (its rows, rows already running)."""
    seen: list[tuple[int, int]] = []
    original = refill.RowRefiller.start

    def start(self, prepared, tag):
        seen.append((int(prepared.input_ids.shape[0]), self.rows))
        return original(self, prepared, tag)

    monkeypatch.setattr(refill.RowRefiller, "start", start)
    return seen


def assert_same_answers(static, refilled) -> None:
    assert all(r.ok for r in static + refilled), [r.error for r in static + refilled if not r.ok]
    for one, other in zip(static, refilled, strict=True):
        assert [lp.token_id for lp in other.logprobs] == [lp.token_id for lp in one.logprobs]
        assert other.raw_text == one.raw_text
        assert np.allclose([lp.logprob for lp in other.logprobs], [lp.logprob for lp in one.logprobs], atol=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_refilled_rows_get_the_tokens_of_static_batches(tiny_family_backend, family, joins) -> None:
    source = tiny_family_backend(family)
    static_backend = float64_backend(source, refill_on=False, slots=4, spread=11)
    refill_backend = float64_backend(source, refill_on=True, slots=4, spread=11)
    requests = image_requests(source, 8, max_new_tokens=14)
    static = static_backend.generate(requests)
    refilled = refill_backend.generate(requests)
    assert_same_answers(static, refilled)
    lengths = {r.generated_tokens for r in refilled}
    assert len(lengths) > 2  # rows really end at different steps
    assert [rows for rows, _ in joins] == [2, 2, 2, 2]  # two requests at a time join a 4-row batch (refill_chunk(4))
    assert sum(running > 0 for _, running in joins) >= 3  # ... while others were decoding
    assert max(running for _, running in joins) == 2
    assert max(r.timings["batch_size"] for r in refilled) == 4  # the most rows decoded together
    assert all(2 <= r.timings["batch_size"] <= 4 for r in refilled)
    assert all(r.timings["decode_s"] >= 0 and r.timings["prefill_s"] > 0 for r in refilled)


def test_sliding_window_layers_survive_joins_and_trims(tiny_backend, joins) -> None:
    """Text rows of ~20 prompt tokens and up to 150 answer tokens cross Gemma 4's 128-token window
    while others join (left-padded into the window) and leave (columns trimmed)."""
    assert tiny_backend.model.config.get_text_config().sliding_window == 128
    static_backend = float64_backend(tiny_backend, refill_on=False, slots=4, spread=150)
    refill_backend = float64_backend(tiny_backend, refill_on=True, slots=4, spread=150)
    requests = [GenerationRequest(f"Tell me about {'cats ' * (i % 5)}number {i}.", max_new_tokens=160) for i in range(9)]
    requests = [GenerationRequest(r.prompt, max_new_tokens=160, return_logprobs=True) for r in requests]
    static = static_backend.generate(requests)
    refilled = refill_backend.generate(requests)
    assert_same_answers(static, refilled)
    assert max(r.prompt_tokens + r.generated_tokens for r in refilled) > 128
    assert min(r.generated_tokens for r in refilled) < 60


def test_answer_controls_stay_per_request_when_refilled(tiny_backend, joins) -> None:
    """Grammar-constrained detection with the loop stop and the JSON-close stop, through the task path."""
    images = [Image.new("RGB", (80 + 24 * i, 64 + 8 * (i % 3)), (40 * i % 255, 120, 200)) for i in range(7)]
    model = copy.deepcopy(tiny_backend.model).double()
    results = {}
    for refill_on in (False, True):
        backend = TransformersBackend.from_model(model, tiny_backend.processor, model_id="tiny", batch_size=3, refill=refill_on)
        vt = Vistool(backend, budget=70)
        results[refill_on] = vt.detect(images, ["cat", "dog", "person"], max_new_tokens=96)
    for one, other in zip(results[False], results[True], strict=True):
        assert other.text == one.text
        assert other.provenance.get("structured") == one.provenance.get("structured")
        assert len(other.detections) == len(one.detections)
    assert any(running > 0 for _, running in joins)
    assert all(r.provenance["structured"].startswith("xgrammar") for r in results[True])


def test_a_failing_decode_step_sends_its_requests_to_static_batches(tiny_backend, monkeypatch, caplog) -> None:
    static_backend = float64_backend(tiny_backend, refill_on=False, slots=3, spread=11)
    refill_backend = float64_backend(tiny_backend, refill_on=True, slots=3, spread=11)
    requests = image_requests(tiny_backend, 6, max_new_tokens=12)
    static = static_backend.generate(requests)
    original, calls = refill.RowRefiller.step, []

    def failing_step(self, progress=None):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("device lost")
        return original(self, progress)

    monkeypatch.setattr(refill.RowRefiller, "step", failing_step)
    with caplog.at_level(logging.WARNING):
        refilled = refill_backend.generate(requests)
    assert_same_answers(static, refilled)  # nothing lost: the running groups were decoded again statically
    assert "device lost" in caplog.text
    assert refill_backend.refill  # a failed step does not turn refilling off


def test_a_model_that_cannot_be_refilled_falls_back_with_a_warning(tiny_backend, monkeypatch, caplog) -> None:
    static_backend = float64_backend(tiny_backend, refill_on=False, slots=3, spread=11)
    refill_backend = float64_backend(tiny_backend, refill_on=True, slots=3, spread=11)
    requests = image_requests(tiny_backend, 5, max_new_tokens=10)
    monkeypatch.setattr(kv_rows, "refillable", lambda cache: False)
    with caplog.at_level(logging.WARNING):
        refilled = refill_backend.generate(requests)
    assert "row refilling is not possible" in caplog.text
    assert refill_backend.refill is False
    assert_same_answers(static_backend.generate(requests), refilled)


def test_a_request_that_fails_in_a_refilled_group_fails_alone(tiny_backend) -> None:
    refill_backend = float64_backend(tiny_backend, refill_on=True, slots=3, spread=11)
    static_backend = float64_backend(tiny_backend, refill_on=False, slots=3, spread=11)
    requests = image_requests(tiny_backend, 6, max_new_tokens=10)
    context = refill_backend.context_tokens
    requests[3] = GenerationRequest("word " * (context + 10), images=requests[3].images, budget=requests[3].budget,
                                    max_new_tokens=10, return_logprobs=True)
    refilled = refill_backend.generate(requests)
    static = static_backend.generate(requests)
    assert not refilled[3].ok and "context" in refilled[3].error
    good = [i for i in range(6) if i != 3]
    assert_same_answers([static[i] for i in good], [refilled[i] for i in good])


def test_sliding_layer_padding_and_trimming_keep_the_newest_columns() -> None:
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    cache = DynamicCache()
    cache.layers = [DynamicSlidingWindowLayer(sliding_window=5), DynamicLayer()]
    keys = torch.arange(6, dtype=torch.float64).view(1, 1, 6, 1)
    for layer in cache.layers:
        layer.update(keys[:, :, :3], keys[:, :, :3])  # 3 columns: the window (4 kept) is not full
    assert kv_rows.length(cache) == 3
    kv_rows.pad_left(cache, 3)
    sliding, full = cache.layers
    assert sliding.cumulative_length == 6 and sliding.keys.shape[-2] == 4  # window - 1 columns kept
    assert sliding.keys.flatten().tolist() == [0.0, 0.0, 1.0, 2.0]  # padding on the left, newest on the right
    assert full.keys.flatten().tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]
    kv_rows.trim_left(cache, 4)
    assert sliding.cumulative_length == 2 and sliding.keys.flatten().tolist() == [1.0, 2.0]
    assert full.keys.flatten().tolist() == [1.0, 2.0]
    other = DynamicCache()
    other.layers = [DynamicSlidingWindowLayer(sliding_window=5), DynamicLayer()]
    for layer in other.layers:
        layer.update(keys[:, :, 4:], keys[:, :, 4:])
    kv_rows.concat_rows(cache, other)
    assert full.keys[:, 0, :, 0].tolist() == [[1.0, 2.0], [4.0, 5.0]]
    kv_rows.keep_rows(cache, torch.tensor([1]))
    assert sliding.keys.flatten().tolist() == [4.0, 5.0]
    assert kv_rows.refillable(cache)


def test_a_run_sends_a_refilling_backend_several_batches_per_call(tiny_backend, tiny_model_dir) -> None:
    """So that annotate's finished rows have requests waiting; a static backend still gets one batch."""
    from vistool.batch.runner import MAX_DEFAULT_BATCH, default_batch_size
    from vistool.runtime import speed
    from vistool.runtime.deferred import BackendRecipe, DeferredBackend

    refilling = TransformersBackend.from_model(tiny_backend.model, tiny_backend.processor, batch_size=4)
    static = TransformersBackend.from_model(tiny_backend.model, tiny_backend.processor, batch_size=4, refill=False)
    assert refilling.requests_per_call(280) == 4 * speed.REFILL_CALLS and static.requests_per_call(280) == 4
    assert default_batch_size(Vistool(refilling, budget=280)) == min(4 * speed.REFILL_CALLS, MAX_DEFAULT_BATCH)
    assert default_batch_size(Vistool(static, budget=280)) == 4
    deferred = DeferredBackend(BackendRecipe(str(tiny_model_dir), device="cpu", batch_size=3))
    assert deferred.requests_per_call(280) == 3 * speed.REFILL_CALLS and not deferred.loaded  # answered without loading
    compiled = DeferredBackend(BackendRecipe(str(tiny_model_dir), device="cpu", batch_size=3, options={"compile": True}))
    assert compiled.requests_per_call(280) == 3 and not compiled.loaded


def test_answers_are_cached_as_their_group_finishes_so_an_interrupt_keeps_them(tiny_backend, tmp_path, monkeypatch) -> None:
    """One model call of 8 images on a 4-row refilling backend: interrupted once 3 groups have
    finished, the cache holds their answers (before, answers were saved once the call returned)."""
    from vistool.batch.cache import AnswerCache
    from vistool.batch.runner import BatchRunner, WorkItem
    from vistool.runtime import transformers_refill

    paths = []
    for index in range(8):
        path = tmp_path / f"img{index}.png"
        Image.new("RGB", (64 + 8 * index, 48), (30 * index, 100, 50)).save(path)
        paths.append(path)
    backend = float64_backend(tiny_backend, refill_on=True, slots=4, spread=9)
    finished = []
    original = transformers_refill._respond

    def respond(backend_, cohort):
        if len(finished) == 3:
            raise KeyboardInterrupt
        finished.append(len(cohort.tag[0]))
        return original(backend_, cohort)

    monkeypatch.setattr(transformers_refill, "_respond", respond)
    cache_path = tmp_path / "answers.jsonl"
    runner = BatchRunner(Vistool(backend, budget=70), AnswerCache(cache_path), batch_size=8, workers=0, progress=False)
    items = [WorkItem(path, "caption", {}) for path in paths]
    first_call = 1  # the first call is 1/8 of the batch: one image, answered and cached alone
    with pytest.raises(KeyboardInterrupt):
        runner.run(items)
    cached = AnswerCache(cache_path)
    assert len(cached) == first_call + sum(finished[1:])  # every group that finished before the interrupt
    assert sum(finished[1:]) == 4  # two groups of 2 from the 7-image call
