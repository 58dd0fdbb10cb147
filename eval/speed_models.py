"""Models and inputs for eval/bench_speed.py: random-weight Gemma 4 of published shapes, mixed-size images.

Split from bench_speed.py (issue 19) to keep each file to one job; see that module's
docstring for what the shapes are and why the tokenizer stays the tiny model's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

# (W, H): VGA both ways, HD, square, a banner, full HD, a tall photo, an extreme strip.
SIZES = [(640, 480), (480, 640), (1280, 720), (512, 512), (1024, 256), (1920, 1080), (800, 1200), (3000, 40)]

# Published Gemma 4 shapes. Sources: google/gemma.cpp PR #919 "Add Gemma 4 E2B and E4B model
# configs" (E2B: 35 layers, width 1536, 4 sliding + 1 global, FFN 6144 (12288 in the
# KV-shared layers: `use_double_wide_mlp`); E4B: 42 layers, width 2560, 5 + 1, FFN 10240;
# head dim 256 sliding / 512 global; window 512; final soft-cap 30; vocabulary 262144),
# the config.json of google/gemma-4-E2B-it as copied in public repositories (1 KV head,
# 20 KV-shared layers, per-layer input width 256) and NVIDIA Megatron-Bridge's Gemma 4
# E4B recipe (8 heads, 2 KV heads, KV shared across the last 18 layers, PLE 256). The
# vision tower (768 wide, 16 layers, 12 heads, 16-px patches pooled 3x3) is the same for
# both and equals transformers' `Gemma4VisionConfig` defaults.
VOCAB = 262_144
SHAPES: dict[str, dict[str, Any]] = {
    "e2b": {
        "text": {
            "hidden_size": 1536,
            "intermediate_size": 6144,
            "num_hidden_layers": 35,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
            "global_head_dim": 512,
            "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
            "sliding_window": 512,
            "num_kv_shared_layers": 20,
            "use_double_wide_mlp": True,
            "hidden_size_per_layer_input": 256,
            "final_logit_softcapping": 30.0,
        },
        "vision": {"use_clipped_linears": True},
    },
    "e4b": {
        "text": {
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 42,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "global_head_dim": 512,
            "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 7,
            "sliding_window": 512,
            "num_kv_shared_layers": 18,
            "use_double_wide_mlp": False,
            "hidden_size_per_layer_input": 256,
            "final_logit_softcapping": 30.0,
        },
        "vision": {"use_clipped_linears": True},
    },
}

def build(shape: str, device: str, dtype: torch.dtype, new_tokens: int) -> tuple[Any, Any]:
    """Return (model, processor) of a random-weight Gemma 4 of `shape` on `device` in `dtype`.

    The model's generation config forces `new_tokens` generated tokens per row.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

    from vistool.runtime.tiny import make_tiny_model

    tiny_dir = make_tiny_model(Path(tempfile.mkdtemp(prefix="vistool-bench-tiny-")))
    processor = AutoProcessor.from_pretrained(tiny_dir)
    if shape == "tiny":
        model = AutoModelForImageTextToText.from_pretrained(tiny_dir, dtype=dtype).to(device)
    else:
        config = _config(shape, processor.tokenizer)
        torch.manual_seed(0)
        from transformers import Gemma4ForConditionalGeneration

        with torch.device(device):
            model = Gemma4ForConditionalGeneration(config)
        model.to(dtype)
        text = config.text_config
        model.generation_config = GenerationConfig(
            bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id
        )
    model.eval()
    model.generation_config.do_sample = False
    model.generation_config.min_new_tokens = new_tokens  # equal work on both sides (module docstring)
    return model, processor


def _config(shape: str, tokenizer: Any) -> Any:
    """Return the `Gemma4Config` of a published shape, special-token ids wired to `tokenizer`."""
    from transformers import Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

    from vistool.runtime import tiny

    ids = tokenizer.convert_tokens_to_ids
    text = Gemma4TextConfig(
        vocab_size=VOCAB,
        vocab_size_per_layer_input=VOCAB,
        pad_token_id=ids(tiny.PAD),
        eos_token_id=[ids(tiny.EOS), ids(tiny.TURN_CLOSE)],
        bos_token_id=ids(tiny.BOS),
        **SHAPES[shape]["text"],
    )
    return Gemma4Config(
        text_config=text,
        vision_config=Gemma4VisionConfig(**SHAPES[shape]["vision"]),
        audio_config=None,
        image_token_id=ids(tiny.IMAGE_SOFT),
        video_token_id=ids(tiny.VIDEO_SOFT),
        boi_token_id=ids(tiny.IMAGE_OPEN),
        eoi_token_id=ids(tiny.IMAGE_CLOSE),
        audio_token_id=ids(tiny.AUDIO_SOFT),
        boa_token_id=ids(tiny.AUDIO_OPEN),
        eoa_token_index=ids(tiny.AUDIO_CLOSE),
    )


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Return `count` random RGB images cycling through `SIZES` (mixed aspect ratios)."""
    rng = np.random.default_rng(seed)
    sizes = [SIZES[i % len(SIZES)] for i in range(count)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
