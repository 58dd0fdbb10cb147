"""What an answer cache holds, for re-scoring without a model (--rescore).

The cache is keyed by model, task, prompt and settings, so a re-score must ask for exactly
what was asked before. `cached_model` finds the model when the user named none (the
answers must all come from one model), and `cache_contents` describes what the cache
holds, to say why nothing matched.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from vistool.batch.cache import AnswerCache
from vistool.errors import VistoolError

SHOWN_SETTINGS = ("budget", "max_new_tokens", "thinking", "decoding")


def _setting_text(settings: dict[str, Any]) -> str:
    """Return the settings that most often differ, as `name value` pairs."""
    parts = []
    for name in SHOWN_SETTINGS:
        if name in settings:
            value = settings[name]
            if name == "decoding" and isinstance(value, dict):
                value = "greedy" if not value.get("temperature") else f"temperature {value.get('temperature')}"
            parts.append(f"{name} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return ", ".join(parts)


def cache_groups(cache: AnswerCache) -> Counter[tuple[str, str, str]]:
    """Count the cached answers per (model, task, settings text)."""
    groups: Counter[tuple[str, str, str]] = Counter()
    for record in cache.records():
        groups[(str(record.get("model")), str(record.get("task")), _setting_text(record.get("settings") or {}))] += 1
    return groups


def cache_contents(cache: AnswerCache, limit: int = 4) -> str:
    """Describe what the cache holds in one line: answers per model, task and settings."""
    groups = cache_groups(cache)
    if not groups:
        return f"{cache.path} holds no answers"
    listed = "; ".join(
        f"{count} answer(s) of model {model} for task {task} ({settings})"
        for (model, task, settings), count in groups.most_common(limit)
    )
    more = f"; and {len(groups) - limit} more setting(s)" if len(groups) > limit else ""
    return f"{cache.path} holds {listed}{more}"


def cached_model(cache: AnswerCache) -> str:
    """Return the one model whose answers the cache holds.

    Raises VistoolError when the cache is empty (nothing to re-score) or holds answers
    of several models (name one with --model).
    """
    models = Counter(str(record.get("model")) for record in cache.records())
    if not models:
        raise VistoolError(f"nothing to re-score: {cache.path} holds no answers (run without --rescore first)")
    if len(models) > 1:
        listed = ", ".join(f"{model} ({count} answers)" for model, count in models.most_common())
        raise VistoolError(f"{cache.path} holds answers of several models: {listed}; pick one with --model")
    return next(iter(models))
