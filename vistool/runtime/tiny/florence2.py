"""A tiny random-weight Florence-2 that works offline.

The real classes: `Florence2ForConditionalGeneration` (a DaViT vision tower feeding a
BART encoder-decoder), `Florence2Processor` with a `CLIPImageProcessor` that resizes
every image to a fixed 768 x 768 (577 image tokens: 24 x 24 spatial + 1 temporal), and a
small BPE tokenizer with BART's special tokens, `<image>` and the 1000 `<loc_N>`
location tokens. Florence-2 has no chat template: the prompt is a task token (`<OD>`,
`<CAPTION_TO_PHRASE_GROUNDING>cat`, `<OCR_WITH_REGION>`), which the processor turns into
its natural-language prompt and wraps as `<image> x 577 <s> PROMPT </s>` (encoder input);
the decoder starts from `</s>`.
"""

from __future__ import annotations

from pathlib import Path

from vistool.runtime.tiny.checkpoint import save_checkpoint
from vistool.runtime.tiny.tokenizer import fast_tokenizer

BOS, PAD, EOS, UNK, IMAGE = "<s>", "<pad>", "</s>", "<unk>", "<image>"
IMAGE_SIZE = 768
LOC_TOKENS = [f"<loc_{index}>" for index in range(1000)]


def make_tiny_florence2(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build a tiny random Florence-2 (768 px, 577 image tokens) and save it to `path`.

    Takes the output folder, a seed (same seed, same checkpoint) and the BPE vocabulary
    size (before the location tokens). Returns the folder.
    """
    import torch
    from transformers import (
        BartConfig,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
        GenerationConfig,
    )

    tokenizer = fast_tokenizer(
        [BOS, PAD, EOS, UNK, IMAGE],
        vocab_size=vocab_size,
        roles={"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK},
        named={"image_token": IMAGE},
        plain_tokens=LOC_TOKENS,
    )
    spatial = (IMAGE_SIZE // 32) ** 2  # DaViT's four stages downsample by 4 x 2 x 2 x 2
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False, resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        image_seq_length=spatial + 1,
    )
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer, num_additional_image_tokens=0)
    ids = tokenizer.convert_tokens_to_ids
    text = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=1024,
        pad_token_id=ids(PAD), bos_token_id=ids(BOS), eos_token_id=ids(EOS), decoder_start_token_id=ids(EOS),
        forced_eos_token_id=ids(EOS),
    )
    vision = Florence2VisionConfig(
        depths=[1, 1, 1, 1], embed_dim=[8, 16, 32, 64], num_heads=[1, 2, 2, 4], num_groups=[1, 2, 2, 4],
        projection_dim=32, window_size=12, drop_path_rate=0.0,
    )
    config = Florence2Config(text_config=text, vision_config=vision, image_token_id=ids(IMAGE))
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=ids(EOS), pad_token_id=ids(PAD), decoder_start_token_id=ids(EOS),
        forced_bos_token_id=ids(BOS), do_sample=False,  # as Florence-2's published generation config: `<s>` first
    )
    return save_checkpoint(model, processor, path, {"family": "florence2", "seed": seed, "vocab_size": vocab_size})
