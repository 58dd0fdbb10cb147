"""Before loading a model from the Hugging Face Hub: is the Hub reachable, is the model cached?

Without this check an unreachable Hub costs minutes: huggingface_hub retries every file
request five times with backoff before transformers gives up (measured here: 2 min 35 s
and 30 "Retrying in 8s" lines for one `vistool detect`). `hub_preflight` makes one short
request instead and, when the Hub cannot be reached, either loads the cached copy
(offline) or stops at once with what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vistool.errors import ModelLoadError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 4.0


def offline_help(model_id: str) -> str:
    """Return how to work offline with `model_id` (one sentence, for error messages)."""
    return (
        f"to work offline, download it once where the Hub is reachable (`hf download {model_id}`; "
        f"if its page https://huggingface.co/{model_id} asks you to accept a licence, accept it and run "
        "`hf auth login` first), then set HF_HUB_OFFLINE=1 to use that cache, or copy the folder and pass "
        "--model FOLDER; to try vistool with no download at all: `vistool make-tiny-model DIR` and --model DIR"
    )


def is_cached(model_id: str, revision: str | None = None) -> bool:
    """True when the Hub cache holds `model_id`'s config.json (a previous download)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # a name the Hub would refuse: let from_pretrained say why
        return False
    return isinstance(found, str)


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Make one short request to the Hub endpoint (HF_ENDPOINT); return why it failed, or
    None when the Hub answered (any HTTP status counts as reachable)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT.rstrip("/") + "/api/models", timeout=timeout)
    except Exception as exc:  # DNS failure, refused, timeout, proxy error, TLS error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{constants.ENDPOINT}: {reason}"
    return None


def hub_preflight(model_id: str, revision: str | None = None) -> dict[str, Any]:
    """Check, before any download starts, that `model_id` can be loaded; return extra
    `from_pretrained` keyword arguments.

    A local folder needs nothing ({}). With HF_HUB_OFFLINE set, a cached model loads from
    the cache ({}) and an uncached one raises ModelLoadError. Otherwise one short request
    tells whether the Hub is reachable: if it is, {}; if not, a cached model loads from
    the cache ({"local_files_only": True}, with a warning) and an uncached one raises
    ModelLoadError at once, saying how to work offline.
    """
    from huggingface_hub import constants

    if Path(model_id).exists():
        return {}
    if constants.HF_HUB_OFFLINE:
        if is_cached(model_id, revision):
            return {}
        raise ModelLoadError(
            f"cannot load model {model_id!r}: HF_HUB_OFFLINE is set and it is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) nor a local folder; {offline_help(model_id)}"
        )
    reason = hub_unreachable_reason()
    if reason is None:
        return {}
    if is_cached(model_id, revision):
        logger.warning("the Hugging Face Hub is unreachable (%s); loading %s from the local cache", reason, model_id)
        return {"local_files_only": True}
    raise ModelLoadError(
        f"cannot load model {model_id!r}: the Hugging Face Hub is unreachable ({reason}) and the model is not in "
        f"the local cache ({constants.HF_HUB_CACHE}); {offline_help(model_id)}"
    )


def hub_error_hint(model_id: str, exc: BaseException) -> str | None:
    """Say what to do about a Hub error raised while loading (gated model, unknown name), or None."""
    from huggingface_hub import errors

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(item, errors.GatedRepoError) for item in chain):
        return (f"{model_id} is gated: accept its licence at https://huggingface.co/{model_id} while logged in, "
                "then run `hf auth login` (or set HF_TOKEN) here")
    if any(isinstance(item, errors.RepositoryNotFoundError) for item in chain):
        return (f"the Hub has no model {model_id!r} you can see: check the name (e.g. google/gemma-4-E2B-it); "
                "a private model needs `hf auth login`")
    return None
