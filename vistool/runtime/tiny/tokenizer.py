"""The small tokenizer every tiny checkpoint carries, trained on the spot (no download).

A byte-level BPE trained on a corpus of vistool's own prompts and answers (every
family's wording), with the family's special tokens first (ids 0, 1, ...), wrapped as a
transformers fast tokenizer. Byte-level means any text round-trips, so a random model's
noise always decodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Text the tokenizers are trained on: the vocabulary of vistool's prompts and answers, per family.
CORPUS = [
    'What\'s the bounding box for the "view recipe" element in the image?',
    "Detect every person, car, bicycle, dog, cat, bus, truck, chair, bottle and cup.",
    'Return a JSON list: [{"box_2d": [y1, x1, y2, x2], "label": "name"}] on a 0-1000 scale.',
    '```json\n[{"box_2d": [171, 75, 245, 308], "label": "view recipe element"}]\n```',
    '{"point_2d": [512, 384], "label": "button"} {"text": "Submit", "type": "button"}',
    'Locate every instance in the image. Report bbox coordinates in JSON format: [{"bbox_2d": [x1, y1, x2, y2]}]',
    "coordinates relative to 0-1000, absolute pixel coordinates, text_content",
    "detect cat ; dog caption en describe en answer en ocr <loc0512><loc0384> cat ;",
    "Locate the objects with category name in the image. Locate the phrases in the caption:",
    "What is the text in the image, with regions? Describe with a paragraph what is shown in the image.",
    "Describe the image in one sentence. Read all the text in the image.",
    "Point to each object and count them. When does the event happen in the video?",
    "0123456789 ,.:;!?'\"()[]{}<>-_+=*/\\|@#$%^&~` abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ thought answer model user system assistant",
]


def train_bpe(
    special_tokens: Sequence[str],
    vocab_size: int = 512,
    corpus: Sequence[str] = CORPUS,
    unk_token: str | None = None,
) -> Any:
    """Train a byte-level BPE on `corpus` with `special_tokens` first.

    Takes the special tokens (they get ids 0, 1, ... in order), the target vocabulary
    size (the trainer stops earlier when the corpus has no more merges), the corpus and
    the unknown token, if the family has one. Returns a `tokenizers.Tokenizer`.
    Deterministic: same inputs, same vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=unk_token))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus) * 4, trainer=trainer)
    return tokenizer


def fast_tokenizer(
    special_tokens: Sequence[str],
    *,
    vocab_size: int = 512,
    roles: Mapping[str, str],
    named: Mapping[str, str] | None = None,
    plain_tokens: Sequence[str] = (),
    corpus: Sequence[str] = CORPUS,
) -> Any:
    """Return a transformers fast tokenizer trained by `train_bpe`, padding on the left.

    Takes the special tokens, the vocabulary size, the standard roles
    (`bos_token`, `eos_token`, `pad_token`, `unk_token` -> token), the named extra
    special tokens the family's processor reads (e.g. `image_token`), and tokens to add
    as ordinary (not special) added tokens, such as location tokens, which must survive
    decoding with special tokens skipped, and the training corpus.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(special_tokens, vocab_size, corpus, roles.get("unk_token")),
        padding_side="left",
        extra_special_tokens=dict(named or {}),
        **roles,
    )
    if plain_tokens:
        tokenizer.add_tokens(list(plain_tokens))
    return tokenizer
