"""The demo app's tabs, declared: what each tab asks for and which task method it calls.

A tab is a `TabSpec`: its input fields (`Field`s), how its options pick a task (for the
default budget and token limit) and how it calls `Vistool`. `vistool.app.ui` builds every
tab from its declaration with the same code, so adding a tab means adding a record here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vistool.api import Vistool
from vistool.tasks import TaskResult

Options = Mapping[str, Any]
Runner = Callable[[Vistool, Any, Options, dict[str, Any]], TaskResult]


@dataclass(frozen=True)
class Field:
    """One input of a tab.

    name: the option name the runner reads; kind: "text" or "radio"; label and info: what
    the user sees; default: the initial value; choices: (label, value) pairs of a radio.
    """

    name: str
    kind: str
    label: str
    default: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    info: str = ""


@dataclass(frozen=True)
class TabSpec:
    """One tab of the demo.

    name: the tab's id and its API name (`/name`); title: the tab label; intro: one line
    under it; media: "image" or "video"; fields: the task inputs; task: the TASKS name
    the options select (it gives the default budget and token limit); run: calls the
    task on `Vistool` with (vt, image or video path, options, settings); examples: rows
    of (example file name, field values...); zoom: the zoom modes the tab offers (a
    toggle after the settings; its value reaches `run` as `settings["zoom"]`).
    """

    name: str
    title: str
    intro: str
    fields: tuple[Field, ...]
    task: Callable[[Options], str]
    run: Runner
    media: str = "image"
    examples: tuple[tuple[str, ...], ...] = ()
    zoom: tuple[str, ...] = ()


def _detect(vt: Vistool, image: Any, options: Options, settings: dict[str, Any]) -> TaskResult:
    """Detect the listed classes (all objects when empty) or ground an expression."""
    query = str(options["query"] or "").strip()
    if options["mode"] == "ground":
        return vt.ground(image, query, **settings)
    return vt.detect(image, query or None, **settings)


def _ocr(vt: Vistool, image: Any, options: Options, settings: dict[str, Any]) -> TaskResult:
    """Read plain text, or text lines / words with boxes."""
    output = options["output"]
    return vt.ocr(image, regions=output != "plain", granularity="line" if output == "plain" else output, **settings)


def _gui(vt: Vistool, image: Any, options: Options, settings: dict[str, Any]) -> TaskResult:
    """List a screenshot's elements, or find where to click for an instruction."""
    if options["mode"] == "click":
        return vt.gui_ground(image, options["instruction"], **settings)
    return vt.gui_elements(image, **settings)


def _video(vt: Vistool, path: Any, options: Options, settings: dict[str, Any]) -> TaskResult:
    """Answer a question about a clip, or locate an event in time."""
    query = str(options["query"] or "").strip()
    if options["mode"] == "locate":
        return vt.video(path, locate=query, audio=options.get("audio") == "on", **settings)
    return vt.video(path, query, audio=options.get("audio") == "on", **settings)


TABS: tuple[TabSpec, ...] = (
    TabSpec(
        name="detect",
        title="Detect / Ground",
        intro="Boxes for the classes you list (one prompt for all of them), or for the object a phrase describes.",
        fields=(
            Field("mode", "radio", "Mode", "detect", (("Detect classes", "detect"), ("Ground an expression", "ground"))),
            Field(
                "query", "text", "Classes or expression", "circle, square, triangle",
                info="Detect: comma-separated class names (empty: all objects). Ground: a phrase, e.g. 'the red circle'.",
            ),
        ),
        task=lambda options: "ground" if options["mode"] == "ground" else "detect",
        run=_detect,
        examples=(("shapes.png", "detect", "circle, square, triangle"), ("shapes.png", "ground", "the red circle")),
        zoom=("tiles", "refine"),
    ),
    TabSpec(
        name="point",
        title="Point",
        intro="A point on every instance of a description, and how many there are.",
        fields=(Field("description", "text", "What to point at", "star"),),
        task=lambda options: "point",
        run=lambda vt, image, options, settings: vt.point(image, options["description"], **settings),
        examples=(("shapes.png", "star"),),
        zoom=("tiles",),
    ),
    TabSpec(
        name="ocr",
        title="OCR",
        intro="The text of the image in reading order, or its lines / words with boxes.",
        fields=(
            Field(
                "output", "radio", "Output", "plain",
                (("Plain text", "plain"), ("Lines with boxes", "line"), ("Words with boxes", "word")),
            ),
        ),
        task=lambda options: "ocr" if options["output"] == "plain" else "ocr_regions",
        run=_ocr,
        examples=(("document.png", "plain"), ("document.png", "line")),
        zoom=("tiles",),
    ),
    TabSpec(
        name="caption",
        title="Caption",
        intro="A description of the image.",
        fields=(Field("length", "radio", "Length", "normal", (("Short", "short"), ("Normal", "normal"), ("Detailed", "detailed"))),),
        task=lambda options: "caption",
        run=lambda vt, image, options, settings: vt.caption(image, options["length"], **settings),
        examples=(("shapes.png", "short"),),
    ),
    TabSpec(
        name="ask",
        title="Ask",
        intro="Ask any question about the image (visual question answering).",
        fields=(Field("question", "text", "Question", "How many shapes are there, and what colours are they?"),),
        task=lambda options: "vqa",
        run=lambda vt, image, options, settings: vt.ask(image, options["question"], **settings),
        examples=(
            ("shapes.png", "How many shapes are there, and what colours are they?"),
            ("document.png", "What is the total amount?"),
        ),
    ),
    TabSpec(
        name="gui",
        title="GUI",
        intro="The elements of a screenshot (type, text, box), or the element and point to click for an instruction.",
        fields=(
            Field("mode", "radio", "Mode", "elements", (("List elements", "elements"), ("Where to click", "click"))),
            Field("instruction", "text", "Instruction", "click the Sign in button", info="Used in 'Where to click' mode."),
        ),
        task=lambda options: "gui_ground" if options["mode"] == "click" else "gui_elements",
        run=_gui,
        examples=(("screenshot.png", "elements", "click the Sign in button"), ("screenshot.png", "click", "open the Pricing page")),
        zoom=("tiles", "refine"),
    ),
    TabSpec(
        name="video",
        title="Video",
        intro="Ask about a clip, or find when something happens. Frames are sampled with their timestamps (70 image tokens each).",
        fields=(
            Field("mode", "radio", "Mode", "ask", (("Answer a question", "ask"), ("Locate an event", "locate"))),
            Field(
                "query", "text", "Question or event", "What happens in this clip?",
                info="Ask: a question. Locate: the event, e.g. 'the blue square appears'.",
            ),
            Field(
                "audio", "radio", "Sound", "off", (("Frames only", "off"), ("Frames + sound track", "on")),
                info="Let the model hear the clip's first 30 s of sound (Gemma 4 E2B/E4B; other models refuse).",
            ),
        ),
        task=lambda options: "video_locate" if options["mode"] == "locate" else "video",
        run=_video,
        media="video",
        examples=(("clip.webm", "ask", "What happens in this clip?", "off"), ("clip.webm", "locate", "the blue square appears", "off")),
    ),
)
