"""A tiny random-weight PaliGemma 2 that works offline.

The real classes: `PaliGemmaForConditionalGeneration` over a Gemma 2 text model and a
SigLIP vision tower, `PaliGemmaProcessor` with the real `SiglipImageProcessor` (every
image resized to a fixed 224 x 224, 256 image tokens: (224 / 14)^2), a small BPE
tokenizer with Gemma's special tokens and `<image>`, plus the 1024 `<locNNNN>` and 128
`<segNNN>` tokens the processor adds. PaliGemma has no chat template: the prompt is a
plain task prefix ("detect cat ; dog", "caption en"), which the processor turns into
`<image> x 256 <bos> PREFIX \\n`.
"""

from __future__ import annotations

from pathlib import Path

from vistool.runtime.tiny.checkpoint import save_checkpoint
from vistool.runtime.tiny.tokenizer import fast_tokenizer

PAD, EOS, BOS, UNK, IMAGE = "<pad>", "<eos>", "<bos>", "<unk>", "<image>"
IMAGE_SIZE, PATCH = 224, 14


def make_tiny_paligemma2(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build a tiny random PaliGemma 2 (224 px, 256 image tokens) and save it to `path`.

    Takes the output folder, a seed (same seed, same checkpoint) and the BPE vocabulary
    size (before the location and segmentation tokens). Returns the folder.
    """
    import torch
    from transformers import (
        Gemma2Config,
        GenerationConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    tokenizer = fast_tokenizer(
        [PAD, EOS, BOS, UNK, IMAGE],
        vocab_size=vocab_size,
        roles={"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK},
        named={"image_token": IMAGE},
    )
    image_tokens = (IMAGE_SIZE // PATCH) ** 2
    image_processor = SiglipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        image_seq_length=image_tokens,
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <loc>/<seg> tokens
    ids = tokenizer.convert_tokens_to_ids
    text = Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, sliding_window=128, max_position_embeddings=8192,
        pad_token_id=ids(PAD), eos_token_id=ids(EOS), bos_token_id=ids(BOS),
    )
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        patch_size=PATCH, image_size=IMAGE_SIZE, vision_use_head=False,
    )
    config = PaliGemmaConfig(
        text_config=text, vision_config=vision, image_token_index=ids(IMAGE), vocab_size=len(tokenizer),
        projection_dim=64, hidden_size=64,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=ids(EOS), pad_token_id=ids(PAD), do_sample=False
    )
    return save_checkpoint(model, processor, path, {"family": "paligemma2", "seed": seed, "vocab_size": vocab_size})
