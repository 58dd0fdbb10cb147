"""Local generation with Hugging Face transformers (Gemma 4 by default).

Loads a Hub id or a local folder through `AutoProcessor` + `AutoModelForImageTextToText`,
renders each request with the model's chat template, runs batches with left padding and
returns one `GenerationResponse` per request, with token counts, timings, the thinking
channel split off and, on request, per-token log-probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vistool.errors import ModelLoadError, RequestError
from vistool.profiles.base import ModelProfile
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, decode_answer
from vistool.runtime.types import GenerationRequest, GenerationResponse, TokenLogprob

DEFAULT_MODEL = "google/gemma-4-E2B-it"


def pick_device_and_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, Any]:
    """Choose where and in what precision to run.

    Takes an optional device ("cuda", "cuda:1", "mps", "cpu") and dtype name
    ("bfloat16", "float16", "float32"). Returns (device, torch dtype): by default CUDA
    with bfloat16, else Apple MPS with float16, else CPU with float32.
    """
    import torch

    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if dtype is None:
        dtype = {"cuda": "bfloat16", "mps": "float16"}.get(device.split(":")[0], "float32")
    try:
        torch_dtype = getattr(torch, dtype)
    except AttributeError as exc:
        raise RequestError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32") from exc
    return device, torch_dtype


def _load_error(model_id: str, exc: Exception) -> ModelLoadError:
    """Turn a loading exception into one message that says what to do."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(model_id).exists():
        hint = "the folder exists but does not hold a loadable model (config.json, safetensors weights, processor files)"
    else:
        hint = (
            "it is not a local folder, and it could not be fetched from the Hugging Face Hub: check the name, "
            "your network, and for gated models accept the licence and run `hf auth login`. "
            "To try vistool without a download, run `vistool make-tiny-model DIR` and pass `--model DIR`"
        )
    return ModelLoadError(f"cannot load model {model_id!r}: {hint} ({type(exc).__name__}: {reason})")


class _ChosenTokenLogprobs:
    """A logits processor that records the log-probability of each chosen token.

    At step t+1 it reads the token chosen at step t (the last input id) and looks it up
    in the log-softmax it kept from step t, so memory stays one vocabulary row per
    sequence (keeping every step's logits, as `output_logits` does, costs
    steps x batch x vocabulary floats: gigabytes for Gemma 4's 262k vocabulary).
    The distribution is the one the token was chosen from: the model's own for greedy
    decoding, after temperature/top-k/top-p when sampling. Values stay on the device
    until `collect` is called after generation (no host sync in the decode loop).
    """

    def __init__(self) -> None:
        self.previous = None
        self.values: list = []

    def __call__(self, input_ids, scores):
        import torch

        if self.previous is not None:
            self.values.append(self.previous.gather(-1, input_ids[:, -1:]).squeeze(-1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def collect(self, sequences, prompt_length: int) -> list[list[float]]:
        """Return per-row log-probs of the generated tokens in `sequences`."""
        import torch

        generated = sequences.shape[1] - prompt_length
        if self.previous is not None and len(self.values) < generated:
            chosen = sequences[:, prompt_length + len(self.values)].unsqueeze(-1)
            self.values.append(self.previous.gather(-1, chosen).squeeze(-1))
        if not self.values:
            return [[] for _ in range(sequences.shape[0])]
        return torch.stack(self.values[:generated], dim=1).tolist()


@dataclass
class _Prepared:
    """One processor-ready micro-batch and the time it took to build."""

    requests: list[GenerationRequest]
    inputs: Any
    seconds: float


class TransformersBackend:
    """Run a vision-language model locally with transformers.

    Takes a Hub id or local folder (`model_id`), optional device/dtype (auto by default),
    the model family profile (guessed from the id when None), the micro-batch size, and
    the opt-ins `trust_remote_code` and `revision`. Only safetensors weights are loaded.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        profile: ModelProfile | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = str(model_id)
        if profile is None:
            from vistool.profiles import profile_for_model

            profile = profile_for_model(self.model_id)
        self.profile = profile
        self.profile_name = self.profile.name
        self.batch_size = max(1, int(batch_size))
        self.device, self.dtype = pick_device_and_dtype(device, dtype)
        load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_id, **load_kwargs)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=self.dtype, use_safetensors=True, **load_kwargs
            )
        except Exception as exc:  # hub, file-system and format errors all mean "cannot load"
            raise _load_error(self.model_id, exc) from exc
        self.model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self._stop_ids = self._find_stop_ids()
        self._special_ids = set(self.tokenizer.all_special_ids) | {
            token_id for token_id, token in self.tokenizer.added_tokens_decoder.items() if token.special
        }
        self._channel_open = self._token_id(CHANNEL_OPEN)
        self._channel_close = self._token_id(CHANNEL_CLOSE)

    # ----------------------------------------------------------------- helpers
    def _token_id(self, token: str) -> int | None:
        """Return the id of a single special token, or None if the vocabulary lacks it."""
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        return None if token_id is None or token_id == self.tokenizer.unk_token_id else int(token_id)

    def _find_stop_ids(self) -> set[int]:
        """Return the ids that end an answer (the generation config's eos ids)."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos])

    def _render(self, request: GenerationRequest) -> str:
        """Render one request through the chat template (media first, then text)."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in request.images]
        if request.video is not None:
            content.append({"type": "video"})
        content.append({"type": "text", "text": request.prompt})
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
        messages.append({"role": "user", "content": content})
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=request.thinking
        )

    def _prepare(self, requests: list[GenerationRequest]) -> _Prepared:
        """Render and process one micro-batch of requests sharing budget and modality."""
        from transformers.video_utils import VideoMetadata

        start = time.perf_counter()
        texts = [self._render(request) for request in requests]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        budget = requests[0].budget
        if any(request.images for request in requests):
            kwargs["images"] = [list(request.images) for request in requests]
            kwargs["images_kwargs"] = self.profile.processor_kwargs(budget)
        if requests[0].video is not None:
            videos, metadata = [], []
            for request in requests:
                frames = request.video
                kwargs_fps = frames.fps or 24.0
                videos.append([frame for frame in frames.frames])
                metadata.append(
                    VideoMetadata(
                        total_num_frames=max(1, round(frames.duration * kwargs_fps)),
                        fps=kwargs_fps,
                        duration=frames.duration,
                        frames_indices=[round(t * kwargs_fps) for t in frames.timestamps],
                    )
                )
            kwargs["videos"] = videos
            video_kwargs: dict[str, Any] = {"video_metadata": metadata, "do_sample_frames": False}
            if self.profile.budget_kwarg and self.profile.video_budget:
                video_kwargs[self.profile.budget_kwarg] = self.profile.video_budget
            kwargs["videos_kwargs"] = video_kwargs
        inputs = self.processor(**kwargs)
        return _Prepared(requests, inputs, time.perf_counter() - start)

    @staticmethod
    def _group_key(request: GenerationRequest) -> tuple:
        """Requests with the same key can share one `generate` call."""
        return (
            request.budget,
            bool(request.images),
            len(request.images),
            request.video is not None,
            request.max_new_tokens,
            request.decoding,
            request.return_logprobs,
        )

    def _validate(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Check the batch and resolve default budgets; raise RequestError/BudgetError."""
        if not requests:
            raise RequestError("empty batch: give at least one generation request")
        resolved = []
        for index, request in enumerate(requests):
            if not isinstance(request, GenerationRequest):
                raise RequestError(f"request {index} is a {type(request).__name__}, not a GenerationRequest")
            if request.max_new_tokens < 1:
                raise RequestError(f"request {index}: max_new_tokens must be >= 1 (got {request.max_new_tokens})")
            if request.images and request.video is not None:
                raise RequestError(f"request {index}: give images or a video, not both")
            budget = self.profile.check_budget(request.budget)
            resolved.append(request if budget == request.budget else _with_budget(request, budget))
        return resolved

    # ------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate one response per request, batching compatible requests together.

        Takes a non-empty sequence of requests. Returns responses in the same order. A
        micro-batch that fails is retried one request at a time, so a failure affects
        only the request that caused it (its response has `error` set).
        """
        resolved = self._validate(requests)
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(resolved):
            groups.setdefault(self._group_key(request), []).append(index)
        responses: list[GenerationResponse | None] = [None] * len(resolved)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for index, response in zip(chunk, self._generate_safely([resolved[i] for i in chunk])):
                    responses[index] = response
        return [response for response in responses if response is not None]

    def _generate_safely(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """Run a micro-batch; on failure retry each request alone and record its error."""
        try:
            return self._generate_batch(requests)
        except Exception as batch_error:
            if len(requests) == 1:
                message = f"{type(batch_error).__name__}: {batch_error}"
                return [GenerationResponse.failure(message, self._settings(requests[0]))]
            return [self._generate_safely([request])[0] for request in requests]

    def _settings(self, request: GenerationRequest) -> dict[str, Any]:
        """Return the settings a response records: request settings plus model facts."""
        return {
            **request.settings(),
            "model": self.model_id,
            "profile": self.profile_name,
            "backend": "transformers",
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """Run one micro-batch of compatible requests through `model.generate`."""
        import torch

        prepared = self._prepare(requests)
        inputs = prepared.inputs
        image_sizes = self._resized_sizes(inputs, requests)
        model_inputs = {
            key: value.to(self.device) if hasattr(value, "to") else value
            for key, value in inputs.items()
            if key not in getattr(self.processor, "unused_input_names", ())
        }
        if "pixel_values" in model_inputs and model_inputs["pixel_values"].is_floating_point():
            model_inputs["pixel_values"] = model_inputs["pixel_values"].to(self.dtype)
        first = requests[0]
        generate_kwargs: dict[str, Any] = {"max_new_tokens": first.max_new_tokens}
        if first.decoding.greedy:
            generate_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            generate_kwargs.update(
                do_sample=True,
                temperature=first.decoding.temperature,
                top_p=first.decoding.top_p,
                top_k=first.decoding.top_k,
            )
            if first.decoding.seed is not None:
                torch.manual_seed(first.decoding.seed)
        recorder = None
        if first.return_logprobs:
            from transformers import LogitsProcessorList

            recorder = _ChosenTokenLogprobs()
            generate_kwargs["logits_processor"] = LogitsProcessorList([recorder])
        start = time.perf_counter()
        with torch.inference_mode():
            sequences = self.model.generate(**model_inputs, **generate_kwargs)
        generate_seconds = time.perf_counter() - start
        prompt_length = model_inputs["input_ids"].shape[1]
        generated = sequences[:, prompt_length:].tolist()
        logprobs = None if recorder is None else recorder.collect(sequences, prompt_length)
        image_token_ids = {
            token_id
            for token_id in (getattr(self.processor, "image_token_id", None), getattr(self.processor, "video_token_id", None))
            if token_id is not None
        }
        input_ids = inputs["input_ids"]
        attention = inputs["attention_mask"]
        timings = {
            "preprocess_s": prepared.seconds / len(requests),
            "generate_s": generate_seconds / len(requests),
            "batch_size": len(requests),
        }
        responses = []
        for row, request in enumerate(requests):
            image_tokens = int(sum((input_ids[row] == token_id).sum().item() for token_id in image_token_ids))
            responses.append(
                self._response(
                    request,
                    generated[row],
                    None if logprobs is None else logprobs[row],
                    prompt_tokens=int(attention[row].sum().item()),
                    image_tokens=image_tokens,
                    image_sizes=image_sizes[row],
                    timings=dict(timings),
                )
            )
        return responses

    def _response(
        self,
        request: GenerationRequest,
        token_ids: list[int],
        token_logprobs: list[float] | None,
        *,
        prompt_tokens: int,
        image_tokens: int,
        image_sizes: list[tuple[int, int]],
        timings: dict[str, float],
    ) -> GenerationResponse:
        """Build the response of one row: cut at the stop token, decode, split thought."""
        length, finish = len(token_ids), "length"
        for position, token_id in enumerate(token_ids):
            if token_id in self._stop_ids:
                length, finish = position, "stop"
                break
        answer_ids = token_ids[:length]  # padding only ever follows the stop token
        decoded = decode_answer(
            answer_ids,
            lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False),
            self._special_ids,
            self._channel_open,
            self._channel_close,
            with_offsets=token_logprobs is not None,
        )
        logprobs = None
        if token_logprobs is not None:
            logprobs = [
                TokenLogprob(token=text, logprob=float(value), offset=offset, token_id=token_id)
                for text, value, offset, token_id in zip(
                    decoded.token_texts, token_logprobs, decoded.token_offsets, answer_ids
                )
            ]
        return GenerationResponse(
            text=decoded.text,
            raw_text=decoded.raw_text,
            thought=decoded.thought,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            image_tokens=image_tokens,
            generated_tokens=length + (1 if finish == "stop" else 0),
            logprobs=logprobs,
            timings=timings,
            settings=self._settings(request),
            image_sizes=image_sizes,
        )

    def _resized_sizes(self, inputs: Any, requests: list[GenerationRequest]) -> list[list[tuple[int, int]]]:
        """Return, per request, the (W, H) each of its images was resized to by the processor.

        Read from the processor's patch positions (`image_position_ids`, x then y), so it
        is what the model saw, whatever the family's resizing rule.
        """
        positions = inputs.get("image_position_ids")
        if positions is None:
            return [[] for _ in requests]
        patch = int(getattr(self.processor.image_processor, "patch_size", 16))
        sizes: list[tuple[int, int]] = []
        for image_positions in positions:
            valid = image_positions[image_positions[:, 0] >= 0]
            sizes.append((int(valid[:, 0].max()) * patch + patch, int(valid[:, 1].max()) * patch + patch))
        per_request, cursor = [], 0
        for request in requests:
            per_request.append(sizes[cursor : cursor + len(request.images)])
            cursor += len(request.images)
        return per_request


def _with_budget(request: GenerationRequest, budget: int | None) -> GenerationRequest:
    """Return a copy of `request` with its budget resolved."""
    from dataclasses import replace

    return replace(request, budget=budget)
