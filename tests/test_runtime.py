"""The transformers backend on the tiny offline Gemma 4: budgets, batching, log-probs, errors."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vistool.errors import BudgetError, ModelLoadError, RequestError
from vistool.io.video import VideoFrames
from vistool.runtime.thinking import decode_answer, split_thought
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest, GenerationResponse

BUDGETS = (70, 140, 280, 560, 1120)
# (W, H) of the four test images: landscape, portrait, full HD, an extreme strip.
SIZES = [(640, 480), (480, 640), (1920, 1080), (3000, 40)]


def gemma4_soft_tokens(width: int, height: int, budget: int) -> int:
    """Gemma 4's rule, written from its documentation: keep the aspect ratio, scale to at
    most budget * 9 patches of 16 px, floor both sides to multiples of 48 (a side that
    floors to 0 becomes 48 and the other side keeps the aspect ratio in whole 48s), and
    count (H / 48) * (W / 48) soft tokens."""
    factor = math.sqrt(budget * 9 * 16 * 16 / (width * height))
    new_h = math.floor(height * factor / 48) * 48
    new_w = math.floor(width * factor / 48) * 48
    longest = budget * 48
    if new_h == 0:
        new_h, new_w = 48, min(math.floor(width / height) * 48, longest)
    elif new_w == 0:
        new_w, new_h = 48, min(math.floor(height / width) * 48, longest)
    return (new_h // 48) * (new_w // 48)


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


def test_documented_token_examples():
    # DESIGN.md section 2, sizes as H x W there.
    assert gemma4_soft_tokens(1920, 1080, 280) == 264
    assert gemma4_soft_tokens(1920, 1080, 70) == 66
    assert gemma4_soft_tokens(512, 512, 280) == 256
    assert gemma4_soft_tokens(800, 600, 1120) == 1064


@pytest.mark.parametrize("budget", BUDGETS)
def test_batch_of_four_aspect_ratios_at_each_budget(tiny_backend, budget):
    requests = [GenerationRequest("Detect all objects.", images=[image], budget=budget, max_new_tokens=3) for image in images()]
    responses = tiny_backend.generate(requests)
    assert len(responses) == 4
    for (width, height), response in zip(SIZES, responses):
        assert response.ok, response.error
        assert response.image_tokens == gemma4_soft_tokens(width, height, budget)
        assert response.image_tokens <= budget
        resized_w, resized_h = response.image_sizes[0]
        assert resized_w % 48 == 0 and resized_h % 48 == 0
        assert (resized_w // 48) * (resized_h // 48) == response.image_tokens
        assert response.prompt_tokens > response.image_tokens
        assert 1 <= response.generated_tokens <= 3
        assert response.finish_reason in ("stop", "length")
        assert response.settings["budget"] == budget
        assert response.settings["model"] == tiny_backend.model_id
        assert set(response.timings) >= {"preprocess_s", "generate_s"}


def test_default_budget_is_280(tiny_backend):
    response = tiny_backend.generate([GenerationRequest("hi", images=[images()[2]], max_new_tokens=1)])[0]
    assert response.settings["budget"] == 280
    assert response.image_tokens == 264


def test_batched_equals_sequential_and_logprobs_match_teacher_forcing(tiny_backend):
    prompts = ["Detect the cat.", "Where is the red button? Answer in JSON.", "Read the text.", "Point to it."]
    requests = [
        GenerationRequest(prompt, images=[image], budget=70, max_new_tokens=16, return_logprobs=True)
        for prompt, image in zip(prompts, images())
    ]
    batched = tiny_backend.generate(requests)
    sequential = [tiny_backend.generate([request])[0] for request in requests]
    for together, alone in zip(batched, sequential):
        assert [lp.token_id for lp in together.logprobs] == [lp.token_id for lp in alone.logprobs]
        assert together.text == alone.text

    processor, model = tiny_backend.processor, tiny_backend.model
    for request, response in zip(requests, sequential):
        prepared = tiny_backend._prepare([request]).inputs
        generated = torch.tensor([[lp.token_id for lp in response.logprobs]])
        inputs = {k: v for k, v in prepared.items() if k not in processor.unused_input_names}
        prompt_length = inputs["input_ids"].shape[1]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], generated], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(generated)], dim=1)
        with torch.inference_mode():
            logits = model(**inputs).logits[0, prompt_length - 1 : -1].float()
        expected = torch.log_softmax(logits, dim=-1).gather(-1, generated[0].unsqueeze(-1)).squeeze(-1)
        actual = torch.tensor([lp.logprob for lp in response.logprobs])
        assert torch.allclose(actual, expected, atol=1e-4)


def test_logprob_offsets_point_into_answer_text(tiny_backend):
    request = GenerationRequest("Detect.", images=[images()[0]], budget=70, max_new_tokens=24, return_logprobs=True)
    response = tiny_backend.generate([request])[0]
    assert len(response.logprobs) == response.generated_tokens - (1 if response.finish_reason == "stop" else 0)
    answer_tokens = [lp for lp in response.logprobs if lp.offset >= 0]
    offsets = [lp.offset for lp in answer_tokens]
    assert offsets == sorted(offsets)
    for lp in answer_tokens:
        if "\ufffd" not in lp.token and lp.token.strip():
            assert response.text[lp.offset : lp.offset + len(lp.token.strip())] in lp.token


def test_decode_answer_splits_thought_with_exact_offsets(tiny_backend):
    tokenizer = tiny_backend.tokenizer
    raw = '<|channel>thought\nlook left<channel|>[{"box_2d": [1, 2, 3, 4], "label": "cat"}]'
    ids = tokenizer(raw, add_special_tokens=False)["input_ids"]
    decoded = decode_answer(
        ids,
        lambda chunk: tokenizer.decode(chunk, skip_special_tokens=False),
        set(tokenizer.all_special_ids),
        tiny_backend._channel_open,
        tiny_backend._channel_close,
    )
    assert decoded.text == '[{"box_2d": [1, 2, 3, 4], "label": "cat"}]'
    assert decoded.thought == "look left"
    rebuilt = "".join(text for text, offset in zip(decoded.token_texts, decoded.token_offsets) if offset >= 0)
    assert rebuilt == decoded.text
    for text, offset in zip(decoded.token_texts, decoded.token_offsets):
        if offset >= 0:
            assert decoded.text[offset : offset + len(text)] == text


def test_split_thought_on_text():
    assert split_thought("<|channel>thought\nhmm<channel|>answer") == ("answer", "hmm")
    assert split_thought("<|channel>thought\n<channel|>[1]") == ("[1]", None)
    assert split_thought("<|channel>thought\ncut off by the lim") == ("", "cut off by the lim")
    assert split_thought("plain") == ("plain", None)


def test_thinking_switch_reaches_the_prompt(tiny_backend):
    on = GenerationRequest("Detect.", thinking=True, system="Be brief.")
    off = GenerationRequest("Detect.")
    assert "<|think|>" in tiny_backend._render(on) and "Be brief." in tiny_backend._render(on)
    assert "<|think|>" not in tiny_backend._render(off)
    with_image = tiny_backend._render(GenerationRequest("Detect.", images=[images()[0]]))
    assert with_image.index("<|image|>") < with_image.index("Detect.")


def test_video_request_counts_frame_tokens(tiny_backend):
    frames = [Image.new("RGB", (64, 48), (i * 30, 0, 0)) for i in range(8)]
    video = VideoFrames(frames=frames, timestamps=[i * 0.5 for i in range(8)], fps=16.0, duration=4.0, size=(64, 48))
    response = tiny_backend.generate([GenerationRequest("What happens?", video=video, max_new_tokens=2)])[0]
    assert response.ok, response.error
    assert response.image_tokens == 8 * gemma4_soft_tokens(64, 48, 70)


def test_sampling_with_seed_is_reproducible(tiny_backend):
    from vistool.runtime.types import Decoding

    request = GenerationRequest(
        "Describe.", images=[images()[0]], budget=70, max_new_tokens=8, decoding=Decoding(temperature=1.0, top_k=64, seed=3)
    )
    assert tiny_backend.generate([request])[0].text == tiny_backend.generate([request])[0].text


def test_invalid_budget_empty_batch_and_bad_requests(tiny_backend):
    with pytest.raises(BudgetError, match="300.*70, 140, 280, 560, 1120"):
        tiny_backend.generate([GenerationRequest("x", images=[images()[0]], budget=300)])
    with pytest.raises(RequestError, match="empty batch"):
        tiny_backend.generate([])
    with pytest.raises(RequestError, match="max_new_tokens"):
        tiny_backend.generate([GenerationRequest("x", max_new_tokens=0)])


def test_unreadable_model_folder_gives_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        TransformersBackend(str(tmp_path), device="cpu")


def test_missing_hub_model_says_what_to_do():
    with pytest.raises(ModelLoadError, match="make-tiny-model"):
        TransformersBackend("no-such-org/no-such-model-xyz", device="cpu")


def test_tiny_model_is_small_deterministic_and_loads_like_a_checkpoint(tiny_model_dir, tmp_path):
    from vistool.runtime.tiny import make_tiny_model

    size = sum(f.stat().st_size for f in Path(tiny_model_dir).iterdir())
    assert size < 10 * 1024 * 1024
    again = make_tiny_model(tmp_path / "again", seed=0)

    def digest(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert digest(again) == digest(Path(tiny_model_dir))
    assert (again / "tokenizer.json").read_text() == (Path(tiny_model_dir) / "tokenizer.json").read_text()
    other = make_tiny_model(tmp_path / "other", seed=1)
    assert digest(other) != digest(Path(tiny_model_dir))


def test_response_round_trips_through_dict(tiny_backend):
    request = GenerationRequest("Detect.", images=[images()[0]], budget=70, max_new_tokens=4, return_logprobs=True)
    response = tiny_backend.generate([request])[0]
    assert GenerationResponse.from_dict(response.to_dict()) == response
