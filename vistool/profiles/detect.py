"""Which family a checkpoint belongs to: read from its config.json, not guessed from its name.

`resolve_profile(model, profile=None, backend=...)` is what every entry point calls
before anything is loaded:
  - an explicit profile (`--profile`, `profile=`) wins;
  - else the checkpoint's config.json decides (`model_type`, then `architectures`):
    a local folder's own file, or a Hub id's file from the local Hugging Face cache or,
    for the local backend, fetched from the Hub (one metadata request without retries
    first, so an offline machine fails in about a second, not after the Hub client's
    backoff). A config that names an architecture no profile knows is an error that
    lists the families;
  - else (a served model name, a Hub id that cannot be fetched) the name is matched
    against each profile's `model_patterns`; with no match, Gemma 4 is assumed, with a
    warning.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vistool.errors import VistoolError
from vistool.profiles.base import ModelProfile

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class UnknownFamilyError(VistoolError):
    """A checkpoint whose config.json names an architecture no profile knows."""


def _profiles() -> dict[str, ModelProfile]:
    from vistool.profiles import PROFILES  # the registry imports this module

    return PROFILES


def known_families() -> str:
    """Return one line naming every family that can be detected and its config `model_type`s."""
    parts = [
        f"{profile.name} ({profile.title}: model_type {' / '.join(profile.model_types)})"
        for profile in _profiles().values()
        if profile.model_types
    ]
    return "; ".join(parts)


def family_from_config(config: Mapping[str, Any], source: str = "the checkpoint") -> ModelProfile:
    """Return the profile of a checkpoint from its config (a config.json dict).

    Matches `model_type` against each profile's `model_types`, then `architectures`
    against `architectures`. Raises UnknownFamilyError naming what the config says and
    listing the families (and `--profile`) when nothing matches.
    """
    model_type = str(config.get("model_type") or "")
    architectures = [str(name) for name in config.get("architectures") or []]
    for profile in _profiles().values():
        if model_type and model_type in profile.model_types:
            return profile
    for profile in _profiles().values():
        if any(name in profile.architectures for name in architectures):
            return profile
    says = f"model_type {model_type!r}" if model_type else "no model_type"
    if architectures:
        says += f" ({', '.join(architectures)})"
    raise UnknownFamilyError(
        f"cannot tell the model family of {source}: its config.json says {says}, which no vistool profile "
        f"covers. Known families: {known_families()}. If the model answers in one of these families' "
        "conventions, name it with --profile (profile=...)"
    )


def _load_json(path: Path) -> dict[str, Any] | None:
    """Read a config.json; None when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_config(model: str, revision: str | None = None, *, download: bool = True, timeout: float = 5.0) -> dict[str, Any] | None:
    """Return the config.json of a checkpoint, or None when it cannot be had.

    Takes a local folder or a Hub id, the revision, whether a Hub id's config may be
    fetched over the network (`download`; the local cache is always read), and the
    network timeout in seconds. Never raises for a missing or unreachable file: the
    caller falls back to the name, and loading the model then reports the real problem.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return _load_json(path / "config.json")
    if path.exists() or not _HUB_ID.match(model):
        return None
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        return None
    try:
        cached = huggingface_hub.try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # a malformed id: not a Hub checkpoint
        return None
    if isinstance(cached, str):
        return _load_json(Path(cached))
    if not download or constants.HF_HUB_OFFLINE:
        return None
    try:  # one request without retries: offline, this fails at once (hf_hub_download would back off for ~25 s)
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(model, "config.json", revision=revision), timeout=timeout)
        fetched = huggingface_hub.hf_hub_download(model, "config.json", revision=revision, etag_timeout=timeout)
    except Exception as exc:  # offline, gated, missing: the model load reports it properly
        logger.info("could not fetch the config of %s (%s: %s)", model, type(exc).__name__, exc)
        return None
    return _load_json(Path(fetched))


def guess_from_name(model_id: str) -> ModelProfile | None:
    """Return the profile whose longest `model_patterns` entry occurs in `model_id`, or None."""
    lowered = str(model_id).lower()
    best: tuple[int, ModelProfile] | None = None
    for profile in _profiles().values():
        for pattern in profile.model_patterns:
            if pattern in lowered and (best is None or len(pattern) > best[0]):
                best = (len(pattern), profile)
    return best[1] if best is not None else None


def resolve_profile(
    model: str,
    profile: str | ModelProfile | None = None,
    *,
    backend: str = "transformers",
    revision: str | None = None,
) -> ModelProfile:
    """Return the family profile to use for `model`, before anything is loaded.

    Takes the model (a local folder, a Hub id, or a served model name), an explicit
    profile (a name or record; it wins), the backend kind ("transformers" may fetch a
    Hub id's config.json; a server backend reads local files and the cache only) and
    the revision. Raises VistoolError for an unknown profile name and UnknownFamilyError
    for a config.json of an unknown architecture.
    """
    from vistool.profiles import DEFAULT_PROFILE, get_profile

    if profile is not None:
        return get_profile(profile)
    local = str(backend).strip().lower() in ("transformers", "local")
    config = read_config(str(model), revision, download=local)
    if config is not None:
        return family_from_config(config, repr(str(model)))
    guessed = guess_from_name(str(model))
    if guessed is not None:
        return guessed
    logger.warning(
        "cannot tell the model family of %r (no readable config.json, and the name matches no family); "
        "assuming %s. Pass --profile (profile=...) to choose another.", model, DEFAULT_PROFILE,
    )
    return get_profile(DEFAULT_PROFILE)


__all__ = ["UnknownFamilyError", "family_from_config", "guess_from_name", "known_families", "read_config", "resolve_profile"]
