"""classify: pick the image's label from a given set, with a probability for every label.

Nothing is generated: the backend scores each label as the model's whole answer (the
log-probability of its tokens and of the end of the answer, `Backend.score`), and the
distribution is those probabilities renormalised over the label set, so it sums to 1
and changes with the set. `coverage` says how much of the model's probability the set
received at all (low: the model would rather have answered something else).

Default budget 140: Google advises low budgets for classification with Gemma 4.
"""

from __future__ import annotations

import math

from vistool.errors import VistoolError
from vistool.tasks.base import Options, TaskResult, TaskSpec, split_list


def labels_of(options: Options) -> list[str]:
    """The candidate labels, cleaned; raise VistoolError when empty or repeated."""
    labels = split_list(options.get("labels"), "label list")
    if not labels:
        raise VistoolError("empty label list: give at least two labels to choose from")
    seen: dict[str, str] = {}
    for label in labels:
        key = label.casefold()
        if key in seen:
            raise VistoolError(f"label {label!r} is given twice (as {seen[key]!r})")
        seen[key] = label
    return labels


def distribution(logprobs: list[float]) -> list[float]:
    """Return the probabilities that `logprobs` give, renormalised to sum to 1 (a softmax)."""
    top = max(logprobs)
    weights = [math.exp(value - top) for value in logprobs]
    total = sum(weights)
    return [weight / total for weight in weights]


def _finish(result: TaskResult, options: Options) -> None:
    """Turn the labels' log-probabilities into the distribution, the top label and its probability."""
    logprobs = result.extras.pop("choice_logprobs", None)
    labels = result.extras.pop("choices", None) or labels_of(options)
    if logprobs is None:
        return
    probabilities = distribution(logprobs)
    best = max(range(len(labels)), key=probabilities.__getitem__)
    result.text = labels[best]
    result.extras.update(
        labels=list(labels),
        probabilities=probabilities,
        logprobs=list(logprobs),
        label=labels[best],
        confidence=probabilities[best],
        coverage=min(1.0, sum(math.exp(value) for value in logprobs)),
    )


CLASSIFY = TaskSpec(
    name="classify",
    prompts={
        "default": "Classify the image. Answer with exactly one of these labels: {labels}. Output only the label.",
    },
    kind=None,
    default_budget=140,
    max_new_tokens=16,
    fields=lambda options: {"labels": ", ".join(labels_of(options))},
    choices=labels_of,
    finish=_finish,
)

__all__ = ["CLASSIFY", "distribution", "labels_of"]
