"""Requests -> processor inputs for any model family, and what the processor made of them.

Everything here reads the family from its profile, never from its name:
  - `render`: the prompt text, through the processor's chat template (media first,
    then text; system turn; thinking switch) or the family's plain format (PaliGemma's
    `<image>` + prefix, Florence-2's task token; `ModelProfile.prompt_format`);
  - `process`: the processor call for a micro-batch, with the family's budget keywords
    (`ModelProfile.processor_kwargs`: Gemma 4's max_soft_tokens, Qwen's pixel range,
    nothing for fixed-size families), video frames with their timestamps and audio;
  - `resized_sizes`: the (W, H) each image was resized to, read from the processor's
    outputs by the family's resize rule (Gemma 4: patch positions, Qwen: image_grid_thw,
    fixed-size families: the processor's size);
  - `token_counts` and `model_inputs`: per-row media / prompt tokens, and the tensors
    `generate` takes (training-only outputs such as `labels` dropped);
  - `check_context`: a prompt plus its answer must fit the model's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vistool.errors import RequestError
from vistool.profiles.base import ModelProfile
from vistool.runtime.types import GenerationRequest

# Processor outputs that only training uses: never passed to `generate`.
TRAINING_ONLY = ("labels",)


def render(request: GenerationRequest, processor: Any, profile: ModelProfile) -> str:
    """Return the processor text of one request.

    Chat families: the processor's chat template over a system turn (when given) and a
    user turn of media parts (images, then the video, then its audio) followed by the
    prompt, with the thinking switch. Plain families: `profile.prompt_format.plain(prompt, images)`.
    """
    if not profile.prompt_format.chat:
        return profile.prompt_format.plain(request.prompt, len(request.images))
    content: list[dict[str, Any]] = [{"type": "image"} for _ in request.images]
    if request.video is not None:
        content.append({"type": "video"})
    if request.audio is not None:
        content.append({"type": "audio"})
    content.append({"type": "text", "text": request.prompt})
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    messages.append({"role": "user", "content": content})
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=request.thinking
    )


def check_format(requests: Sequence[GenerationRequest], profile: ModelProfile) -> None:
    """Refuse what a family's prompt format cannot carry: a system turn or thinking in a
    plain format, a video for a family without video input. Raises RequestError."""
    for index, request in enumerate(requests):
        if not profile.prompt_format.chat and (request.system or request.thinking):
            what = "a system prompt" if request.system else "thinking"
            raise RequestError(
                f"request {index}: model family {profile.name!r} takes a plain task prompt (no chat template), "
                f"so it cannot take {what}"
            )
        if request.video is not None and not profile.video:
            raise RequestError(f"request {index}: model family {profile.name!r} takes no video input")


def _video_inputs(requests: Sequence[GenerationRequest]) -> tuple[list[list[Any]], list[Any]]:
    """Return the frames of each request's video and their `VideoMetadata` (fps, duration, frame indices)."""
    from transformers.video_utils import VideoMetadata

    videos, metadata = [], []
    for request in requests:
        frames = request.video
        fps = frames.fps or 24.0
        videos.append(list(frames.frames))
        metadata.append(
            VideoMetadata(
                total_num_frames=max(1, round(frames.duration * fps)),
                fps=fps,
                duration=frames.duration,
                frames_indices=[round(t * fps) for t in frames.timestamps],
            )
        )
    return videos, metadata


def process(requests: Sequence[GenerationRequest], processor: Any, profile: ModelProfile, dtype: Any = None) -> Any:
    """Run the processor over one micro-batch of requests that share budget and modality.

    Takes the requests, the processor, the family profile and the model's dtype (pixel
    tensors are cast to it here, off the generation thread; None: left as they are).
    Returns the processor outputs (a `BatchFeature`).
    """
    texts = [render(request, processor, profile) for request in requests]
    kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
    if any(request.images for request in requests):
        kwargs["images"] = [list(request.images) for request in requests]
        kwargs["images_kwargs"] = profile.processor_kwargs(requests[0].budget)
    if requests[0].video is not None:
        videos, metadata = _video_inputs(requests)
        kwargs["videos"] = videos
        kwargs["videos_kwargs"] = {"video_metadata": metadata, "do_sample_frames": False, **profile.video_processor_kwargs()}
    if requests[0].audio is not None:
        kwargs["audio"] = [request.audio.samples for request in requests]
        kwargs["audio_kwargs"] = {"sampling_rate": requests[0].audio.sampling_rate}
    inputs = processor(**kwargs)
    if dtype is not None:
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(dtype)
    return inputs


def resized_sizes(
    inputs: Any, requests: Sequence[GenerationRequest], processor: Any, profile: ModelProfile
) -> list[list[tuple[int, int]]]:
    """Return, per request, the (W, H) each of its images was resized to by the processor.

    Read from the processor's outputs by the family's resize rule, so it is what the
    model saw; an empty list per request when the family has no rule or the outputs do
    not say.
    """
    sizes = profile.resize.read_sizes(inputs, processor) if profile.resize is not None else None
    if sizes is None:
        return [[] for _ in requests]
    per_request, cursor = [], 0
    for request in requests:
        per_request.append(list(sizes[cursor : cursor + len(request.images)]))
        cursor += len(request.images)
    return per_request


def token_counts(inputs: Any, processor: Any) -> tuple[list[int], list[int]]:
    """Return per row (image/video tokens, prompt tokens without padding) of processed inputs.

    Counted for the whole micro-batch at once: two reductions and two host copies, not
    two `.item()` calls per row.
    """
    import torch

    input_ids = inputs["input_ids"]
    media_ids = [
        token_id
        for token_id in (getattr(processor, "image_token_id", None), getattr(processor, "video_token_id", None))
        if token_id is not None
    ]
    if media_ids:
        media = torch.isin(input_ids, torch.tensor(media_ids, device=input_ids.device)).sum(dim=1).tolist()
    else:
        media = [0] * input_ids.shape[0]
    return media, inputs["attention_mask"].sum(dim=1).tolist()


def check_context(
    requests: Sequence[GenerationRequest], prompt_tokens: Sequence[int], context_tokens: int | None, encoder_decoder: bool
) -> None:
    """Raise RequestError when a prompt plus its max_new_tokens exceeds the model's context.

    Takes the micro-batch, its prompt tokens per row (`token_counts`), the model's
    context (None or 0: unknown, nothing checked) and whether the prompt and the answer
    each have a context of their own (an encoder-decoder). Checked before `generate`, so
    a prompt far too long for the model (which would also need memory quadratic in its
    length) fails with a reason, not an allocation.
    """
    if not context_tokens:
        return
    for request, tokens in zip(requests, prompt_tokens):
        if (max(tokens, request.max_new_tokens) if encoder_decoder else tokens + request.max_new_tokens) > context_tokens:
            raise RequestError(
                f"the prompt is {tokens} tokens (images included) and max_new_tokens is {request.max_new_tokens}: "
                f"more than the model's context of {context_tokens} tokens; shorten the text, lower the "
                "budget or max_new_tokens"
            )


def model_inputs(inputs: Any, processor: Any, device: str) -> dict[str, Any]:
    """Return the tensors `generate` takes, on `device`: the processor outputs without
    the names it lists as unused and without training-only outputs (`labels`)."""
    dropped = set(getattr(processor, "unused_input_names", ())) | set(TRAINING_ONLY)
    return {
        key: value.to(device, non_blocking=True) if hasattr(value, "to") else value
        for key, value in inputs.items()
        if key not in dropped
    }


def padding_side(model: Any) -> str:
    """The side a batch is padded on: the left for decoder-only models (generation appends
    on the right), the right for encoder-decoders, whose encoder positions count from the
    first token and whose decoder starts every row from the same token."""
    return "right" if getattr(model.config, "is_encoder_decoder", False) else "left"


def generated_start(model: Any, inputs: dict[str, Any]) -> int:
    """Where the generated tokens start in `generate`'s output: after the prompt for a
    decoder-only model; after the decoder's start tokens for an encoder-decoder, whose
    output holds only the decoder sequence."""
    if getattr(model.config, "is_encoder_decoder", False):
        decoder = inputs.get("decoder_input_ids")
        return int(decoder.shape[1]) if decoder is not None else 1
    return int(inputs["input_ids"].shape[1])
