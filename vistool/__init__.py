"""vistool: grounding, OCR and GUI detection with open vision-language models.

    import vistool
    vt = vistool.load("google/gemma-4-E2B-it")
    vt.detect("photo.jpg", ["person", "bicycle"]).detections
"""

from typing import Any

from vistool.errors import VistoolError

__version__ = "0.1.0"

__all__ = ["Vistool", "VistoolError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    """Import the API lazily, so `import vistool` stays light (no supervision, no torch)."""
    if name in ("load", "Vistool"):
        from vistool import api

        return getattr(api, name)
    raise AttributeError(f"module 'vistool' has no attribute {name!r}")
