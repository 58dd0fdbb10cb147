"""The demo app served for real: `python demos/app.py` on the tiny offline model, driven by
a headless Chromium (playwright) and by gradio_client.

One server process serves the whole module (127.0.0.1, a free port). Its cold start (process
start to first page served) and request latencies are written to
artifacts/demo_timings.json; screenshots of every tab go to artifacts/screenshots/.
Requests use budget 70 and 8 new tokens: the tiny model's answers are noise anyway, and
these tests check that the app turns any answer into outputs and never falls over.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vistool.tasks import TASKS, TaskResult

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "vistool" / "app" / "examples"
ARTIFACTS = REPO / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOKENS = 8
TIMINGS: dict[str, float | list[float]] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_timings() -> None:
    """Write the timings measured so far to artifacts/demo_timings.json."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo_timings.json").write_text(json.dumps(TIMINGS, indent=2))


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Serve `demos/app.py` on the tiny model in a subprocess; yield its URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           # demos/app.py puts demos/ first on sys.path: make it import this checkout's vistool
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(REPO / "demos" / "app.py"), "--model", str(tiny_model_dir), "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    pytest.fail(f"demo server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"demo server did not answer in 180 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
            TIMINGS["cold_start_s"] = round(time.perf_counter() - started, 2)
            write_timings()
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium driven by playwright (skips when either is missing)."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """Open the app at `url` in a new 1400-px-wide page; return the page once it is built."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.locator("#detect-run").wait_for(timeout=30_000)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    """One page on the app, shared by the browser tests (each opens its own tab)."""
    page = open_page(browser, server)
    yield page
    page.close()


def open_tab(page, title: str) -> None:
    """Click the tab called `title`."""
    page.get_by_role("tab", name=title, exact=True).click()


def set_settings(page, tab: str, budget: bool = True) -> None:
    """Choose budget 70 (image tabs) and 8 new tokens in `tab`."""
    if budget:
        page.locator(f"#{tab}-budget input").click()
        page.get_by_role("option", name="70 · fastest").click()
    tokens = page.locator(f"#{tab}-max-tokens input[type=number]")
    tokens.fill(str(TOKENS))
    tokens.press("Enter")


def run_and_wait(page, tab: str, task: str) -> None:
    """Press Run in `tab` and wait for the result image (or frames) and the JSON of `task`."""
    from playwright.sync_api import expect

    page.locator(f"#{tab}-run").click()
    expect(page.locator(f"#{tab}-json")).to_contain_text(task, timeout=60_000)
    expect(page.locator(f"#{tab}-visual img").first).to_be_visible(timeout=30_000)


def screenshot(page, name: str, keep_toasts: bool = False) -> None:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png (closing the
    notifications first unless `keep_toasts`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if not keep_toasts:
        for button in page.locator("[data-testid=toast-close]").all():
            button.click()
        page.locator("[data-testid=toast-body]").first.wait_for(state="detached", timeout=5_000)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# (tab id, tab title, example file, (field, choice label) to pick or None, the task that runs)
TAB_RUNS = [
    ("detect", "Detect / Ground", "shapes.png", None, "detect"),
    ("point", "Point", "shapes.png", None, "point"),
    ("ocr", "OCR", "document.png", ("output", "Lines with boxes"), "ocr_regions"),
    ("caption", "Caption", "shapes.png", None, "caption"),
    ("ask", "Ask", "document.png", None, "vqa"),
    ("gui", "GUI", "screenshot.png", ("mode", "Where to click"), "gui_ground"),
]


@pytest.mark.browser
@pytest.mark.parametrize("tab, title, example, choice, task", TAB_RUNS, ids=[run[0] for run in TAB_RUNS])
def test_image_tab_in_browser(page, tab, title, example, choice, task):
    """Upload an image, run the tab, and see an annotated image, the JSON, table and stats."""
    from playwright.sync_api import expect

    open_tab(page, title)
    if choice is not None:
        field, label = choice
        page.locator(f"#{tab}-{field}").get_by_label(label).check()
        # the task's default token limit arrives first; our settings go on top of it
        expect(page.locator(f"#{tab}-max-tokens input[type=number]")).to_have_value(str(TASKS[task].max_new_tokens))
    page.locator(f"#{tab}-input input[type=file]").set_input_files(str(EXAMPLES / example))
    set_settings(page, tab)
    run_and_wait(page, tab, task)
    expect(page.locator(f"#{tab}-stats")).to_contain_text("budget 70")
    expect(page.locator(f"#{tab}-stats")).to_contain_text(f"generated {TOKENS}")
    expect(page.locator(f"#{tab}-download")).to_contain_text(".json")
    page.locator(f"#{tab}-raw-accordion").get_by_text("Raw answer and thought").click()
    screenshot(page, tab)


@pytest.mark.browser
def test_gui_example_row_fills_inputs(page):
    """Clicking an example in the GUI tab loads the screenshot and the instruction."""
    from playwright.sync_api import expect

    open_tab(page, "GUI")
    page.locator("#tab-gui").get_by_text("open the Pricing page").click()
    expect(page.locator("#gui-instruction textarea, #gui-instruction input").first).to_have_value("open the Pricing page")
    expect(page.locator("#gui-input img").first).to_be_visible()


@pytest.mark.browser
def test_video_tab_in_browser(page):
    """Upload a clip, sample 4 frames, and see them in the gallery with their timestamps."""
    from playwright.sync_api import expect

    open_tab(page, "Video")
    page.locator("#video-input input[type=file]").set_input_files(str(EXAMPLES / "clip.webm"))
    frames = page.locator("#video-frames input[type=number]")
    frames.fill("4")
    frames.press("Enter")
    set_settings(page, "video", budget=False)
    run_and_wait(page, "video", "video")
    expect(page.locator("#video-stats")).to_contain_text("frames 4")
    expect(page.locator("#video-visual")).to_contain_text("00:02.9")  # the last frame's timestamp
    screenshot(page, "video")


@pytest.mark.browser
def test_non_image_upload_shows_error_and_app_keeps_answering(page, tmp_path):
    """A text file named .png passes the browser's file filter; the server says it is not
    an image, and the next request works."""
    from playwright.sync_api import expect

    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels")
    open_tab(page, "Detect / Ground")
    page.locator("#detect-input input[type=file]").set_input_files(str(fake))
    set_settings(page, "detect")
    page.locator("#detect-run").click()
    expect(page.get_by_text("not an image").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("notes.png").first).to_be_visible()
    screenshot(page, "error-not-an-image", keep_toasts=True)

    page.locator("#detect-input input[type=file]").set_input_files(str(EXAMPLES / "shapes.png"))
    run_and_wait(page, "detect", "detect")


def box_2d(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> list[int]:
    """Return a pixel box as Gemma 4's box_2d: [y1, x1, y2, x2] on 0..1000."""
    return [round(y1 / height * 1000), round(x1 / width * 1000), round(y2 / height * 1000), round(x2 / width * 1000)]


# Where things are in the examples (pixels), from demos/make_examples.py.
SHAPES = [("circle", (40, 40, 160, 160)), ("square", (200, 60, 300, 160)), ("triangle", (340, 40, 460, 160)),
          ("star", (86, 214, 154, 280)), ("star", (296, 214, 364, 280))]
ELEMENTS = [("text", "Acme Cloud", (28, 14, 145, 37)), ("link", "Pricing", (606, 16, 655, 36)),
            ("input", "you@example.com", (220, 173, 580, 208)), ("input", "******", (220, 240, 580, 275)),
            ("checkbox", "Remember me", (224, 292, 338, 308)), ("link", "Forgot password?", (468, 291, 580, 308)),
            ("button", "Sign in", (220, 322, 580, 360))]


def exact_answer(request) -> str:
    """Answer like a perfect model: the true boxes of the shapes and of the page's elements."""
    if request.prompt.startswith("Detect every"):
        items = [{"box_2d": box_2d(*box, 480, 320), "label": label} for label, box in SHAPES]
    elif request.prompt.startswith("List every visible"):
        items = [{"box_2d": box_2d(*box, 800, 480), "label": kind, "text": text, "interactive": kind != "text"}
                 for kind, text, box in ELEMENTS]
    else:
        return "I only answer detection and GUI questions."
    return "```json\n" + json.dumps(items) + "\n```"


@pytest.fixture(scope="module")
def exact_server():
    """The app in this process on a replay backend with exact answers; yields its URL."""
    from vistool.api import Vistool
    from vistool.app import build_app
    from vistool.runtime.replay import ReplayBackend

    demo = build_app(Vistool(ReplayBackend(exact_answer, model_id="exact answers (replay)")))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.mark.browser
def test_exact_answers_are_drawn_and_tabulated_in_browser(browser, exact_server):
    """With right answers the page shows them: boxes on the image and one table row each."""
    from playwright.sync_api import expect

    page = open_page(browser, exact_server)
    try:
        page.locator("#detect-input input[type=file]").set_input_files(str(EXAMPLES / "shapes.png"))
        run_and_wait(page, "detect", "detect")
        expect(page.locator("#detect-answer textarea")).to_have_value("5 box(es): 1 x circle, 1 x square, 1 x triangle, 2 x star")
        expect(page.locator("#detect-table")).to_contain_text("triangle")
        screenshot(page, "detect-exact-answers")
        open_tab(page, "GUI")
        page.locator("#gui-input input[type=file]").set_input_files(str(EXAMPLES / "screenshot.png"))
        run_and_wait(page, "gui", "gui_elements")
        expect(page.locator("#gui-table")).to_contain_text("Forgot password?")
        screenshot(page, "gui-exact-answers")
    finally:
        page.close()


# ------------------------------------------------------------------- gradio_client


@pytest.fixture(scope="module")
def client(server):
    """A gradio_client connected to the demo."""
    from gradio_client import Client

    return Client(server, verbose=False)


def image_call(client, api: str, example: str, *options):
    """Call an image endpoint with budget 70, few tokens and free generation (a structured
    answer may end before TOKENS); return its outputs."""
    from gradio_client import handle_file

    return client.predict(handle_file(str(EXAMPLES / example)), *options, 70, TOKENS, False, structured=False, api_name=api)


CLIENT_CALLS = [
    ("/detect", "shapes.png", ("detect", "circle, square"), "detect"),
    ("/detect", "shapes.png", ("ground", "the red circle"), "ground"),
    ("/point", "shapes.png", ("star",), "point"),
    ("/ocr", "document.png", ("plain",), "ocr"),
    ("/ocr", "document.png", ("word",), "ocr_regions"),
    ("/caption", "shapes.png", ("short",), "caption"),
    ("/ask", "document.png", ("What is the total?",), "vqa"),
    ("/gui", "screenshot.png", ("elements", ""), "gui_elements"),
    ("/gui", "screenshot.png", ("click", "click Sign in"), "gui_ground"),
]


def test_every_endpoint_answers(client):
    """Each tab is an API endpoint; every output is there, and the download reloads."""
    from gradio_client import handle_file

    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/detect", "/point", "/ocr", "/caption", "/ask", "/gui", "/video"} <= names
    for api, example, options, task in CLIENT_CALLS:
        visual, answer, stats, table, view, download, raw, thought = image_call(client, api, example, *options)
        assert Path(visual).is_file(), api
        assert view["task"] == task and view["settings"]["budget"] == 70
        assert f"generated **{TOKENS}**" in stats
        assert set(table) >= {"headers", "data"}
        result = TaskResult.from_json(Path(download).read_text())
        assert result.task == task and result.provenance["raw_answer"] == raw
    frames, _, stats, _, view, _, _, _ = client.predict(
        handle_file(str(EXAMPLES / "clip.webm")), "locate", "the blue square appears", "off", 4, TOKENS, False, api_name="/video"
    )
    assert view["task"] == "video_locate" and len(frames) == 4 and "frames **4**" in stats


def test_bad_requests_get_messages(client, tmp_path):
    """Not an image, a budget the model lacks, an empty expression: each is a readable
    error, and the app goes on answering."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    fake = tmp_path / "fake.png"
    fake.write_text("not pixels")
    cases = [
        ((handle_file(str(fake)), "detect", "cat", 70, TOKENS, False), "/detect", "not an image"),
        ((handle_file(str(EXAMPLES / "shapes.png")), "detect", "cat", 71, TOKENS, False), "/detect", "budget 71"),
        ((handle_file(str(EXAMPLES / "shapes.png")), "ground", " ", 70, TOKENS, False), "/detect", "empty referring"),
        ((handle_file(str(EXAMPLES / "shapes.png")), "ask", "what?", "off", 4, TOKENS, False), "/video", "cannot load video"),
    ]
    for arguments, api, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*arguments, api_name=api)
    assert image_call(client, "/detect", "shapes.png", "detect", "circle")[4]["task"] == "detect"


def test_eight_concurrent_requests_all_complete(server):
    """Eight users at once are queued (one model call at a time) and all get answers."""
    from gradio_client import Client, handle_file

    def one(index: int) -> tuple[str, float]:
        client = Client(server, verbose=False)
        started = time.perf_counter()
        outputs = client.predict(handle_file(str(EXAMPLES / "shapes.png")), "detect", f"shape {index}", 70, TOKENS,
                                 False, api_name="/detect")
        return outputs[4]["task"], time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert [task for task, _ in results] == ["detect"] * 8
    TIMINGS["concurrent_8_total_s"] = round(time.perf_counter() - started, 2)
    write_timings()


def test_detect_latency(client):
    """Median latency of 10 Detect calls (budget 70, 8 new tokens), recorded in artifacts."""
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        image_call(client, "/detect", "shapes.png", "detect", "circle, square, triangle")
        latencies.append(time.perf_counter() - started)
    TIMINGS["detect_latency_s"] = [round(value, 3) for value in latencies]
    TIMINGS["detect_median_s"] = round(statistics.median(latencies), 3)
    write_timings()
    assert TIMINGS["detect_median_s"] < 30
