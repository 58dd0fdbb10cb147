"""Shared fixtures: the tiny offline checkpoints of every family (each built once per test
session, on first use) and their backends, and paths."""

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


@pytest.fixture(scope="session")
def tiny_family_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A function: family name -> the folder of that family's tiny checkpoint (built once per session)."""
    from vistool.runtime.tiny import make_tiny_model

    built: dict[str, Path] = {"gemma4": tiny_model_dir}

    def folder(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), seed=0, family=family)
        return built[family]

    return folder


@pytest.fixture(scope="session")
def tiny_family_backend(tiny_family_dir, tiny_backend):
    """A function: family name -> a `TransformersBackend` on its tiny checkpoint (CPU, float32, batch 8; one per session)."""
    from vistool.runtime.transformers_backend import TransformersBackend

    backends = {"gemma4": tiny_backend}

    def backend(family: str):
        if family not in backends:
            backends[family] = TransformersBackend(str(tiny_family_dir(family)), device="cpu", dtype="float32", batch_size=8)
        return backends[family]

    return backend


def shared_data(*parts: str) -> Path:
    """Return a path under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (../shared/data is absent on this machine)")
    return path
