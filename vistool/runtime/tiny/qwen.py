"""Tiny random-weight Qwen2.5-VL and Qwen3-VL checkpoints that work offline.

Each is the family's real transformers classes: `Qwen2_5_VLForConditionalGeneration` /
`Qwen3VLForConditionalGeneration`, `Qwen2_5_VLProcessor` / `Qwen3VLProcessor` with the
real `Qwen2VLImageProcessor` (smart_resize to multiples of patch x merge: 28 px for
Qwen2.5-VL, 32 px for Qwen3-VL) and video processor, a small BPE tokenizer carrying the
Qwen special tokens (`<|im_start|>`, `<|im_end|>`, `<|vision_start|>`, `<|image_pad|>`,
...), and chat templates that render exactly what the published ones render for a
system turn, user turns of images / videos / text and assistant text:

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n      (Qwen2.5-VL's default system turn)
    <|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>PROMPT<|im_end|>\\n
    <|im_start|>assistant\\n

Qwen3-VL's template has no default system turn. The processor expands each
`<|image_pad|>` to (grid_h x grid_w) / merge^2 copies (`image_grid_thw`).
"""

from __future__ import annotations

from pathlib import Path

from vistool.runtime.tiny.checkpoint import save_checkpoint
from vistool.runtime.tiny.tokenizer import fast_tokenizer

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [
    ENDOFTEXT, IM_START, IM_END, "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", VISION_START, VISION_END, "<|vision_pad|>", IMAGE_PAD, VIDEO_PAD,
]
# Qwen3-VL's reasoning markers are ordinary added tokens of its vocabulary.
THINK_TOKENS = ["<think>", "</think>"]

_TURN = (
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{- message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{- part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' }}"
)
_GENERATION_PROMPT = "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' }}{%- endif -%}"
# Qwen2.5-VL: a default system turn when the conversation does not start with one.
QWEN25VL_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}" + _TURN + "{%- endfor -%}" + _GENERATION_PROMPT
)
# Qwen3-VL (Instruct): no default system turn.
QWEN3VL_CHAT_TEMPLATE = "{%- for message in messages -%}" + _TURN + "{%- endfor -%}" + _GENERATION_PROMPT


def _tokenizer(vocab_size: int, think: bool):
    """The Qwen tokenizer: `<|endoftext|>` pads, `<|im_end|>` ends a turn, no BOS."""
    return fast_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=vocab_size,
        roles={"eos_token": IM_END, "pad_token": ENDOFTEXT},
        named={
            "image_token": IMAGE_PAD,
            "video_token": VIDEO_PAD,
            "vision_start_token": VISION_START,
            "vision_end_token": VISION_END,
        },
        plain_tokens=THINK_TOKENS if think else (),
    )


def _text_kwargs(tokenizer) -> dict:
    """Text-model settings both Qwen families share: 2 layers of width 64, M-RoPE over (t, h, w)."""
    ids = tokenizer.convert_tokens_to_ids
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 8192,
        "eos_token_id": ids(IM_END),
        "pad_token_id": ids(ENDOFTEXT),
    }


def _media_ids(tokenizer) -> dict:
    """The multimodal token ids the model config must agree on with the tokenizer."""
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids(IMAGE_PAD),
        "video_token_id": ids(VIDEO_PAD),
        "vision_start_token_id": ids(VISION_START),
        "vision_end_token_id": ids(VISION_END),
    }


def _finish(model, tokenizer, processor, path, family: str, seed: int, vocab_size: int) -> Path:
    """Attach a greedy generation config (stop at `<|im_end|>`) and save."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        eos_token_id=[ids(IM_END), ids(ENDOFTEXT)], pad_token_id=ids(ENDOFTEXT), do_sample=False
    )
    return save_checkpoint(model, processor, path, {"family": family, "seed": seed, "vocab_size": vocab_size})


def make_tiny_qwen25vl(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build a tiny random Qwen2.5-VL (patch 14, merge 2: images resized to multiples of 28) at `path`.

    Takes the output folder, a seed (same seed, same checkpoint) and the BPE vocabulary
    size. Returns the folder. The image processor keeps Qwen2.5-VL's published pixel
    range (min_pixels 3136, max_pixels 12845056).
    """
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLVisionConfig,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _tokenizer(vocab_size, think=False)
    image_processor = Qwen2VLImageProcessor(
        patch_size=14, merge_size=2, temporal_patch_size=2, size={"shortest_edge": 3136, "longest_edge": 12845056}
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN25VL_CHAT_TEMPLATE,
    )
    text = Qwen2_5_VLTextConfig(
        **_text_kwargs(tokenizer), rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 1e6}
    )
    vision = Qwen2_5_VLVisionConfig(
        depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
        patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[0],
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **_media_ids(tokenizer))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    return _finish(model, tokenizer, processor, path, "qwen25vl", seed, vocab_size)


def make_tiny_qwen3vl(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build a tiny random Qwen3-VL (patch 16, merge 2: images resized to multiples of 32) at `path`.

    Takes the output folder, a seed and the BPE vocabulary size. Returns the folder.
    The image processor keeps Qwen3-VL's published pixel range (shortest_edge 65536,
    longest_edge 16777216) and its 0.5 mean / std normalisation.
    """
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLTextConfig,
        Qwen3VLVideoProcessor,
        Qwen3VLVisionConfig,
    )

    tokenizer = _tokenizer(vocab_size, think=True)
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": 65536, "longest_edge": 16777216}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(),
        chat_template=QWEN3VL_CHAT_TEMPLATE,
    )
    text = Qwen3VLTextConfig(
        **_text_kwargs(tokenizer), head_dim=32,
        rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6], "mrope_interleaved": True, "rope_theta": 5e6},
    )
    vision = Qwen3VLVisionConfig(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[1],
    )
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **_media_ids(tokenizer))
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    return _finish(model, tokenizer, processor, path, "qwen3vl", seed, vocab_size)
