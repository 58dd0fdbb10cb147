"""Per-token log-probabilities of an answer: one token (`TokenLogprob`), all of them in
columns (`TokenLogprobs`), and the compact stored form the answer cache writes.

An answer of ~900 tokens as 900 small objects costs more than parsing it: every
object is tracked by Python's garbage collector, whose older-generation passes then
walk the whole heap (torch included); measured on the realistic-answer benchmark, GC
took 9.3 -> 2.7 ms of 9.3 ms per answer when paused (issue 19). `TokenLogprobs` keeps
four flat lists instead and still reads as a sequence of `TokenLogprob`.

Stored form (`pack` / `unpack`; the list of per-token dicts written by earlier versions
is read too): `{"packed": 1, "count": N, "text": all token texts joined, "logprob":
base64 of little-endian float32 values (float64 when a value is not exactly a float32:
the local backend's values always are, they come from float32 softmaxes), "ints":
base64 of zlib-compressed int32 columns (text length, offset, token id; -1 = no id)}`.
Nothing is rounded: unpacking gives back the same tokens, values, offsets and ids.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np


@dataclass
class TokenLogprob:
    """One generated token of the answer: its text, log-probability and where it starts.

    `offset` is the character offset of the token's first character in the answer text
    (`GenerationResponse.text`); tokens of the removed thinking channel have offset -1.
    `token_id` is the vocabulary id where the backend knows it.
    """

    token: str
    logprob: float
    offset: int
    token_id: int | None = None


class TokenLogprobs(Sequence[TokenLogprob]):
    """The tokens of one answer as columns; a read-only sequence of `TokenLogprob`.

    Takes the token texts, log-probabilities, offsets and vocabulary ids (None: unknown
    for every token), all of the same length. Indexing builds a `TokenLogprob`; the
    columns (`tokens`, `values`, `offsets`, `token_ids`) are for code that reads many.
    Equal to any sequence of the same `TokenLogprob`s.
    """

    __slots__ = ("tokens", "values", "offsets", "token_ids")

    def __init__(
        self,
        tokens: list[str],
        values: list[float],
        offsets: list[int],
        token_ids: list[int | None] | None = None,
    ) -> None:
        if not (len(tokens) == len(values) == len(offsets)) or (token_ids is not None and len(token_ids) != len(tokens)):
            raise ValueError("token log-prob columns differ in length")
        self.tokens = tokens
        self.values = values
        self.offsets = offsets
        self.token_ids = token_ids

    @classmethod
    def from_items(cls, items: Sequence[TokenLogprob]) -> "TokenLogprobs":
        """Return the columns of a sequence of `TokenLogprob`."""
        if isinstance(items, TokenLogprobs):
            return items
        ids = [item.token_id for item in items]
        return cls(
            [item.token for item in items],
            [item.logprob for item in items],
            [item.offset for item in items],
            None if all(token_id is None for token_id in ids) else ids,
        )

    def __len__(self) -> int:
        return len(self.tokens)

    @overload
    def __getitem__(self, index: int) -> TokenLogprob: ...

    @overload
    def __getitem__(self, index: slice) -> "TokenLogprobs": ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            ids = None if self.token_ids is None else self.token_ids[index]
            return TokenLogprobs(self.tokens[index], self.values[index], self.offsets[index], ids)
        token_id = None if self.token_ids is None else self.token_ids[index]
        return TokenLogprob(self.tokens[index], self.values[index], self.offsets[index], token_id)

    def __iter__(self) -> Iterator[TokenLogprob]:
        ids = self.token_ids if self.token_ids is not None else [None] * len(self.tokens)
        for token, value, offset, token_id in zip(self.tokens, self.values, self.offsets, ids):
            yield TokenLogprob(token, value, offset, token_id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TokenLogprobs):
            return (
                self.tokens == other.tokens
                and self.values == other.values
                and self.offsets == other.offsets
                and self._ids() == other._ids()
            )
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable columns

    def __repr__(self) -> str:
        return f"TokenLogprobs({len(self)} tokens)"

    def _ids(self) -> list[int | None]:
        return self.token_ids if self.token_ids is not None else [None] * len(self.tokens)

    def to_list(self) -> list[dict[str, Any]]:
        """Return one dict per token (token, logprob, offset, token_id): the readable JSON form."""
        return [
            {"token": token, "logprob": value, "offset": offset, "token_id": token_id}
            for token, value, offset, token_id in zip(self.tokens, self.values, self.offsets, self._ids())
        ]

    def pack(self) -> dict[str, Any]:
        """Return the compact stored form (module docstring); `unpack` reverses it exactly."""
        values = np.asarray(self.values, dtype=np.float64)
        narrow = values.astype(np.float32)
        exact = bool(np.array_equal(narrow.astype(np.float64), values, equal_nan=True))
        ids = [-1 if token_id is None else token_id for token_id in self._ids()]
        ints = np.array([[len(token) for token in self.tokens], self.offsets, ids], dtype="<i4").reshape(-1)
        return {
            "packed": 1,
            "count": len(self),
            "text": "".join(self.tokens),
            "dtype": "<f4" if exact else "<f8",
            "logprob": base64.b64encode((narrow if exact else values).astype("<f4" if exact else "<f8").tobytes()).decode(),
            "ints": base64.b64encode(zlib.compress(ints.tobytes(), 6)).decode(),
            "ids": self.token_ids is not None,
        }

    @classmethod
    def unpack(cls, data: dict[str, Any]) -> "TokenLogprobs":
        """Rebuild from `pack`'s form; raises ValueError when it is not one."""
        try:
            count = int(data["count"])
            values = np.frombuffer(base64.b64decode(data["logprob"]), dtype=data["dtype"]).astype(np.float64)
            ints = np.frombuffer(zlib.decompress(base64.b64decode(data["ints"])), dtype="<i4").reshape(3, count)
            text = data["text"]
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ValueError(f"not a packed token log-prob record: {exc}") from exc
        if len(values) != count:
            raise ValueError("packed token log-probs: value count differs from token count")
        lengths = ints[0].tolist()
        tokens, cursor = [], 0
        for length in lengths:
            tokens.append(text[cursor : cursor + length])
            cursor += length
        if cursor != len(text):
            raise ValueError("packed token log-probs: token lengths do not add up to the text")
        ids = ints[2].tolist() if data.get("ids") else None
        return cls(tokens, values.tolist(), ints[1].tolist(), [None if i < 0 else i for i in ids] if ids else ids)


def read_logprobs(data: Any) -> TokenLogprobs | None:
    """Return the token log-probs of a stored response: packed, a list of dicts (older caches), or None."""
    if data is None:
        return None
    if isinstance(data, dict):
        return TokenLogprobs.unpack(data)
    return TokenLogprobs.from_items([item if isinstance(item, TokenLogprob) else TokenLogprob(**item) for item in data])
