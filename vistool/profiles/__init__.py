"""Model-family profiles: one record per family, one small module each.

`get_profile(name)` returns a family's `ModelProfile`; `resolve_profile(model)` finds
a checkpoint's family from its config.json (the name only as a fallback, see
`vistool.profiles.detect`); `profile_for_model(model_id)` guesses it from a name alone
(Gemma 4 when nothing matches); `PROFILES` maps every name to its record.
"""

from __future__ import annotations

from vistool.errors import VistoolError
from vistool.profiles.base import KINDS, CoordSystem, Kind, LocFormat, ModelProfile, PromptFormat
from vistool.profiles.detect import UnknownFamilyError, family_from_config, guess_from_name, resolve_profile
from vistool.profiles.florence2 import PROFILE as FLORENCE2
from vistool.profiles.gemini import PROFILE as GEMINI
from vistool.profiles.gemma4 import PROFILE as GEMMA4
from vistool.profiles.paligemma2 import PROFILE as PALIGEMMA2
from vistool.profiles.qwen3vl import PROFILE as QWEN3VL
from vistool.profiles.qwen25vl import PROFILE as QWEN25VL

DEFAULT_PROFILE = "gemma4"
PROFILES: dict[str, ModelProfile] = {
    profile.name: profile for profile in (GEMMA4, GEMINI, QWEN3VL, QWEN25VL, PALIGEMMA2, FLORENCE2)
}


def _key(name: str) -> str:
    """Normalise a family name: lower case, without '-', '_', '.' or spaces."""
    return "".join(char for char in name.lower() if char.isalnum())


_BY_KEY = {_key(name): profile for name, profile in PROFILES.items()}


def get_profile(name: str | ModelProfile) -> ModelProfile:
    """Return the profile called `name` ("gemma4", "qwen2.5-vl", ... spelling is forgiven).

    A `ModelProfile` is returned as is. Raises VistoolError naming the known profiles
    when there is no such family.
    """
    if isinstance(name, ModelProfile):
        return name
    profile = PROFILES.get(name) or _BY_KEY.get(_key(str(name)))
    if profile is None:
        raise VistoolError(f"unknown model profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return profile


def profile_for_model(model_id: str) -> ModelProfile:
    """Guess the profile of a model name (e.g. "Qwen/Qwen2.5-VL-7B-Instruct" -> qwen25vl).

    The longest matching `model_patterns` entry wins; Gemma 4 is the default when none
    matches. Only the name is read: prefer `resolve_profile`, which reads the checkpoint.
    """
    return guess_from_name(model_id) or PROFILES[DEFAULT_PROFILE]


__all__ = [
    "DEFAULT_PROFILE",
    "KINDS",
    "PROFILES",
    "CoordSystem",
    "Kind",
    "LocFormat",
    "ModelProfile",
    "PromptFormat",
    "UnknownFamilyError",
    "family_from_config",
    "get_profile",
    "guess_from_name",
    "profile_for_model",
    "resolve_profile",
]
