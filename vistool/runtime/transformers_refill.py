"""The local backend's refilling path: one group of compatible requests decoded with row refilling.

`generate_refilling` takes a group's micro-batches in order (each with its prepared
processor outputs, or the error preparing it raised) and keeps up to `slots` rows
decoding (vistool.runtime.refill): a micro-batch joins as soon as the running rows leave
room for it, and a finished row leaves at once. Each micro-batch's tokens are those its
own `generate` call would produce (the same logits processors and stopping criteria).

Nothing already generated is lost to a failure: a micro-batch that cannot be set up or
prefilled is decoded on the static path (`_generate_static`: one request at a time on
failure, halves on out of memory); a failing decode step sends the micro-batches that
were running there too, and an out-of-memory one halves the slots for the rest. A
model whose prepared state cannot be stacked (`NotRefillable`) turns refilling off for
the backend, with a warning, and the group goes on statically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from vistool.runtime import speed
from vistool.runtime.backend import Answered
from vistool.runtime.refill import Cohort, NotRefillable, RowRefiller, prepare_generate
from vistool.runtime.transformers_batch import batch_responses, setup_batch
from vistool.runtime.types import GenerationRequest

logger = logging.getLogger(__name__)

Chunk = tuple[list[int], Any]  # (request indices, prepared inputs or the exception preparing them raised)


def refill_chunk(slots: int) -> int:
    """Return how many requests join a running batch of `slots` rows at a time: an eighth of it, at least 2
    (1 for a batch of 1 or 2).

    Joining in groups keeps prefills batched and bounds the number of groups running at
    once (each runs its own logits processors and stopping criteria every step: about
    0.3 ms a group on CPU); a slot waits at most until an eighth of the batch has finished.
    """
    return max(1 if slots <= 2 else 2, slots // 8)


def generate_refilling(
    backend: Any, requests: list[GenerationRequest], chunks: Iterable[Chunk], slots: int
) -> Iterator[Answered]:
    """Decode a group's micro-batches with row refilling; yield each micro-batch's (request index, response)
    pairs as soon as all its rows have finished.

    Takes the backend (a `TransformersBackend`), all requests of the `generate` call
    (indexed by the chunks), the group's micro-batches in order and how many rows may
    run at once.
    """
    import torch

    pending = iter(chunks)
    waiting = next(pending, None)
    refiller = RowRefiller(backend.model)
    with torch.inference_mode():
        while waiting is not None or refiller.rows:
            while waiting is not None and (refiller.rows == 0 or refiller.rows + len(waiting[0]) <= slots):
                indices, prepared = waiting
                waiting = next(pending, None)
                if not backend.refill:  # turned off while this group ran: the rest goes statically
                    yield _static(backend, requests, indices, prepared)
                    continue
                answered = _join(backend, refiller, requests, indices, prepared)
                if answered:
                    yield answered
            if not refiller.rows:
                continue
            try:
                done = refiller.step(backend.progress)
            except Exception as error:  # the step of every running group failed: decode those statically
                running = list(refiller.cohorts)
                refiller = RowRefiller(backend.model)
                if speed.is_out_of_memory(error):
                    speed.release_memory(backend.device)
                    slots = max(1, slots // 2)
                    logger.warning("out of memory while refilling; %d rows at a time from now on", slots)
                else:
                    logger.warning("a refilled decode step failed (%s: %s); decoding its groups statically",
                                   type(error).__name__, error)
                for cohort in running:
                    yield _static(backend, requests, cohort.tag[0], None)
                continue
            for cohort in done:
                yield _respond(backend, cohort)


def _join(backend: Any, refiller: RowRefiller, requests: list[GenerationRequest], indices: list[int], prepared: Any) -> Answered:
    """Set up, prefill and stack one micro-batch; return the responses of rows decoded otherwise or already
    complete (empty while its rows decode)."""
    chunk = [requests[index] for index in indices]
    if prepared is None or isinstance(prepared, BaseException):
        return _static(backend, requests, indices, prepared)
    try:
        batch = setup_batch(backend, chunk, prepared, progress=False)
        state = prepare_generate(backend.model, batch.model_inputs, batch.generate_kwargs)
        cohort = refiller.start(state, (indices, batch))
    except NotRefillable as reason:
        logger.warning("row refilling is not possible for %s (%s); decoding in static batches", backend.model_id, reason)
        backend.refill = False
        return _static(backend, requests, indices, prepared)
    except Exception:  # a request the model refuses, out of memory at prefill: the static path isolates it
        return _static(backend, requests, indices, None)
    return _respond(backend, cohort) if not bool(cohort.unfinished.any()) else []


def _static(backend: Any, requests: list[GenerationRequest], indices: list[int], prepared: Any) -> Answered:
    """Decode one micro-batch on the static path (`_generate_static`: failures isolated per request, at
    the size that fitted after an out-of-memory error)."""
    return list(zip(indices, backend._generate_static(requests, indices, prepared)))


def _respond(backend: Any, cohort: Cohort) -> Answered:
    """Return the responses of a completed group, with its per-row timings."""
    indices, batch = cohort.tag
    rows = len(indices)
    timings = []
    for row in range(rows):
        prefill = cohort.prefill_seconds / rows
        decode = cohort.decode_seconds[row]
        timings.append({
            "preprocess_s": batch.preprocess_seconds / rows,
            "generate_s": prefill + decode,
            "prefill_s": prefill,
            "decode_s": decode,
            "batch_size": max(cohort.peak_rows, rows),  # the most rows decoded together while it ran
        })
    return list(zip(indices, batch_responses(backend, batch, cohort.ids, timings)))


__all__ = ["generate_refilling", "refill_chunk"]
