"""The backends `vistool annotate` runs with: none at all (re-scoring from the cache), the
recorded answers of a file (tests), or the model as a `DeferredBackend`
(vistool.runtime.deferred), which loads it only when an answer is missing from the cache.

`make_vistool(config, family)` picks between them; the evaluators use `CacheOnlyBackend`
for --rescore too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vistool.errors import VistoolError

# Said on stderr when a batch run's model starts loading (`DeferredBackend.announce`).
LOAD_REASON = "answers are missing from the cache"


class CacheOnlyBackend:
    """The backend of a --rescore run: it has the model's name (for cache keys) and no model."""

    def __init__(self, model_id: str, profile_name: str) -> None:
        self.model_id = model_id
        self.profile_name = profile_name

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        """Never called: a re-score only reads the cache."""
        raise VistoolError("--rescore never runs the model")


def resolve_family(config: Any) -> Any:
    """Return the model family of an `AnnotateConfig`: --profile, else read from the checkpoint (not loaded)."""
    from vistool.profiles import resolve_profile

    return resolve_profile(config.model, config.profile, backend=config.backend)


def make_vistool(config: Any, family: Any = None) -> Any:
    """Build the `Vistool` an `AnnotateConfig` asks for (its model already settled).

    --rescore: a stand-in that never runs a model (answers come from the cache only);
    --backend replay: answers from --replay-answers (tests); otherwise the model as a
    `DeferredBackend` (`vistool.load(..., lazy=True)`): with the local engine it loads
    on the first uncached answer, saying so on stderr; with the ray engine each actor
    loads its own and this process none. `family` is the model family when already
    resolved (else resolved here). The budget, the backend name and, for a local model
    run here, the device and dtype are checked now, before anything is loaded. Returns
    the `Vistool`.
    """
    from vistool.api import Vistool, load
    from vistool.engines import check_engine

    model = config.model
    profile = family if family is not None else resolve_family(config)
    if config.budget is not None:
        profile.check_budget(config.budget)
    if config.rescore:
        backend: Any = CacheOnlyBackend(model, profile.name)
    elif config.backend == "replay":
        from vistool.batch.replay_file import replay_backend_from_file

        if config.replay_answers is None:
            raise VistoolError("--backend replay needs --replay-answers FILE")
        backend = replay_backend_from_file(config.replay_answers, model, profile.name)
    else:
        local = check_engine(config.engine, config.backend) == "local"
        if local:
            from vistool.runtime import backend_kind

            if backend_kind(config.backend) == "transformers":  # an unknown name fails here, not at the first answer
                from vistool.runtime.devices import pick_device, pick_dtype

                pick_dtype(config.dtype, pick_device(config.device))  # a device this machine lacks fails now
        http = {name: value for name, value in (("timeout", config.timeout), ("retries", config.retries),
                                                ("api_key_env", config.api_key_env)) if value is not None}
        backend = load(str(model), backend=config.backend, base_url=config.base_url, device=config.device,
                       dtype=config.dtype, batch_size=config.batch_size, profile=profile, thinking=config.thinking,
                       lazy=True, **http).backend
        if local:
            backend.announce = LOAD_REASON
    return Vistool(backend, budget=config.budget, max_new_tokens=config.max_new_tokens, thinking=config.thinking,
                   max_pixels=config.max_pixels, structured=config.structured, thought_tokens=config.thought_tokens)
