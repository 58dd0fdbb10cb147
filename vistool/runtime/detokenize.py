"""Per-token text and character offsets of a run of generated tokens, in linear time.

The exact definition (the one `decode_answer` always had) works on prefixes: with
P_i = decode(ids[:i+1]) and R = decode(ids), token i's text is P_i[len(P_{i-1}):] when
P_i extends P_{i-1} (else decode([id_i])), and it starts at len(P_{i-1}) when R starts
with P_{i-1} (else at len(P_i)). Decoding every prefix is quadratic (issue 19: 752 ms
for 2,048 tokens). Here the prefixes are built instead of decoded:

- a *clean* token's text, once it follows other tokens, is a fixed piece: decode([x, x])
  minus decode([x]) (so first-token rules such as a stripped leading space do not leak
  into it). It is clean when that piece has no U+FFFD, its double decode extends its
  single decode, and it is not a byte-fallback token (`<0x..>`, which the decoder
  groups with its neighbours). Then P_i = P_{i-1} + piece_i.
- consecutive *unclean* tokens (bytes of a multi-byte character split over tokens) form
  a segment whose prefixes are decoded for real, behind one clean token of context
  (a clean token ends whatever byte sequence came before and starts a fresh one), so
  the cost is quadratic only in the segment's length: a few tokens.

The construction is exact for decoders that concatenate per-token bytes and decode
them as UTF-8 (byte-level BPE: GPT-2, Qwen, Florence-2; SentencePiece with byte
fallback: Gemma, PaliGemma). As a guard for any other decoder, the built full text
must equal R; when it does not, the run takes the prefix-decoding definition itself.
tests/test_detokenize.py checks equality with that definition on random token
sequences (hypothesis), for byte-level and byte-fallback tokenizers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat

REPLACEMENT = "\ufffd"
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")

Decode = Callable[[Sequence[int]], str]
_MISSING = object()


def plain_decoder(tokenizer) -> Decode:
    """Return ids -> text (special tokens kept) for a transformers tokenizer, as cheap as it can be.

    For a fast tokenizer whose `_decode` is transformers' own (no subclass override) and
    that does no clean-up of tokenisation spaces, that is the Rust tokenizer's `decode`
    itself: the same text without transformers' per-id type check of the input (a
    generator over every id, about half of the decode time of a 900-token answer).
    Otherwise `tokenizer.decode(ids, skip_special_tokens=False)`.
    """
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # other transformers layouts: the public method
        TokenizersBackend = None  # type: ignore[assignment,misc]
    rust = getattr(tokenizer, "_tokenizer", None)
    if (
        TokenizersBackend is not None
        and isinstance(tokenizer, TokenizersBackend)
        and type(tokenizer)._decode is TokenizersBackend._decode
        and not getattr(tokenizer, "clean_up_tokenization_spaces", False)
        and hasattr(rust, "decode")
    ):
        rust_decode = rust.decode
        return lambda ids: rust_decode(list(ids), skip_special_tokens=False)
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=False)


class TokenPieces:
    """Memoised per-token texts of one tokenizer, for linear-time detokenisation.

    Takes `decode` (ids -> text, special tokens kept) and optionally `token_name`
    (id -> the vocabulary string, e.g. `tokenizer.convert_ids_to_tokens`), used to
    recognise byte-fallback tokens. Entries are filled on first use (two decode calls
    per distinct id), so a long-lived instance makes later answers cost only lookups.
    Safe to share between threads (a racing fill writes the same value twice).
    """

    def __init__(self, decode: Decode, token_name: Callable[[int], str | None] | None = None) -> None:
        self.decode = decode
        self.token_name = token_name
        self._single: dict[int, str] = {}
        self._piece: dict[int, str | None] = {}

    def single(self, token_id: int) -> str:
        """Return decode([token_id])."""
        text = self._single.get(token_id)
        if text is None:
            text = self._single[token_id] = self.decode([token_id])
        return text

    def pieces(self, ids: Sequence[int]) -> list[str | None]:
        """Return `piece` of each id (dictionary lookups; the first sight of an id decodes it)."""
        found = list(map(self._piece.get, ids, repeat(_MISSING, len(ids))))
        if _MISSING in found:
            found = [self.piece(token_id) if value is _MISSING else value for token_id, value in zip(ids, found)]
        return found  # type: ignore[return-value]

    def piece(self, token_id: int) -> str | None:
        """Return the text the token adds after other tokens, or None when it is unclean."""
        try:
            return self._piece[token_id]
        except KeyError:
            pass
        single = self.single(token_id)
        double = self.decode([token_id, token_id])
        piece: str | None = double[len(single) :]
        if REPLACEMENT in double or not double.startswith(single) or self._is_byte_token(token_id):
            piece = None
        self._piece[token_id] = piece
        return piece

    def _is_byte_token(self, token_id: int) -> bool:
        if self.token_name is None:
            return False
        name = self.token_name(token_id)
        return isinstance(name, str) and _BYTE_TOKEN.fullmatch(name) is not None


def run_texts_and_offsets(ids: Sequence[int], run_text: str, pieces: TokenPieces) -> tuple[list[str], list[int]]:
    """Return (text of each token, offset of each token in `run_text`) for one run of tokens.

    Takes the run's ids, `run_text` = decode(ids) and the tokenizer's `TokenPieces`.
    The results are those of the prefix definition (module docstring), computed in
    linear time; offsets are capped at len(run_text).
    """
    clean = pieces.pieces(ids[1:])
    if None not in clean:  # the common case: no character split over tokens
        first = pieces.single(ids[0])
        texts = [first, *clean]  # type: ignore[list-item]
        if first + "".join(clean) == run_text:  # type: ignore[arg-type]
            return texts, [0, *accumulate(map(len, texts[:-1]))]
        return prefix_texts_and_offsets(ids, run_text, pieces.decode, pieces.single)
    built = _built(ids, run_text, pieces)
    return built if built is not None else prefix_texts_and_offsets(ids, run_text, pieces.decode, pieces.single)


def _built(ids: Sequence[int], run_text: str, pieces: TokenPieces) -> tuple[list[str], list[int]] | None:
    """The prefix definition built segment by segment; None when the built text is not `run_text`."""
    decode = pieces.decode
    texts: list[str] = []
    offsets: list[int] = []
    length = 0  # len(P_{i-1}): the built prefix before the current token is run_text[:length] once verified
    chunks: list[str] = []
    index, count = 0, len(ids)
    while index < count:
        token_piece = pieces.piece(ids[index]) if index > 0 else None
        if token_piece is not None:
            texts.append(token_piece)
            offsets.append(length)
            chunks.append(token_piece)
            length += len(token_piece)
            index += 1
            continue
        # A segment: the first token, or unclean tokens; decoded behind one clean token of context.
        end = index + 1
        while end < count and pieces.piece(ids[end]) is None:
            end += 1
        if index == 0:
            context_ids: list[int] = []
            context = ""
        else:
            context_ids = [ids[index - 1]]
            context = pieces.single(ids[index - 1])
        base = length
        previous = ""
        for position in range(index, end):
            local = decode([*context_ids, *ids[index : position + 1]])
            if not local.startswith(context):
                return None
            local = local[len(context) :]
            if local.startswith(previous):
                texts.append(local[len(previous) :])
            else:
                texts.append(pieces.single(ids[position]))
            # R starts with P_{i-1} = P_{segment start} + previous iff this slice of R is `previous`.
            if run_text[base : base + len(previous)] == previous:
                offsets.append(base + len(previous))
            else:
                offsets.append(min(base + len(local), len(run_text)))
            previous = local
        chunks.append(previous)
        length = base + len(previous)
        index = end
    if "".join(chunks) != run_text:
        return None
    return texts, offsets


def prefix_texts_and_offsets(
    ids: Sequence[int], run_text: str, decode: Decode, single: Callable[[int], str] | None = None
) -> tuple[list[str], list[int]]:
    """The prefix definition itself (module docstring): decodes every prefix, quadratic in len(ids).

    Takes the run's ids, `run_text` = decode(ids), `decode` and optionally a memoised
    single-token decode. Returns (texts, offsets) as `run_texts_and_offsets` does.
    """
    single = single or (lambda token_id: decode([token_id]))
    texts: list[str] = []
    offsets: list[int] = []
    previous = ""
    for index in range(len(ids)):
        prefix = decode(ids[: index + 1])
        start = len(previous) if run_text.startswith(previous) else len(prefix)
        texts.append(prefix[len(previous) :] if prefix.startswith(previous) else single(ids[index]))
        offsets.append(min(start, len(run_text)))
        previous = prefix
    return texts, offsets
