"""What the local backend adds to `generate` to control an answer: grammar, thought budget, loop stop.

`AnswerControlBuilder` belongs to one backend (one tokenizer, one vocabulary) and builds,
per micro-batch, the `BatchControls`:
  - an `AnswerConstraint` logits processor (vistool.structured.grammar) when some row
    asks for a JSON schema or thinks with a thought budget;
  - a `RepeatStop` stopping criterion (vistool.runtime.repetition) when some row asks to
    stop on a loop.
After generation, `BatchControls.row(i)` says what happened to row i: where the loop stop
ended it, and the settings its response records (`structured`: the engine that
constrained it or "free"; `structured_note`: why not, when it was asked for;
`thought_capped`: the thought was closed at its budget).

The tables these need (which tokens close an item, the grammar compiler) are built on
first use and kept. Nothing here waits on the device inside the decode loop except the
grammar's one host copy of the last tokens per step, which any CPU grammar engine needs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vistool.runtime.repetition import RepeatStop, item_end_tokens
from vistool.runtime.types import GenerationRequest
from vistool.structured import grammar

logger = logging.getLogger(__name__)


@dataclass
class RowControl:
    """What the controls did to one row: the loop stop's step (None: not stopped) and settings to record."""

    repeat_step: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchControls:
    """The controls of one micro-batch (each None when no row needs it) and their per-row records."""

    constraint: grammar.AnswerConstraint | None = None
    repeat_stop: RepeatStop | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)

    def processors(self) -> list[Any]:
        """The logits processors to append (after the log-prob recorder, which sees the model's own distribution)."""
        return [self.constraint] if self.constraint is not None else []

    def criteria(self) -> list[Any]:
        """The stopping criteria to append."""
        return [self.repeat_stop] if self.repeat_stop is not None else []

    def row(self, index: int) -> RowControl:
        """Return what happened to row `index` (call after generation)."""
        settings = dict(self.notes[index]) if index < len(self.notes) else {}
        if self.constraint is not None:
            if self.constraint.thought_capped[index]:
                settings["thought_capped"] = True
            if self.constraint.abandoned[index]:
                settings["structured_note"] = self.constraint.abandoned[index]
        step = None
        if self.repeat_stop is not None:
            value = int(self.repeat_stop.stop_steps[index])
            step = value if value >= 0 else None
        return RowControl(step, settings)


class AnswerControlBuilder:
    """Builds the answer controls of a backend's micro-batches.

    Takes the tokenizer, the model's vocabulary size (its logits' width), the ids that
    end an answer, the special-token ids and the thought channel's opener and closer ids
    (None when the vocabulary has none), and the device.
    """

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int,
        stop_ids: set[int],
        special_ids: set[int],
        channel_open: int | None,
        channel_close: int | None,
        device: str,
    ) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.stop_ids = stop_ids
        self.special_ids = special_ids
        self.channel_open, self.channel_close = channel_open, channel_close
        self.device = device
        self._compiler: grammar.GrammarCompiler | None = None
        self._engine: str | None = None
        self._engine_error: str | None = None
        self._item_end = None

    # ------------------------------------------------------------- tables
    def _grammar_compiler(self) -> grammar.GrammarCompiler | None:
        """Return the grammar compiler (built on first use), or None when the engine is unavailable."""
        if self._compiler is None and self._engine_error is None:
            self._engine = grammar.engine_version()
            if self._engine is None:
                self._engine_error = "xgrammar is not installed (pip install xgrammar): generated free"
                logger.warning("structured generation asked for, but %s", self._engine_error)
            else:
                try:
                    self._compiler = grammar.GrammarCompiler(self.tokenizer, self.vocab_size, self.stop_ids)
                except Exception as exc:  # a tokenizer xgrammar cannot read: generate free, say why
                    self._engine_error = f"xgrammar cannot read this tokenizer ({type(exc).__name__}: {exc}): generated free"
                    logger.warning("structured generation unavailable: %s", self._engine_error)
        return self._compiler

    def _item_end_table(self):
        """Return (building it on first use) the bool tensor of tokens that close an item."""
        if self._item_end is None:
            import torch

            known = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[token_id] for token_id in range(known)], skip_special_tokens=False)
            texts.extend([""] * (max(known, self.vocab_size) - known))
            ends = item_end_tokens(texts, self.special_ids)
            self._item_end = torch.tensor(ends, dtype=torch.bool, device=self.device)
        return self._item_end

    # ------------------------------------------------------------- building
    def build(self, requests: Sequence[GenerationRequest], prompt_length: int) -> BatchControls:
        """Return the controls of one micro-batch (rows in the order of `requests`)."""
        import torch

        controls = BatchControls(notes=[{} for _ in requests])
        grammars = self._grammars(requests, controls.notes)
        budgets = [request.thought_tokens if request.thinking else None for request in requests]
        thinking = [request.thinking for request in requests]
        if any(g is not None for g in grammars) or any(b is not None for b in budgets):
            controls.constraint = grammar.AnswerConstraint(
                grammars,
                thinking,
                budgets,
                self.channel_open,
                self.channel_close,
                self.vocab_size,
                blocked_ids=sorted(self.special_ids - self.stop_ids),
            )
        wants_stop = [request.stop_on_repeat for request in requests]
        if any(wants_stop):
            enabled = torch.tensor(wants_stop, device=self.device)
            controls.repeat_stop = RepeatStop(
                self._item_end_table(),
                enabled,
                prompt_length,
                thinking=torch.tensor(thinking, device=self.device),
                channel_open=self.channel_open,
                channel_close=self.channel_close,
            )
            for note, wanted in zip(controls.notes, wants_stop):
                if wanted:
                    note["stop_on_repeat"] = True
        return controls

    def _grammars(self, requests: Sequence[GenerationRequest], notes: list[dict[str, Any]]) -> list[Any | None]:
        """Compile each row's schema (None for free rows); write what was used into `notes`."""
        grammars: list[Any | None] = []
        for request, note in zip(requests, notes):
            if request.json_schema is None:
                grammars.append(None)
                if request.free_reason:
                    note.update(structured="free", structured_note=request.free_reason)
                continue
            compiler = self._grammar_compiler()
            if compiler is None:
                grammars.append(None)
                note.update(structured="free", structured_note=self._engine_error)
                continue
            try:
                grammars.append(compiler.compile(request.json_schema))
            except Exception as exc:  # a schema the engine refuses: this row goes free, and says why
                grammars.append(None)
                note.update(structured="free", structured_note=f"the grammar engine refused the schema: {exc}")
                continue
            note["structured"] = self._engine
        return grammars
