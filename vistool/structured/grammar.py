"""Constrained decoding on the local backend: xgrammar token masks as a transformers logits processor.

Why xgrammar (tried side by side with llguidance on transformers 5.24 / torch 2.14.1, the
tiny model, batches of 1 and 8 with left padding and the log-prob recorder; figures in
eval/bench_structured.py): both produce correct per-row masks, but xgrammar builds its
tokenizer table 8x faster (0.27 s against 2.1 s on the tiny tokenizer), applies masks
with its own CPU and CUDA kernels (llguidance's torch helper compiles one with
`torch.compile` on first use), and writes JSON with the separators Gemma 4's published
answers use (`", "`, `": "`); vLLM and SGLang use it for `response_format`, so a local
run and a served one are constrained alike.

`GrammarCompiler` compiles JSON schemas for one tokenizer (xgrammar caches them).
`AnswerConstraint` is the logits processor of one micro-batch. Per row it holds:
  - an optional grammar (rows without one are left free);
  - for thinking rows, the thought channel: at the first step the channel opener is
    allowed besides the grammar's first tokens; inside the channel nothing is masked
    (the thought is free) until its budget is spent, when only the channel closer is
    allowed; the grammar starts once the channel closes.
It reads the previous step's tokens (one host copy per step, as any CPU grammar engine
must) and masks the logits in place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

ENGINE = "xgrammar"

# Row states.
_START, _THOUGHT, _ANSWER = 0, 1, 2


def engine_version() -> str | None:
    """Return "xgrammar <version>", or None when xgrammar cannot be imported."""
    try:
        import xgrammar  # noqa: F401
    except Exception:  # a missing or broken install: structured generation falls back to free
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{ENGINE} {version('xgrammar')}"
    except PackageNotFoundError:  # pragma: no cover - an unpackaged checkout
        return ENGINE


class GrammarCompiler:
    """Compiles JSON schemas into xgrammar grammars for one tokenizer.

    Takes the Hugging Face tokenizer, the model's vocabulary size (its logits' width,
    which may exceed the tokenizer's) and the ids that end an answer. Compiled grammars
    are cached by schema.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: Sequence[int]) -> None:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids))
        self._compiler = xgr.GrammarCompiler(info)
        self._cache: dict[str, Any] = {}
        self.vocab_size = vocab_size

    def compile(self, schema: dict[str, Any]) -> Any:
        """Return the compiled grammar of a JSON schema (one line, `", "` and `": "` separators)."""
        key = json.dumps(schema, sort_keys=True)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)
            self._cache[key] = compiled
        return compiled


def _signed_bit(bit: int) -> int:
    """Return 1 << bit as a signed 32-bit value (the bitmask's dtype)."""
    value = 1 << bit
    return value - (1 << 32) if value >= 1 << 31 else value


class AnswerConstraint:
    """The logits processor of one micro-batch: a grammar per row, a free thought before it.

    Takes, per row, a compiled grammar or None, whether the row thinks first, and the
    thought's token budget (None: unlimited); the ids of the thought channel's opener and
    closer (None when the vocabulary has none: thinking rows then start with the grammar),
    the vocabulary size, and the ids a constrained answer may never hold (special
    tokens other than the stop tokens: a grammar engine sees `<|channel>` as the text
    "<|channel>", fine inside a JSON string, yet the model's decoder reads it as the
    start of a thought). After generation, `thought_capped` says which rows had their
    thought closed at the budget and `abandoned` which rows left the grammar (a token it
    refused, e.g. one forced by another processor), with the reason.
    """

    def __init__(
        self,
        grammars: Sequence[Any | None],
        thinking: Sequence[bool],
        thought_budgets: Sequence[int | None],
        channel_open: int | None,
        channel_close: int | None,
        vocab_size: int,
        blocked_ids: Sequence[int] = (),
    ) -> None:
        import torch
        import xgrammar as xgr

        self._xgr = xgr
        rows = len(grammars)
        self.matchers = [xgr.GrammarMatcher(grammar) if grammar is not None else None for grammar in grammars]
        can_think = channel_open is not None and channel_close is not None
        self.state = [_START if think and can_think else _ANSWER for think in thinking]
        self.budgets = list(thought_budgets)
        self.thought_tokens = [0] * rows
        self.thought_capped = [False] * rows
        self.abandoned: list[str | None] = [None] * rows
        self.channel_open, self.channel_close = channel_open, channel_close
        self.bitmask = xgr.allocate_token_bitmask(rows, vocab_size)
        self.vocab_size = vocab_size
        self._allowed = torch.full_like(self.bitmask[0], -1)  # every token but the blocked ones
        for token in blocked_ids:
            if 0 <= token < vocab_size:
                word, bit = divmod(int(token), 32)
                value = (int(self._allowed[word]) & ~(1 << bit)) & 0xFFFFFFFF
                self._allowed[word] = value - (1 << 32) if value >= 1 << 31 else value
        self._batch = None  # xgrammar's multi-threaded filler, made when a step has several grammar rows
        self._first = True

    def __call__(self, input_ids, scores):
        if self._first:
            self._first = False
        else:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                self._advance(row, token)
        grammar_rows: list[int] = []
        constrained = False
        for row in range(len(self.state)):
            kind = self._prepare(row)
            constrained |= kind != "free"
            if kind == "grammar":
                grammar_rows.append(row)
        if grammar_rows:
            self._fill(grammar_rows)
        if constrained:
            self._apply(scores)
        return scores

    def _advance(self, row: int, token: int) -> None:
        """Move row `row` past the token it just generated."""
        state = self.state[row]
        if state == _START:
            if token == self.channel_open:
                self.state[row] = _THOUGHT
                return
            self.state[row] = state = _ANSWER
        if state == _THOUGHT:
            if token == self.channel_close:
                self.state[row] = _ANSWER
            else:
                self.thought_tokens[row] += 1
            return
        matcher = self.matchers[row]
        if matcher is not None and not matcher.is_terminated() and not matcher.accept_token(token):
            self.abandoned[row] = f"token {token} is outside the grammar; the rest of the answer was generated free"
            self.matchers[row] = None

    def _prepare(self, row: int) -> str:
        """Write the mask of a row that needs no grammar; return "free", "thought" or "grammar" (filled later)."""
        state, matcher, mask = self.state[row], self.matchers[row], self.bitmask[row]
        if state == _THOUGHT:
            budget = self.budgets[row]
            if budget is None or self.thought_tokens[row] < budget:
                mask.fill_(-1)
                return "free"
            self.thought_capped[row] = True
            mask.zero_()
            self._allow(row, self.channel_close)
            return "thought"
        if matcher is None or matcher.is_terminated():
            mask.fill_(-1)
            return "free"
        return "grammar"

    def _fill(self, rows: list[int]) -> None:
        """Fill the grammar masks of `rows` (in parallel threads when there are several), then block special tokens."""
        if len(rows) == 1:
            self.matchers[rows[0]].fill_next_token_bitmask(self.bitmask, rows[0])
        else:
            if self._batch is None:
                self._batch = self._xgr.BatchGrammarMatcher()
            self._batch.batch_fill_next_token_bitmask([self.matchers[row] for row in rows], self.bitmask, rows)
        if len(rows) == len(self.state):
            self.bitmask &= self._allowed
        else:
            for row in rows:
                self.bitmask[row] &= self._allowed
        for row in rows:
            if self.state[row] == _START:
                self._allow(row, self.channel_open)

    def _allow(self, row: int, token: int | None) -> None:
        """Set one token's bit in row `row`'s mask."""
        if token is None or token >= self.vocab_size:
            return
        word = token // 32
        value = (int(self.bitmask[row, word]) | _signed_bit(token % 32)) & 0xFFFFFFFF
        self.bitmask[row, word] = value - (1 << 32) if value >= 1 << 31 else value

    def _apply(self, scores) -> None:
        """Mask `scores` in place (xgrammar's kernels run on CPU and CUDA; others go through the CPU)."""
        device = scores.device
        if device.type in ("cpu", "cuda"):
            self._xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(device, non_blocking=True))
            return
        on_cpu = scores.to("cpu")
        self._xgr.apply_token_bitmask_inplace(on_cpu, self.bitmask)
        scores.copy_(on_cpu.to(device))
