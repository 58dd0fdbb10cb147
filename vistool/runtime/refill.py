"""Row refilling: a row that finishes leaves the running batch and the next requests take its place.

A static batch decodes until its longest answer ends, so with real answer lengths much
of every step is spent on rows that have finished (issue 19: about 40% of decode slots
at batch 8-128 with replayed detection answers). Here requests join the running batch
in groups (`Cohort`s) and leave it one by one:

  - each group is prepared by transformers' own `generate` (its inputs, positions,
    cache, logits processors and stopping criteria: the model's generation config and
    vistool's controls) through its `custom_generate` hook, which hands the prepared
    state over instead of decoding (`prepare_generate`);
  - the group's prompt is prefilled on its own, then its rows are stacked onto the
    running batch, the shorter side padded on the left (vistool.runtime.kv_rows);
  - every step is one forward pass over all running rows; each group then runs its own
    logits processors and stopping criteria over its own token ids, exactly as its own
    `generate` call would (a finished row gets the pad token, as there);
  - a finished row leaves the batch at once (its cache rows are dropped, and columns
    no remaining row needs are trimmed), so nothing is computed for it any more;
  - a group is complete when all its rows have finished: its sequences come out as
    `generate` would have returned them for that group alone.

So a group's tokens are the tokens its own `generate` call produces, up to the rounding
of a different batch shape. `RowRefiller` knows nothing of requests or responses: the
caller (vistool.runtime.transformers_refill) starts groups and receives finished ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vistool.runtime import kv_rows

# Per-token inputs that `generate` carries from step to step, and how it extends them by one token:
# "repeat" the last column (token types) or "zero" (the multimodal token type of generated text).
_CARRIED = {"token_type_ids": "repeat", "mm_token_type_ids": "zero"}
# What a decode step passes on from the prepared keyword arguments (the rest is prefill only).
_DECODE_KEYS = ("logits_to_keep", "use_cache")


class NotRefillable(Exception):
    """The model's prepared generation cannot be refilled (its cache or inputs are of an unsupported kind)."""


def _cache_of(outputs: Any, cache: Any) -> Any:
    """Return the cache a forward pass returned (`cache` itself when the output carries none)."""
    return outputs.get("cache", cache) if hasattr(outputs, "get") else cache


@dataclass
class PreparedGenerate:
    """What `model.generate` prepared for one group of requests, before its decoding loop."""

    input_ids: Any
    processors: Any
    criteria: Any
    config: Any
    model_kwargs: dict[str, Any]


def prepare_generate(model: Any, model_inputs: dict[str, Any], generate_kwargs: dict[str, Any]) -> PreparedGenerate:
    """Run `model.generate`'s preparation for one group and return its state instead of decoding.

    Takes the model, the group's processor tensors (on the model's device) and the
    keyword arguments vistool passes to `generate`. Returns the prepared state
    (transformers calls a callable `custom_generate` with it in place of its own loop).
    """
    captured: list[PreparedGenerate] = []

    def capture(_model: Any, input_ids: Any, logits_processor: Any, stopping_criteria: Any,
                generation_config: Any, **model_kwargs: Any) -> Any:
        captured.append(PreparedGenerate(input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs))
        return input_ids

    model.generate(**model_inputs, **generate_kwargs, custom_generate=capture)
    return captured[0]


@dataclass
class Cohort:
    """One group of rows that joined together: its token ids, controls and progress.

    `ids` are the group's ids as its own `generate` call would hold them (prompt, then
    the tokens chosen so far; finished rows padded), `unfinished` a bool per row,
    `rows` each row's place in the running batch (-1 once it has left), `tag` the
    caller's own record of the group.
    """

    prepared: PreparedGenerate
    tag: Any
    ids: Any
    prompt_length: int
    unfinished: Any
    rows: list[int]
    pad_id: Any
    prefill_seconds: float = 0.0
    joined_at: float = 0.0  # the refiller's share clock when the group joined
    decode_seconds: list[float] = field(default_factory=list)  # per row, its share of the decode steps
    peak_rows: int = 0  # the most rows the batch ran at once while the group was in it

    _indices: Any = None  # (gather, members, rows) for the current `rows`; rebuilt when rows change

    def indices(self, device: Any) -> tuple[Any, Any, Any]:
        """Return (the batch row each member's logits come from, running members, their batch rows).

        A member that has left reads row 0's logits (it only gets the pad token); the last
        two are None when no member runs. Cached until `rows` changes.
        """
        import torch

        if self._indices is None:
            running = [member for member, row in enumerate(self.rows) if row >= 0]
            gather = torch.tensor([max(row, 0) for row in self.rows], device=device)
            if running:
                members = torch.tensor(running, device=device)
                rows = torch.tensor([self.rows[member] for member in running], device=device)
            else:
                members = rows = None
            self._indices = (gather, members, rows)
        return self._indices

    @property
    def generated(self) -> int:
        """Tokens generated so far per row."""
        return int(self.ids.shape[1]) - self.prompt_length

    def choose(self, logits: Any) -> Any:
        """Pick each row's next token from its logits (rows x vocabulary, float32), as `generate` does.

        Runs the group's logits processors and stopping criteria; finished rows get the
        pad token. Returns the chosen tokens (a long tensor, one per row).
        """
        import torch

        scores = logits
        for processor in self.prepared.processors:  # what `LogitsProcessorList` does, without its
            scores = processor(self.ids, scores)  # `inspect.signature` per processor and step (0.1 ms each)
        if self.prepared.config.do_sample:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        if self.pad_id is not None:
            tokens = torch.where(self.unfinished, tokens, self.pad_id)
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=-1)
        self.unfinished = self.unfinished & ~self.prepared.criteria(self.ids, scores)
        return tokens


class RowRefiller:
    """The running batch: a shared cache, mask, positions and next tokens over rows of many groups.

    Takes the model. `start(prepared, tag)` prefills a group and stacks its rows onto the
    batch; `step()` decodes one token for every running row and returns the groups that
    completed. `rows` is how many rows are running. Raises `NotRefillable` from `start`
    for a model whose prepared state this cannot stack (the caller then decodes that
    group with `generate`).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: Any = None
        self.mask: Any = None  # rows x cache length (1: a real token)
        self.positions: Any = None  # (..., rows, 1): the position of each row's next input token
        self.tokens: Any = None  # rows x 1: each row's next input token
        self.carried: dict[str, Any] = {}  # name -> rows x 1 (see _CARRIED)
        self.decode_kwargs: dict[str, Any] = {}
        self.members: list[tuple[Cohort, int]] = []  # per running row: (its group, its row in the group)
        self.cohorts: list[Cohort] = []
        self.clock = 0.0  # sum over steps of step seconds / running rows (each row's fair share)

    @property
    def rows(self) -> int:
        """How many rows are running."""
        return len(self.members)

    # ------------------------------------------------------------- joining
    def start(self, prepared: PreparedGenerate, tag: Any) -> Cohort:
        """Prefill one prepared group, choose its first tokens and stack its running rows onto the batch.

        Returns the group (already complete when every row finished at its first
        token: then it is in neither the batch nor `step`'s results; the caller checks
        `cohort.unfinished`). Raises NotRefillable before prefilling when the prepared
        state is of a kind this cannot stack.
        """
        import torch

        kwargs = dict(prepared.model_kwargs)
        positions = kwargs.get("position_ids")
        cache = kwargs.get("cache")
        if positions is None or cache is None or not kwargs.get("use_cache", True) or not kv_rows.refillable(cache):
            raise NotRefillable("the prepared generation has no position ids or no dynamic cache")
        if self.decode_kwargs and any(self.decode_kwargs.get(k) != kwargs.get(k) for k in _DECODE_KEYS):
            raise NotRefillable("the group's decode settings differ from the running batch's")
        input_ids = prepared.input_ids
        rows, length = int(input_ids.shape[0]), int(input_ids.shape[1])
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones((rows, length), dtype=torch.long, device=input_ids.device)
        start = time.perf_counter()
        model_inputs = self.model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **kwargs)
        with torch.inference_mode():
            outputs = self.model(**model_inputs, return_dict=True)
        cache = _cache_of(outputs, cache)
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32)
        del outputs
        cohort = Cohort(
            prepared, tag, input_ids, length, torch.ones(rows, dtype=torch.bool, device=input_ids.device), [-1] * rows,
            prepared.config._pad_token_tensor, decode_seconds=[0.0] * rows,
        )
        with torch.inference_mode():
            tokens = cohort.choose(logits)
        cohort.prefill_seconds = time.perf_counter() - start
        carried = {}
        for name, rule in _CARRIED.items():
            value = kwargs.get(name)
            if value is not None:
                carried[name] = value[:, -1:] if rule == "repeat" else torch.zeros_like(value[:, -1:])
        running = cohort.unfinished.tolist()
        keep = [row for row, alive in enumerate(running) if alive]
        if keep:
            self._stack(cohort, keep, cache, mask, positions[..., -1:] + 1, tokens[:, None], carried)
            self.decode_kwargs = {key: kwargs[key] for key in _DECODE_KEYS if key in kwargs}
            self.cohorts.append(cohort)
        return cohort

    def _stack(self, cohort: Cohort, keep: list[int], cache: Any, mask: Any, positions: Any, tokens: Any,
               carried: dict[str, Any]) -> None:
        """Stack rows `keep` of a prefilled group (its cache, mask, next positions, tokens) onto the batch."""
        import torch

        if len(keep) < int(mask.shape[0]):
            index = torch.tensor(keep, device=mask.device)
            kv_rows.keep_rows(cache, index)
            mask, tokens = mask[index], tokens[index]
            positions = positions.index_select(positions.dim() - 2, index)
            carried = {name: value[index] for name, value in carried.items()}
        if self.cache is None or not self.members:
            self.cache, self.mask, self.positions, self.tokens, self.carried = cache, mask, positions, tokens, carried
        else:
            if set(carried) != set(self.carried):
                raise NotRefillable("the group's per-token inputs differ from the running batch's")
            ours, theirs = int(self.mask.shape[1]), int(mask.shape[1])
            if theirs < ours:
                kv_rows.pad_left(cache, ours - theirs)
                mask = torch.cat([mask.new_zeros((mask.shape[0], ours - theirs)), mask], dim=1)
            elif ours < theirs:
                kv_rows.pad_left(self.cache, theirs - ours)
                self.mask = torch.cat([self.mask.new_zeros((self.mask.shape[0], theirs - ours)), self.mask], dim=1)
            kv_rows.concat_rows(self.cache, cache)
            self.mask = torch.cat([self.mask, mask], dim=0)
            self.positions = torch.cat([self.positions, positions], dim=positions.dim() - 2)
            self.tokens = torch.cat([self.tokens, tokens], dim=0)
            self.carried = {name: torch.cat([self.carried[name], value], dim=0) for name, value in carried.items()}
        for row in keep:
            cohort.rows[row] = len(self.members)
            self.members.append((cohort, row))
        cohort._indices = None
        cohort.joined_at = self.clock
        for running in [*self.cohorts, cohort]:  # the batch grows only here
            running.peak_rows = max(running.peak_rows, len(self.members))

    # ------------------------------------------------------------- decoding
    def step(self, progress: Callable[[int, int], None] | None = None) -> list[Cohort]:
        """Decode one token for every running row; return the groups that completed at this step.

        Rows that finished leave the batch before the next step. `progress`, when
        given, is called with (tokens generated, token limit) of the oldest running group.
        """
        import torch

        if not self.members:
            return []
        start = time.perf_counter()
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        model_inputs = self.model.prepare_inputs_for_generation(
            self.tokens, next_sequence_length=1, cache=self.cache, attention_mask=self.mask,
            position_ids=self.positions, **self.carried, **self.decode_kwargs,
        )
        with torch.inference_mode():
            outputs = self.model(**model_inputs, return_dict=True)
            self.cache = _cache_of(outputs, self.cache)
            logits = outputs.logits[:, -1].to(dtype=torch.float32)
            del outputs
            self.positions = self.positions + 1
            for cohort in self.cohorts:
                gather, members, rows = cohort.indices(logits.device)
                tokens = cohort.choose(logits.index_select(0, gather))
                if rows is not None:
                    self.tokens[rows, 0] = tokens.index_select(0, members)
            alive = torch.cat([cohort.unfinished for cohort in self.cohorts]).tolist()  # the step's one host sync
        seconds = time.perf_counter() - start
        self.clock += seconds / len(self.members)
        cursor, leaving = 0, []
        for cohort in self.cohorts:
            for member, row in enumerate(cohort.rows):
                if row >= 0 and not alive[cursor + member]:
                    leaving.append(row)
                    cohort.decode_seconds[member] = self.clock - cohort.joined_at
            cursor += len(cohort.rows)
        if progress is not None and self.cohorts:
            oldest = self.cohorts[0]
            progress(oldest.generated, int(oldest.prepared.config.max_new_tokens or 0))
        if not leaving:
            return []
        self._leave(set(leaving))
        finished = [cohort for cohort in self.cohorts if not any(row >= 0 for row in cohort.rows)]
        self.cohorts = [cohort for cohort in self.cohorts if any(row >= 0 for row in cohort.rows)]
        return finished

    def _leave(self, rows: set[int]) -> None:
        """Drop the finished `rows` from the batch, then the columns no remaining row needs."""
        import torch

        kept = [row for row in range(len(self.members)) if row not in rows]
        for row in rows:
            cohort, member = self.members[row]
            cohort.rows[member] = -1
            cohort._indices = None
        if not kept:
            self.cache = self.mask = self.positions = self.tokens = None
            self.carried, self.members = {}, []
            return
        index = torch.tensor(kept, device=self.mask.device)
        kv_rows.keep_rows(self.cache, index)
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(self.positions.dim() - 2, index)
        self.tokens = self.tokens.index_select(0, index)
        self.carried = {name: value.index_select(0, index) for name, value in self.carried.items()}
        self.members = [self.members[row] for row in kept]
        for new_row, (cohort, member) in enumerate(self.members):
            cohort.rows[member] = new_row
        for cohort in self.cohorts:
            cohort._indices = None
        # Columns on the left that every remaining row masks: the padding of rows that left.
        unused = int(self.mask.cumsum(dim=1).eq(0).sum(dim=1).min())
        unused = min(unused, int(self.mask.shape[1]) - 1)
        if unused > 0:
            kv_rows.trim_left(self.cache, unused)
            self.mask = self.mask[:, unused:]


__all__ = ["Cohort", "NotRefillable", "PreparedGenerate", "RowRefiller", "prepare_generate"]
