"""Which API key goes to which server.

An OpenAI-compatible server gets the key from `api_key=`, else the environment variable
the caller names (`api_key_env`), else `VISTOOL_API_KEY` (vistool's own variable: sent
wherever vistool is pointed), else `OPENAI_API_KEY`, but that one only to the official
OpenAI API over https: a key meant for OpenAI is not handed to whatever `base_url` a
user (or an attacker-controlled config) names.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from vistool.errors import VistoolError

API_KEY_VARIABLES = ("VISTOOL_API_KEY", "OPENAI_API_KEY")
OPENAI_HOST = "api.openai.com"  # the only host OPENAI_API_KEY goes to unasked


def api_key_from_env(url: str | None = None, variable: str | None = None) -> str | None:
    """Return the API key to send to `url`, from the environment, or None.

    Takes the server URL and optionally the variable to read (`api_key_env`; it must be
    set). Without one: `VISTOOL_API_KEY` (vistool's own, sent wherever vistool is
    pointed), else `OPENAI_API_KEY` when `url` is the official OpenAI API over https (or
    when no URL is given). Raises VistoolError when `variable` is not set.
    """
    if variable is not None:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise VistoolError(f"api_key_env names {variable}, which is not set (or empty) in the environment")
        return value
    value = os.environ.get("VISTOOL_API_KEY", "").strip()
    if value:
        return value
    value = os.environ.get("OPENAI_API_KEY", "").strip()
    if value and (url is None or is_official_openai(url)):
        return value
    return None


def is_official_openai(url: str) -> bool:
    """True when `url` is the official OpenAI API over https (the only place OPENAI_API_KEY goes unasked)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "").lower() == OPENAI_HOST


def is_loopback(url: str) -> bool:
    """True when `url`'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_hint(key_sent: bool) -> str:
    """Return what to check after an HTTP 401 / 403, given whether a key was sent (starts with "; ")."""
    if key_sent:
        return "; check VISTOOL_API_KEY (or the key you passed)"
    if os.environ.get("OPENAI_API_KEY", "").strip():
        return ("; no key was sent: OPENAI_API_KEY goes only to https://api.openai.com unless asked "
                "(api_key_env='OPENAI_API_KEY', --api-key-env OPENAI_API_KEY), or set VISTOOL_API_KEY")
    return "; no key was sent: set VISTOOL_API_KEY"


__all__ = ["API_KEY_VARIABLES", "OPENAI_HOST", "api_key_from_env", "is_loopback", "is_official_openai", "key_hint"]
