"""The linear answer decoder gives exactly what prefix decoding gave, on random token sequences.

Three tokenizers: the tiny model's byte-level BPE (its vocabulary holds every single
byte, so random ids split multi-byte characters), a SentencePiece-style one with byte
fallback (Gemma's decoder: `<0x..>` byte tokens grouped and UTF-8 decoded), and the
same with a leading-space strip (Llama 2's decoder, which takes the guarded fallback).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.decode_reference import decode_answer_reference
from vistool.runtime import detokenize
from vistool.runtime.detokenize import TokenPieces, prefix_texts_and_offsets, run_texts_and_offsets
from vistool.runtime.thinking import decode_answer


@functools.lru_cache(maxsize=None)
def byte_level():
    """The tiny Gemma 4's tokenizer (byte-level BPE) as the backend uses it."""
    from vistool.runtime.tiny.gemma4 import _build_processor

    return _build_processor(512).tokenizer


@functools.lru_cache(maxsize=None)
def byte_fallback(strip: bool = False):
    """A SentencePiece-style BPE with byte fallback (Gemma's decoder; with `strip`, Llama 2's)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<|channel>", "<channel|>"]
    pieces += [f"<0x{value:02X}>" for value in range(256)]
    pieces += list("abcdefghijklmnopqrstuvwxyz0123456789[]{}\":,.- ") + ["\u2581", "\u2581the", "\u2581box", "_2d", "é", "猫"]
    pieces += ["\u2581" + word for word in ("cat", "dog", "label", "\u2581")]
    vocab = {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if strip:
        steps.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(steps)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>")
    wrapped.add_special_tokens({"additional_special_tokens": ["<eos>", "<bos>", "<|channel>", "<channel|>"]})
    return wrapped


TOKENIZERS = {"byte_level": byte_level, "byte_fallback": byte_fallback, "strip": lambda: byte_fallback(True)}


def _both(tokenizer, ids: list[int]):
    decode = functools.partial(tokenizer.decode, skip_special_tokens=False)
    special = set(tokenizer.all_special_ids)
    opened = tokenizer.convert_tokens_to_ids("<|channel>")
    closed = tokenizer.convert_tokens_to_ids("<channel|>")
    pieces = TokenPieces(decode, tokenizer.convert_ids_to_tokens)
    new = decode_answer(ids, decode, special, opened, closed, pieces=pieces)
    old = decode_answer_reference(ids, decode, special, opened, closed)
    return new, old


def _ids(tokenizer_name: str, data) -> list[int]:
    tokenizer = TOKENIZERS[tokenizer_name]()
    vocab = len(tokenizer)
    specials = sorted(tokenizer.all_special_ids)
    token = st.one_of(st.integers(0, vocab - 1), st.sampled_from(specials))
    return data.draw(st.lists(token, min_size=1, max_size=60))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(TOKENIZERS)), data=st.data())
def test_linear_decode_equals_prefix_decoding_on_random_ids(name, data):
    tokenizer = TOKENIZERS[name]()
    ids = _ids(name, data)
    new, old = _both(tokenizer, ids)
    assert new == old


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(TOKENIZERS)), text=st.text(min_size=1, max_size=80), cut=st.integers(0, 3))
def test_linear_decode_equals_prefix_decoding_on_encoded_text(name, text, cut):
    """Real tokenisations of arbitrary text (multi-byte characters, emoji), cut anywhere near the end."""
    tokenizer = TOKENIZERS[name]()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = ids[: max(1, len(ids) - cut)]
    new, old = _both(tokenizer, ids)
    assert new == old


def test_split_characters_and_a_realistic_answer_match_exactly():
    """Fixed cases: a detection answer with a thought, CJK and emoji labels, and bytes of one character split apart."""
    tokenizer = byte_level()
    answer = "<|channel>thought\nlook<channel|>```json\n" + json.dumps(
        [{"box_2d": [10, 20, 300, 400], "label": "猫 🐈 café"}, {"box_2d": [1, 2, 3, 4], "label": "dog"}],
        ensure_ascii=False,
    ) + "\n```"
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    new, old = _both(tokenizer, ids)
    assert new == old
    assert new.text.startswith("```json") and new.thought == "look"
    euro = tokenizer("€", add_special_tokens=False)["input_ids"]
    assert len(euro) == 3  # one byte per token: the character is split
    for ids in ([*euro[:1], 40, *euro[1:]], euro[::-1], euro[:-1], [50, *euro, *euro[:1]]):
        new, old = _both(tokenizer, ids)
        assert new == old


def test_a_decoder_that_does_not_concatenate_takes_prefix_decoding():
    """A decoder that rewrites across tokens (WordPiece-style clean-up of " ." and " n't")
    fails the guard, and the run gets the prefix definition itself."""
    tokenizer = byte_level()

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=False).replace(" .", ".").replace(" n't", "n't")

    ids = tokenizer("a . b do n't é .", add_special_tokens=False)["input_ids"]
    pieces = TokenPieces(decode)
    assert detokenize._built(ids, decode(ids), pieces) is None
    assert run_texts_and_offsets(ids, decode(ids), pieces) == prefix_texts_and_offsets(ids, decode(ids), decode)
    for cut in range(1, len(ids)):
        assert run_texts_and_offsets(ids[:cut], decode(ids[:cut]), pieces) == prefix_texts_and_offsets(
            ids[:cut], decode(ids[:cut]), decode
        )


def test_pieces_are_memoised():
    calls = []
    tokenizer = byte_level()

    def decode(ids):
        calls.append(list(ids))
        return tokenizer.decode(ids, skip_special_tokens=False)

    pieces = TokenPieces(decode)
    ids = tokenizer('[{"box_2d": [1, 2, 3, 4], "label": "cat"}]', add_special_tokens=False)["input_ids"]
    run_texts_and_offsets(ids, decode(ids), pieces)
    first = len(calls)
    run_texts_and_offsets(ids, decode(ids), pieces)
    assert len(calls) == first + 1  # only the caller's own decode of the whole run


@pytest.mark.parametrize("family", ["gemma4", "qwen25vl", "qwen3vl", "paligemma2", "florence2"])
def test_every_familys_backend_decodes_like_prefix_decoding(family, tiny_family_backend):
    """The backend's own decoder and memoised pieces on each family's tokenizer: oracle answers in
    the family's format (location tokens included) and random ids give the reference's texts and offsets."""
    from vistool.postprocess.oracle import format_answer
    from vistool.profiles import get_profile

    backend = tiny_family_backend(family)
    tokenizer = backend.tokenizer
    reference_decode = functools.partial(tokenizer.decode, skip_special_tokens=False)
    boxes = np.array([[10.0, 20.0, 300.0, 200.0], [5.0, 6.0, 70.0, 80.0]])
    labels = ["猫 café", "dog 🐈"] if get_profile(family).loc_format is None else ["cat", "dog"]
    answers = [format_answer(family, "boxes", boxes, labels, (640, 480), (644, 476)), "A cat. ", "€uro ✓"]
    rng = np.random.default_rng(0)
    vocab = len(tokenizer)
    sequences = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in answers]
    sequences += [rng.integers(0, vocab, size=int(rng.integers(1, 50))).tolist() for _ in range(40)]
    for ids in sequences:
        new = decode_answer(ids, backend._decode, backend._special_ids, backend._channel_open, backend._channel_close,
                            pieces=backend._pieces)
        old = decode_answer_reference(ids, reference_decode, backend._special_ids, backend._channel_open, backend._channel_close)
        assert new == old, (family, ids)
