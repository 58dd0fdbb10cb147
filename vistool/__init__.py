"""vistool: grounding, OCR and GUI detection with open vision-language models."""

from vistool.errors import VistoolError

__version__ = "0.1.0"

__all__ = ["VistoolError", "__version__"]
