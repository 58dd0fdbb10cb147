"""The keyword arguments of one micro-batch's `model.generate` call: greedy or sampled
decoding, the log-prob recorder, the JSON-close stop, the answer controls (grammar,
thought budget, loop stop: vistool.runtime.answer_controls), the progress callback, and
the static cache and compile config when compiled.

The kwargs always hold a `logits_processor` and a `stopping_criteria` list (empty unless
log-probs, the JSON stop or an answer control are asked for: every logits processor
costs an `inspect.signature` per decode step in transformers). The log-prob recorder
comes before the grammar, so log-probs are the model's own distribution (what vLLM's
default `raw_logprobs` reports too). Everything except the grammar keeps its state on
the device; the grammar reads the last tokens once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vistool.runtime import speed
from vistool.runtime.answer_controls import BatchControls
from vistool.runtime.logprobs import ChosenTokenLogprobs
from vistool.runtime.progress import ProgressCallback, StepProgress
from vistool.runtime.types import GenerationRequest


@dataclass
class Controls:
    """What a micro-batch's `generate` call adds besides the log-prob recorder: the JSON stop and the answer controls."""

    json_stop: Any
    answer: BatchControls


def generate_kwargs(
    requests: list[GenerationRequest],
    prompt_length: int,
    *,
    device: str,
    json_table: Callable[[], Any],
    answer: BatchControls,
    progress: ProgressCallback | None = None,
    cache: Any = None,
    compile_config: Any = None,
) -> tuple[dict[str, Any], ChosenTokenLogprobs | None, Controls]:
    """Return the `generate` keyword arguments of a micro-batch, with its recorders.

    Takes the micro-batch (compatible requests), its padded prompt length, the device,
    `json_table` (returns the JSON-close transition table; called only when a row stops
    that way), the batch's answer controls, the progress callback, and for a compiled
    decode step its static cache and compile config (None: not compiled). Returns
    (kwargs, the log-prob recorder or None, the batch's `Controls`).
    """
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    first = requests[0]
    kwargs: dict[str, Any] = {
        "max_new_tokens": first.max_new_tokens,
        "logits_processor": LogitsProcessorList(),
        "stopping_criteria": StoppingCriteriaList(),
    }
    if first.decoding.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(
            do_sample=True,
            temperature=first.decoding.temperature,
            top_p=first.decoding.top_p,
            top_k=first.decoding.top_k,
        )
        if first.decoding.seed is not None:
            torch.manual_seed(first.decoding.seed)
    recorder = None
    if first.return_logprobs:
        recorder = ChosenTokenLogprobs()
        kwargs["logits_processor"].append(recorder)
    json_stop = None
    # The thinking channel may hold brackets of its own, so thinking rows never stop this way.
    wants_stop = [bool(request.stop_when_json_closes) and not request.thinking for request in requests]
    if any(wants_stop):
        enabled = torch.tensor(wants_stop, device=device)
        starts = [speed.START_ARRAYS if request.stop_when_json_closes == "array" else speed.START for request in requests]
        json_stop = speed.JsonCloseStop(json_table(), enabled, prompt_length, torch.tensor(starts, device=device))
        kwargs["stopping_criteria"].append(json_stop)
    kwargs["logits_processor"].extend(answer.processors())
    kwargs["stopping_criteria"].extend(answer.criteria())
    if progress is not None:
        kwargs["stopping_criteria"].append(StepProgress(progress, prompt_length, first.max_new_tokens))
    if cache is not None:
        kwargs["cache"] = cache
        kwargs["compile_config"] = compile_config
    return kwargs, recorder, Controls(json_stop, answer)


def json_stop_table(tokenizer: Any, model: Any, special: set[int], device: str) -> Any:
    """Return the JSON-close transition table of the tokenizer's vocabulary (`speed.json_transition_table`) on `device`.

    A random-weight model may have a larger vocabulary than its tokenizer: its extra
    ids are no text.
    """
    import torch

    known = len(tokenizer)
    texts = tokenizer.batch_decode([[number] for number in range(known)], skip_special_tokens=False)
    vocab = max(known, int(getattr(model.config.get_text_config(), "vocab_size", known)))
    texts.extend([""] * (vocab - known))
    return torch.from_numpy(speed.json_transition_table(texts, special)).to(device)


__all__ = ["Controls", "generate_kwargs", "json_stop_table"]
