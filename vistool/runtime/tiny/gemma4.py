"""A tiny random-weight Gemma 4 that works offline, for tests and for trying the pipeline.

It is a real `Gemma4ForConditionalGeneration` with real Gemma 4 image and video
processors, a small BPE tokenizer trained on the spot that carries Gemma 4's special
tokens, and a chat template that renders the Gemma 4 turn format (images and video
frames before the text, the thinking switch in the system turn). It is saved with
`save_pretrained` and loaded back with `from_pretrained`, exactly like a downloaded
checkpoint. Its answers are noise; its shapes, token counts and budgets are real.
"""

from __future__ import annotations

from pathlib import Path

from vistool.runtime.tiny.checkpoint import save_checkpoint
from vistool.runtime.tiny.tokenizer import fast_tokenizer

# The Gemma 4 special tokens the processor and chat template rely on (DESIGN.md section 2).
PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
TURN_OPEN, TURN_CLOSE = "<|turn>", "<turn|>"
IMAGE_OPEN, IMAGE_CLOSE, IMAGE_SOFT = "<|image>", "<image|>", "<|image|>"
VIDEO_SOFT = "<|video|>"
AUDIO_OPEN, AUDIO_CLOSE, AUDIO_SOFT = "<|audio>", "<audio|>", "<|audio|>"
THINK = "<|think|>"
CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"

SPECIAL_TOKENS = [
    PAD, EOS, BOS, UNK,
    TURN_OPEN, TURN_CLOSE,
    IMAGE_OPEN, IMAGE_CLOSE, IMAGE_SOFT, VIDEO_SOFT,
    AUDIO_OPEN, AUDIO_CLOSE, AUDIO_SOFT,
    THINK, CHANNEL_OPEN, CHANNEL_CLOSE,
]

# Gemma 4 turn format. Media parts are rendered before text parts within a turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set system_text = namespace(value='') -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set system_text.value = messages[0]['content'] -%}"
    "{%- else -%}{%- for part in messages[0]['content'] if part['type'] == 'text' -%}"
    "{%- set system_text.value = system_text.value + part['text'] -%}{%- endfor -%}{%- endif -%}"
    "{%- endif -%}"
    "{%- if enable_thinking or system_text.value -%}"
    "{{ '<|turn>system\\n' }}{%- if enable_thinking -%}{{ '<|think|>' }}{%- endif -%}"
    "{{ system_text.value }}{{ '<turn|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<|turn>' + role + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{{ '<|image|>' }}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'video' -%}{{ '<|video|>' }}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'audio' -%}{{ '<|audio|>' }}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<turn|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|turn>model\\n' }}{%- endif -%}"
)

# Text the tokenizer is trained on: the vocabulary of vistool's prompts and answers.
_CORPUS = [
    'What\'s the bounding box for the "view recipe" element in the image?',
    'Detect every person, car, bicycle, dog, cat, bus, truck, chair, bottle and cup.',
    'Return a JSON list: [{"box_2d": [y1, x1, y2, x2], "label": "name"}] on a 0-1000 scale.',
    '```json\n[{"box_2d": [171, 75, 245, 308], "label": "view recipe element"}]\n```',
    '{"point_2d": [512, 384], "label": "button"} {"text": "Submit", "type": "button"}',
    "Describe the image in one sentence. Read all the text in the image.",
    "Point to each object and count them. When does the event happen in the video?",
    "0123456789 ,.:;!?'\"()[]{}<>-_+=*/\\|@#$%^&~` abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ thought answer model user system",
]


def _build_processor(vocab_size: int):
    """Return a real `Gemma4Processor` around a freshly trained tokenizer."""
    from transformers import Gemma4AudioFeatureExtractor, Gemma4ImageProcessor, Gemma4Processor, Gemma4VideoProcessor

    tokenizer = fast_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=vocab_size,
        corpus=_CORPUS,
        roles={"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK},
        named={
            "image_token": IMAGE_SOFT,
            "boi_token": IMAGE_OPEN,
            "eoi_token": IMAGE_CLOSE,
            "audio_token": AUDIO_SOFT,
            "boa_token": AUDIO_OPEN,
            "eoa_token": AUDIO_CLOSE,
        },
    )
    return Gemma4Processor(
        feature_extractor=Gemma4AudioFeatureExtractor(),
        image_processor=Gemma4ImageProcessor(max_soft_tokens=280),
        tokenizer=tokenizer,
        video_processor=Gemma4VideoProcessor(max_soft_tokens=70),
        chat_template=CHAT_TEMPLATE,
        image_seq_length=280,
    )


def _tiny_audio_config():
    """Return a tiny `Gemma4AudioConfig` (the conformer audio tower of E2B/E4B, shrunk)."""
    from transformers import Gemma4AudioConfig

    return Gemma4AudioConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        subsampling_conv_channels=[128, 4],  # the first must be 128: the encoder sizes its projection by it (the mel bins)
        conv_kernel_size=5,
        attention_chunk_size=12,
        attention_context_left=13,
        attention_context_right=0,
        output_proj_dims=32,
    )


def _tiny_config(tokenizer, audio: bool = False):
    """Return a `Gemma4Config` a few hundred thousand parameters big, ids wired to `tokenizer`
    (with a tiny audio tower when `audio`)."""
    from transformers import Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

    vocab = len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    text = Gemma4TextConfig(
        vocab_size=vocab,
        vocab_size_per_layer_input=vocab,
        hidden_size=64,
        hidden_size_per_layer_input=8,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        global_head_dim=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=128,
        max_position_embeddings=8192,
        pad_token_id=ids(PAD),
        eos_token_id=[ids(EOS), ids(TURN_CLOSE)],
        bos_token_id=ids(BOS),
    )
    vision = Gemma4VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        patch_size=16,
        pooling_kernel_size=3,
        position_embedding_size=1024,
    )
    return Gemma4Config(
        text_config=text,
        vision_config=vision,
        audio_config=_tiny_audio_config() if audio else None,
        image_token_id=ids(IMAGE_SOFT),
        video_token_id=ids(VIDEO_SOFT),
        boi_token_id=ids(IMAGE_OPEN),
        eoi_token_id=ids(IMAGE_CLOSE),
        audio_token_id=ids(AUDIO_SOFT),
        boa_token_id=ids(AUDIO_OPEN),
        eoa_token_index=ids(AUDIO_CLOSE),
    )


def make_tiny_gemma4(path: str | Path, seed: int = 0, vocab_size: int = 512, audio: bool = False) -> Path:
    """Build the tiny random Gemma 4 and save model + processor to `path`.

    Takes the output folder (created if needed), a seed (same seed, same weights and
    tokenizer), the BPE vocabulary size and whether to give it an audio tower (like
    E2B/E4B, which hear; off by default). Returns the folder, loadable with
    `AutoProcessor.from_pretrained` / `AutoModelForImageTextToText.from_pretrained`.
    """
    import torch
    from transformers import Gemma4ForConditionalGeneration, GenerationConfig

    processor = _build_processor(vocab_size)
    config = _tiny_config(processor.tokenizer, audio=audio)
    torch.manual_seed(seed)
    model = Gemma4ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    meta = {"family": "gemma4", "seed": seed, "vocab_size": vocab_size, "audio": audio}
    return save_checkpoint(model, processor, path, meta)
