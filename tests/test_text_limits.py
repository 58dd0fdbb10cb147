"""Text a user can make unboundedly long has limits with clear messages (issue 20, item 5).

Class lists, questions, instructions, expressions and system prompts are checked
before any image or model is touched, in the API, the CLI (before the model loads) and
the demo; and the local backend refuses a prompt longer than the model's context
before `generate` allocates anything for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from vistool.api import Vistool
from vistool.app.tabs import TABS
from vistool.app.ui import DemoRunner
from vistool.errors import VistoolError
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationRequest
from vistool.tasks.base import MAX_CLASS_CHARS, MAX_CLASSES, MAX_TEXT_CHARS

EXAMPLES = REPO_ROOT / "vistool" / "app" / "examples"


@pytest.fixture
def asked() -> list[str]:
    """The prompts a replay backend was asked (it must stay empty when a limit is hit)."""
    return []


@pytest.fixture
def vt(asked: list[str]) -> Vistool:
    return Vistool(ReplayBackend(lambda request: asked.append(request.prompt) or "[]"))


def test_api_limits(vt: Vistool, asked: list[str]) -> None:
    image = Image.new("RGB", (32, 32))
    with pytest.raises(VistoolError, match=f"the class list has 10000 names; at most {MAX_CLASSES} fit in one prompt"):
        vt.detect(image, [f"class {i}" for i in range(10_000)])
    with pytest.raises(VistoolError, match=f"at most {MAX_CLASS_CHARS} are accepted"):
        vt.detect(image, ["x" * 500])
    with pytest.raises(VistoolError, match=f"the question is 100000 characters long; at most {MAX_TEXT_CHARS}"):
        vt.ask(image, "why?" * 25_000)
    for call in (lambda: vt.ground(image, "a" * 20_000), lambda: vt.gui_ground(image, "b" * 20_000),
                 lambda: vt.point(image, "c" * 20_000), lambda: vt.ask(image, "ok", system="s" * 20_000)):
        with pytest.raises(VistoolError, match="characters long; at most"):
            call()
    assert asked == []
    vt.detect(image, [f"class {i}" for i in range(MAX_CLASSES)])  # at the limit: fine
    vt.ask(image, "q" * MAX_TEXT_CHARS)
    assert len(asked) == 2


def run_vistool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "vistool.cli", *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(120)
def test_cli_limits_apply_before_the_model_loads(tmp_path: Path) -> None:
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    classes = ",".join(f"c{i}" for i in range(10_000))
    no_model = str(tmp_path / "no-such-model")
    detect = run_vistool("detect", "a.png", "--classes", classes, "--model", no_model, cwd=tmp_path)
    ask = run_vistool("ask", "a.png", "q" * 100_000, "--model", no_model, cwd=tmp_path)
    batch = run_vistool("annotate", "a.png", "--out", "out", "--classes", classes, "--model", no_model, cwd=tmp_path)
    for done in (detect, batch):
        assert done.returncode == 2 and "the class list has 10000 names; at most 1000" in done.stderr, done.stderr
    assert ask.returncode == 2 and "the question is 100000 characters long" in ask.stderr, ask.stderr


def test_demo_shows_the_limit(vt: Vistool, asked: list[str], tmp_path: Path) -> None:
    runner = DemoRunner(vt, download_dir=tmp_path)
    tab = next(spec for spec in TABS if spec.name == "ask")
    values = [field.default for field in tab.fields]
    values[[field.name for field in tab.fields].index("question")] = "q" * 100_000
    with pytest.raises(gr.Error, match="characters long; at most"):
        runner.run(tab, {"path": str(EXAMPLES / "shapes.png"), "orig_name": "shapes.png"}, [*values, 70, 64, False])
    assert asked == []


@pytest.mark.timeout(300)
def test_local_backend_refuses_a_prompt_past_its_context(tiny_backend) -> None:
    context = tiny_backend.context_tokens
    assert context == 8192  # the tiny model's max_position_embeddings
    long, fine = GenerationRequest(prompt="word " * 9000, max_new_tokens=8), GenerationRequest(prompt="hi", max_new_tokens=4)
    responses = tiny_backend.generate([long, fine, GenerationRequest(prompt="hi", max_new_tokens=context)])
    assert "more than the model's context of 8192 tokens" in responses[0].error
    assert responses[1].ok  # the others in the batch are answered
    assert "max_new_tokens is 8192" in responses[2].error
