"""The Gradio demo app: `build_app(vt)` builds it around any `Vistool`; `serve(...)` runs it.

Gradio is imported only when the app is built, so `import vistool.app` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vistool.app.server import main, serve

if TYPE_CHECKING:
    import gradio as gr

    from vistool.api import Vistool


def build_app(vt: "Vistool", **options: Any) -> "gr.Blocks":
    """Build the demo's `gr.Blocks` around `vt`; see `vistool.app.ui.build_app` for the options."""
    from vistool.app.ui import build_app as build

    return build(vt, **options)


__all__ = ["build_app", "main", "serve"]
