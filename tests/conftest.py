"""Shared fixtures: the tiny offline Gemma 4 (built once per test session) and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Gemma 4 saved to disk, loadable with `from_pretrained`."""
    from vistool.runtime.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-gemma4"), seed=0)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path):
    """A `TransformersBackend` on the tiny model, on the CPU in float32."""
    from vistool.runtime.transformers_backend import TransformersBackend

    return TransformersBackend(str(tiny_model_dir), device="cpu", dtype="float32", batch_size=8)


def shared_data(*parts: str) -> Path:
    """Return a path under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (../shared/data is absent on this machine)")
    return path
