"""The family comes from the checkpoint, not the name; unsupported tasks are refused
before any model is loaded, from every entry point."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vistool
from vistool.api import Vistool
from vistool.errors import UnsupportedTaskError
from vistool.profiles import UnknownFamilyError, resolve_profile
from vistool.profiles.detect import read_config
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.transformers_backend import TransformersBackend

# Folder names that point at the wrong family (or at none).
MISLEADING = {
    "gemma4": "Qwen2.5-VL-7B-Instruct-finetune",
    "qwen25vl": "my-gemma-4-finetune",
    "qwen3vl": "paligemma2-3b-mix-448",
    "paligemma2": "Florence-2-large",
    "florence2": "models/qwen3-vl-copy",
}


@pytest.fixture(scope="module")
def misleading_dirs(tiny_family_dir, tmp_path_factory):
    """Each family's tiny checkpoint copied into a folder named after another family."""
    root = tmp_path_factory.mktemp("misleading")
    folders = {}
    for family, name in MISLEADING.items():
        folders[family] = root / name
        shutil.copytree(tiny_family_dir(family), folders[family])
    return folders


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if any local model is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(TransformersBackend, "__init__", refuse)


def test_misleading_folder_names_resolve_to_the_checkpoint_family(misleading_dirs):
    for family, folder in misleading_dirs.items():
        assert resolve_profile(str(folder)).name == family
        assert resolve_profile(str(folder), backend="openai").name == family  # a served local folder, too
        assert resolve_profile(str(folder), "gemini").name == "gemini"  # an explicit profile wins


def test_the_local_backend_takes_the_family_from_the_loaded_config(misleading_dirs):
    backend = TransformersBackend(str(misleading_dirs["qwen25vl"]), device="cpu", dtype="float32")
    assert backend.profile_name == "qwen25vl"
    assert vistool.load(str(misleading_dirs["florence2"]), lazy=True).profile.name == "florence2"


def test_unknown_architecture_lists_the_families(tmp_path):
    folder = tmp_path / "gemma-4-lookalike"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "smolvlm", "architectures": ["SmolVLMForConditionalGeneration"]}))
    with pytest.raises(UnknownFamilyError) as info:
        resolve_profile(str(folder))
    message = str(info.value)
    assert "model_type 'smolvlm' (SmolVLMForConditionalGeneration)" in message and "--profile" in message
    for family in ("gemma4", "qwen25vl", "qwen3vl", "paligemma2", "florence2"):
        assert family in message


def test_architectures_decide_when_model_type_is_unknown(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "custom", "architectures": ["Qwen2_5_VLForConditionalGeneration"]}))
    assert resolve_profile(str(tmp_path)).name == "qwen25vl"


def test_hub_ids_are_read_from_the_local_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--someone--my-vlm" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    (tmp_path / "models--someone--my-vlm" / "refs").mkdir()
    (tmp_path / "models--someone--my-vlm" / "refs" / "main").write_text("a" * 40)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert read_config("someone/my-vlm") == {"model_type": "qwen3_vl"}
    assert resolve_profile("someone/my-vlm").name == "qwen3vl"  # the name says nothing; the cached config does


def test_names_are_the_fallback_and_an_unknown_name_warns(caplog):
    # The tests run offline (HF_HUB_OFFLINE=1): nothing to fetch, so the name decides at once.
    assert resolve_profile("Qwen/Qwen2.5-VL-7B-Instruct").name == "qwen25vl"
    assert resolve_profile("microsoft/Florence-2-large", backend="openai").name == "florence2"
    with caplog.at_level(logging.WARNING, logger="vistool.profiles.detect"):
        assert resolve_profile("HuggingFaceTB/SmolVLM2-2.2B-Instruct", backend="openai").name == "gemma4"
    assert "cannot tell the model family" in caplog.text and "--profile" in caplog.text


# ------------------------------------------------------------------ refusals at every entry point
def test_api_refuses_before_loading(misleading_dirs, photo):
    vt = vistool.load(str(misleading_dirs["paligemma2"]), lazy=True)
    with pytest.raises(UnsupportedTaskError) as info:
        vt.point(str(photo), "cat")
    assert str(info.value) == (
        "model family 'paligemma2' cannot run task 'point': PaliGemma 2 has no answer format for points "
        "(paligemma2 runs: detect, ground, ocr, caption, vqa)"
    )
    with pytest.raises(UnsupportedTaskError, match="Florence-2 takes no video input"):
        vistool.load(str(misleading_dirs["florence2"]), lazy=True).video(photo, "what happens?")
    assert not vt.backend.loaded


@pytest.mark.parametrize(
    ("argv", "family", "message"),
    [
        (["point", "{img}", "cat"], "florence2", "cannot run task 'point': Florence-2 has no answer format for points"),
        (["ask", "{img}", "why?"], "florence2", "cannot run task 'vqa': Florence-2 has no prompt of its own"),
        (["gui", "{img}"], "paligemma2", "cannot run task 'gui_elements'"),
        (["ocr", "{img}", "--regions"], "paligemma2", "cannot run task 'ocr_regions'"),
        (["video", "{img}", "what?"], "paligemma2", "PaliGemma 2 takes no video input"),
        (["detect", "{img}"], "paligemma2", "cannot run task 'detect': PaliGemma 2 has no prompt of its own for this task (variant 'all')"),
        (["detect", "{img}", "-c", "cat", "--budget", "280"], "florence2", "resizes every image to a fixed square"),
    ],
)
def test_cli_refuses_before_loading(argv, family, message, misleading_dirs, photo, capsys, no_model_loads):
    from vistool.cli import main

    args = [part.format(img=photo) for part in argv] + ["--model", str(misleading_dirs[family])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "Loading weights" not in err


def test_cli_profile_option_overrides_the_checkpoint(misleading_dirs, photo, capsys, no_model_loads):
    from vistool.cli import main

    # The folder holds Gemma 4; --profile florence2 makes the family Florence-2, which cannot point.
    assert main(["point", str(photo), "cat", "--model", str(misleading_dirs["gemma4"]), "--profile", "florence2"]) == 2
    assert "'florence2' cannot run task 'point'" in capsys.readouterr().err
    assert main(["point", str(photo), "cat", "--model", "x", "--profile", "llava"]) == 2
    assert "unknown model profile 'llava'" in capsys.readouterr().err


def test_annotate_and_eval_refuse_before_loading(misleading_dirs, photo, tmp_path, capsys, no_model_loads):
    from vistool.batch.annotate import AnnotateConfig, run_cli
    from vistool.evaluation.run import main as run_eval

    config = AnnotateConfig(src=str(photo.parent), out=tmp_path / "out", task="point", query="cat",
                            model=str(misleading_dirs["paligemma2"]), progress=False)
    assert run_cli(config) == 2
    assert "'paligemma2' cannot run task 'point'" in capsys.readouterr().err
    annotations = tmp_path / "ss.json"
    annotations.write_text("[]")
    code = run_eval(["screenspot", "--annotations", str(annotations), "--out", str(tmp_path / "ev"),
                     "--model", str(misleading_dirs["florence2"])])
    assert code == 2
    assert "'florence2' cannot run task 'gui_ground'" in capsys.readouterr().err


def test_demo_refuses_an_unsupported_tab_without_calling_the_model(tmp_path):
    import gradio as gr

    from vistool.app.tabs import TABS
    from vistool.app.ui import DemoRunner

    backend = ReplayBackend(lambda request: "[]", profile_name="florence2")
    runner = DemoRunner(Vistool(backend), download_dir=tmp_path / "files")
    point = next(tab for tab in TABS if tab.name == "point")
    with pytest.raises(gr.Error, match="'florence2' cannot run task 'point'"):
        runner.run(point, None, ["cat", None, None, False])  # refused even before the missing upload is noticed
    assert backend.calls == 0


def test_plain_prompt_families_refuse_thinking_before_loading(misleading_dirs, photo, no_model_loads):
    from vistool.errors import RequestError

    with pytest.raises(RequestError, match="'florence2' takes a plain task prompt .* cannot take thinking"):
        vistool.load(str(misleading_dirs["florence2"]), thinking=True)
    vt = vistool.load(str(misleading_dirs["paligemma2"]), lazy=True)
    with pytest.raises(RequestError, match="cannot take a system prompt"):
        vt.caption(str(photo), system="be brief")
    assert not vt.backend.loaded
