"""Exceptions raised by vistool.

Every error a user can cause (a bad image, an invalid budget, a missing model) is a
`VistoolError` whose message names the input and says what is wrong, so that callers
can catch one type and show one line.
"""

from __future__ import annotations


class VistoolError(Exception):
    """Base class of every error vistool raises on purpose."""


class ImageLoadError(VistoolError):
    """An image could not be read: missing, empty, truncated, not an image, or too large."""


class VideoLoadError(VistoolError):
    """A video could not be opened or sampled."""


class BudgetError(VistoolError, ValueError):
    """An image-token budget that the model family does not support."""


class ModelLoadError(VistoolError):
    """A model or processor could not be loaded (missing folder, no network, bad files)."""


class UnsupportedTaskError(VistoolError):
    """A task the model family cannot answer (no prompt format, answer format or input kind for it)."""


class RequestError(VistoolError, ValueError):
    """A generation request (or batch of them) is malformed: empty batch, bad settings."""


class BackendError(VistoolError):
    """The backend failed to produce an answer for a request (model error, HTTP error)."""
