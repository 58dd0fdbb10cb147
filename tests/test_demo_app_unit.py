"""The demo app in-process, on a replay backend with exactly known answers: what each tab
shows (annotated image, table rows, JSON, download), its defaults, its error messages,
the example inputs and the `vistool demo` command. No server, no browser, no model."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.app import build_app
from vistool.app.tabs import TABS
from vistool.app.ui import OUTPUT_NAMES, DemoRunner
from vistool.app.views import clock, summary
from vistool.io.video import sample_video
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationResponse
from vistool.tasks import TASKS, TaskResult

EXAMPLES = Path(__file__).resolve().parents[1] / "vistool" / "app" / "examples"
TAB = {spec.name: spec for spec in TABS}

# Answers in Gemma 4's format for shapes.png (480 x 320): the red circle spans
# x 40..160, y 40..160, i.e. box_2d [125, 83.3, 500, 333.3] on the 0..1000 scale.
CIRCLE = '```json\n[{"box_2d": [125, 83, 500, 333], "label": "circle"}]\n```'
ANSWERS = {
    "Detect every": CIRCLE,
    "Point to every": '[{"point_2d": [312, 208], "label": "star"}, {"point_2d": [781, 250], "label": "star"}]',
    "Find every line": '[{"box_2d": [50, 70, 150, 550], "text": "CORNER CAFE"}]',
    "List every visible": '[{"box_2d": [670, 275, 750, 725], "label": "button", "text": "Sign in", "interactive": true}]',
    "which element": '[{"box_2d": [670, 275, 750, 725], "point_2d": [710, 500], "label": "Sign in button"}]',
    "When does": '{"start": "00:01.5", "end": "00:02.9"}',
}


def answer(request) -> str:
    """Answer a request from `ANSWERS` by its prompt, with a thought first."""
    for start, text in ANSWERS.items():
        if start in request.prompt:
            return "<|channel>thought\nlooking at the picture<channel|>" + text
    return "A red circle, a blue square, a green triangle and two yellow stars."


@pytest.fixture
def runner(tmp_path: Path) -> DemoRunner:
    """A runner on the replay backend, writing its files under tmp_path."""
    return DemoRunner(Vistool(ReplayBackend(answer)), download_dir=tmp_path / "files")


def upload(name: str) -> dict[str, str]:
    """The record Gradio passes for an uploaded example file."""
    return {"path": str(EXAMPLES / name), "orig_name": name}


def run(runner: DemoRunner, tab: str, file: str, *values) -> dict:
    """Run a tab with budget 70 and 256 new tokens; return the outputs by name."""
    settings = (4 if tab == "video" else 70, 256, False)
    return dict(zip(OUTPUT_NAMES, runner.run(TAB[tab], upload(file), [*values, *settings])))


def test_examples_are_generated_small_and_readable():
    """The shipped examples exist, weigh < 300 KB together and load."""
    files = ["shapes.png", "document.png", "screenshot.png", "clip.webm"]
    assert sum((EXAMPLES / name).stat().st_size for name in files) < 300_000
    for name in files[:3]:
        Image.open(EXAMPLES / name).verify()
    clip = sample_video(EXAMPLES / "clip.webm", num_frames=4)
    assert clip.timestamps[0] == 0.0 and clip.duration == pytest.approx(3.0)
    used = {row[0] for spec in TABS for row in spec.examples}
    assert used <= set(files)


def test_build_app_gives_every_tab_an_endpoint():
    """Seven tabs, each Run button an API endpoint named after the tab, on one queue."""
    demo = build_app(Vistool(ReplayBackend(answer)))
    assert isinstance(demo, gr.Blocks)
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"detect", "point", "ocr", "caption", "ask", "gui", "video"} <= names
    runs = [fn for fn in demo.fns.values() if fn.api_name in {spec.name for spec in TABS}]
    assert all(fn.concurrency_limit == 1 and fn.concurrency_id == "model" for fn in runs)


def test_detect_draws_tabulates_and_downloads(runner):
    """A detection in pixels of the uploaded image: drawn, one table row, JSON, a download
    that reloads as the same result, and the thought kept apart from the answer."""
    out = run(runner, "detect", "shapes.png", "detect", "circle, square")
    row = out["table"].iloc[0]
    assert (row["kind"], row["label"]) == ("box", "circle")
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == pytest.approx((39.8, 40.0, 159.8, 160.0), abs=0.2)
    annotated = Image.open(out["visual"])
    assert annotated.size == (480, 320)
    assert annotated.convert("RGB").tobytes() != Image.open(EXAMPLES / "shapes.png").convert("RGB").tobytes()
    assert out["answer"] == "1 box(es): 1 x circle"
    assert out["json"]["items"][0]["label"] == "circle" and out["json"]["settings"]["budget"] == 70
    saved = TaskResult.from_json(Path(out["download"]).read_text())
    assert saved.source == "shapes.png" and len(saved.detections) == 1
    assert out["thought"] == "looking at the picture" and CIRCLE in out["raw"]
    assert "budget **70**" in out["stats"]


@pytest.mark.parametrize(
    "tab, file, values, kinds, text",
    [
        ("point", "shapes.png", ("star",), ["point", "point"], "2 point(s)"),
        ("ocr", "document.png", ("line",), ["region"], "CORNER CAFE"),
        ("gui", "screenshot.png", ("elements", ""), ["element"], "1 box(es): 1 x button"),
        ("gui", "screenshot.png", ("click", "sign in"), ["box", "click"], "click at (400, 341)"),
        ("caption", "shapes.png", ("short",), [], "A red circle"),
        ("ask", "document.png", ("What is the total?",), [], "A red circle"),
    ],
)
def test_each_image_tab_shows_its_items(runner, tab, file, values, kinds, text):
    """Points, OCR regions, GUI elements, the click point: one row each; text tasks none."""
    out = run(runner, tab, file, *values)
    assert list(out["table"].get("kind", [])) == kinds
    assert out["answer"].startswith(text)
    assert Path(out["visual"]).is_file() and Path(out["download"]).is_file()


def test_video_gallery_marks_the_located_event(runner):
    """The sampled frames come back with mm:ss captions; frames inside the event are marked."""
    out = run(runner, "video", "clip.webm", "locate", "the blue square appears", "off")
    captions = [caption for _, caption in out["visual"]]
    assert captions == ["00:00.0", "00:01.0", "00:01.9  * event", "00:02.9  * event"]
    assert out["answer"] == "from 00:01.5 to 00:02.9"
    assert list(out["table"]["kind"]) == ["segment"] and "frames **4**" in out["stats"]


def test_defaults_follow_the_chosen_task(runner):
    """The budget and token limit preselected for each mode are the task's own."""
    for spec in TABS:
        for field in spec.fields:
            for _, value in field.choices:
                options = {f.name: f.default for f in spec.fields} | {field.name: value}
                task = TASKS[spec.task(options)]
                assert runner.defaults(spec, options) == (task.default_budget, task.max_new_tokens)


def test_bad_inputs_become_messages(runner, tmp_path):
    """No upload, not an image, too many pixels, a refused budget or choice: gr.Error
    with a readable message naming the uploaded file."""
    fake = tmp_path / "notes.png"
    fake.write_text("not pixels")
    settings = [70, 16, False]
    with pytest.raises(gr.Error, match="Upload an image first"):
        runner.run(TAB["detect"], None, ["detect", "cat", *settings])
    with pytest.raises(gr.Error, match=r"cannot load image notes\.png: not an image"):
        runner.run(TAB["detect"], {"path": str(fake), "orig_name": "notes.png"}, ["detect", "cat", *settings])
    small = DemoRunner(runner.vt, max_pixels=10_000, download_dir=tmp_path / "small")
    with pytest.raises(gr.Error, match="exceeds the limit"):
        small.run(TAB["detect"], upload("shapes.png"), ["detect", "cat", *settings])
    with pytest.raises(gr.Error, match="budget 71"):
        runner.run(TAB["detect"], upload("shapes.png"), ["detect", "cat", 71, 16, False])
    with pytest.raises(gr.Error, match="not one of detect, ground"):
        runner.run(TAB["detect"], upload("shapes.png"), ["segment", "cat", *settings])
    with pytest.raises(gr.Error, match="cannot load video shapes.png"):
        runner.run(TAB["video"], upload("shapes.png"), ["ask", "what?", "off", 4, 16, False])


def test_model_failures_become_messages(tmp_path):
    """A backend that raises, or answers with an error, gives a message, not a crash."""

    def broken(request):
        raise RuntimeError("CUDA out of memory")

    failing = DemoRunner(Vistool(ReplayBackend(broken)), download_dir=tmp_path / "a")
    with pytest.raises(gr.Error, match="model call failed: RuntimeError: CUDA out of memory"):
        failing.run(TAB["caption"], upload("shapes.png"), ["short", 70, 16, False])
    erroring = DemoRunner(Vistool(ReplayBackend(lambda request: GenerationResponse.failure("server said 503"))),
                          download_dir=tmp_path / "b")
    with pytest.raises(gr.Error, match="server said 503"):
        erroring.run(TAB["caption"], upload("shapes.png"), ["short", 70, 16, False])


def test_views_format_time_and_summaries():
    """mm:ss.s timestamps and the one-line answer of a text task."""
    assert clock(0) == "00:00.0" and clock(83.25) == "01:23.2" and clock(None) == "?"
    assert summary(TaskResult(task="caption", source="x", image_size=(1, 1), text="hello")) == "hello"


def test_cli_has_a_demo_command():
    """`vistool demo` exists and offers the options of demos/app.py."""
    from typer.testing import CliRunner

    from vistool.cli import app

    output = CliRunner().invoke(app, ["demo", "--help"]).output
    for option in ("--model", "--backend", "--base-url", "--host", "--port", "--share", "--tiny"):
        assert option in output


def test_upload_check_names_a_fake_image_and_status_keeps_the_last_outcome(runner, tmp_path):
    """An upload that is not an image is refused when it arrives, naming the file; each
    session's status line holds its last outcome (the error, or what was done) until its next run."""
    fake = tmp_path / "notes.png"
    fake.write_text("not pixels")
    assert "cannot load image notes.png: not an image" in runner.check_upload(TAB["detect"], {"path": str(fake), "orig_name": "notes.png"})
    assert runner.check_upload(TAB["detect"], upload("shapes.png")) is None
    assert runner.check_upload(TAB["video"], upload("shapes.png")).startswith("cannot load video shapes.png")
    with pytest.raises(gr.Error):
        runner.run(TAB["detect"], None, ["detect", "cat", 70, 16, False], session="alice")
    runner.run(TAB["detect"], upload("shapes.png"), ["detect", "circle", 70, 16, False], session="bob")
    assert runner.status("alice").startswith("Error: Upload an image first")
    assert runner.status("bob").startswith("Done in ") and runner.status("carol").startswith("Ready")


def test_header_names_the_model_and_where_it_runs(tiny_backend):
    """The page header says which model runs where, in words, not the backend's class name."""
    from vistool.app.ui import _model_line

    line = _model_line(Vistool(tiny_backend))
    assert tiny_backend.model_id in line and "running locally on `cpu` (float32)" in line
    assert "TransformersBackend" not in line


def test_demo_on_a_busy_port_fails_in_one_line_before_the_model_loads(tmp_path):
    """`vistool demo --port P` with P taken: exit 2, one line naming the port, no model loaded."""
    import os
    import socket
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "vistool.cli", "demo", "--port", str(port), "--model", str(tmp_path / "none")],
            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}, capture_output=True,
            text=True, timeout=240,
        )
    errors = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
    assert finished.returncode == 2 and len(errors) == 1 and f"port {port}" in errors[0] and "is in use" in errors[0]
    assert "Traceback" not in finished.stderr
