"""A simulated resolution-limited model, for zoom's tests and benchmark (not a model!).

`SimulatedModel` is a vistool backend that knows the ground truth of synthetic scenes
and answers every request like a model that sees the request's image through the
family's resize rule at the request's budget, and nothing else:

  - the image it is asked about is a scene, or a crop of one (the crop's box is in
    `image.info["vistool_crop"]`, which vistool's zoom writes on every crop; the scene
    is found by comparing pixels), so it answers a crop exactly as the crop's geometry
    allows: an object cut by the crop's border is answered as its visible part;
  - objects whose visible part is smaller than `min_px` pixels of the RESIZED image are
    missed; the others are located with Gaussian noise of `noise_px` resized pixels
    (so the error in image pixels is proportional to the resize factor), snapped to
    the resized pixel grid, then written in the family's native format (`format_answer`:
    Gemma 4's 0..1000 `box_2d`, y first);
  - a region question (refine's first pass) is answered with the target's box plus
    `context_px` resized pixels on each side, if at least `region_min_px` of it shows.

It reads the task and its fields back from the prompt (every task's template, matched
exactly), reports the image tokens the family's rule gives, and counts its calls. With
`exact=True` it is an oracle: no noise, no misses, no snapping (only the native
format's own quantisation). Its accuracy gains come from resolution ALONE: a real
model is measured with `vistool eval screenspot --zoom refine`.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from vistool.postprocess import format_answer
from vistool.profiles import get_profile
from vistool.runtime.types import GenerationRequest, GenerationResponse
from vistool.tasks import TASKS
from vistool.zoom.mapping import CROP_INFO

# Tasks the simulation answers, in the order their prompts are tried.
SIMULATED_TASKS = ("region", "gui_ground", "gui_elements", "ocr_regions", "point", "ground", "detect")
EMPTY = "```json\n[]\n```"


@dataclass
class Scene:
    """A synthetic image and its ground truth: boxes (n, 4) in displayed pixels, a class
    label per box (what detect / point / OCR / GUI elements answer) and a unique name
    per box (what ground / gui_ground / region look for; defaults to the labels)."""

    image: Image.Image
    xyxy: np.ndarray
    labels: list[str]
    names: list[str] = field(default_factory=list)
    name: str = "scene"

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        if not self.names:
            self.names = list(self.labels)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def pixels(self) -> np.ndarray:
        """The image as an (H, W, 3) array (made once)."""
        if getattr(self, "_pixels", None) is None:
            self._pixels = np.asarray(self.image)
        return self._pixels


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex that matches a prompt made from `template`, capturing its fields."""
    parts, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


class SimulatedModel:
    """A backend answering from ground truth through the budget's resize (see the module doc).

    Takes the scenes, the model family (its resize rule and answer format), the miss
    threshold and the localisation noise in resized pixels, the region context and
    threshold, `exact` (an oracle) and a seed. `calls` counts requests; `log` holds
    (scene name, crop box, task) of each.
    """

    def __init__(self, scenes: Sequence[Scene], profile: str = "gemma4", *, min_px: float = 6.0, noise_px: float = 1.0,
                 context_px: float = 24.0, region_min_px: float = 1.0, exact: bool = False, seed: int = 0) -> None:
        self.scenes = list(scenes)
        self.profile = get_profile(profile)
        self.model_id = "simulated-" + self.profile.name
        self.profile_name = self.profile.name
        self.min_px, self.noise_px, self.exact, self.seed = min_px, noise_px, exact, seed
        self.context_px, self.region_min_px = context_px, region_min_px
        self.calls = 0
        self.log: list[tuple[str, tuple[int, int, int, int], str]] = []
        self._patterns = []
        for name in SIMULATED_TASKS:
            spec = TASKS[name]
            templates = list(spec.prompts.values()) + [t for key, t in self.profile.prompts.items() if key.split(".")[0] == name]
            self._patterns.extend((name, _template_regex(template)) for template in templates)

    # ------------------------------------------------------------------ backend
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Answer each request from the ground truth of the scene it shows."""
        return [self._answer(request) for request in requests]

    def _answer(self, request: GenerationRequest) -> GenerationResponse:
        self.calls += 1
        image = request.images[0]
        box = tuple(int(v) for v in image.info.get(CROP_INFO, (0, 0, image.width, image.height)))
        scene = self._scene_of(image, box)
        task, fields = self._task_of(request.prompt)
        settings = {**request.settings(), "model": self.model_id, "profile": self.profile_name, "backend": "simulated"}
        if scene is None or task is None:
            what = "an image of no known scene" if scene is None else f"a prompt it cannot read: {request.prompt[:60]!r}"
            return GenerationResponse.failure(f"simulated model: {what}", settings)
        self.log.append((scene.name, box, task))
        crop_size = (box[2] - box[0], box[3] - box[1])
        resized = self.profile.resized_size(crop_size, request.budget) or crop_size
        text = self._text(scene, box, crop_size, resized, task, fields, request)
        tokens = self.profile.image_tokens(crop_size, request.budget) or 0
        return GenerationResponse(
            text=text, raw_text=text, prompt_tokens=tokens + len(request.prompt.split()), image_tokens=tokens,
            generated_tokens=max(1, len(text) // 3), settings=settings, image_sizes=[tuple(resized)],
        )

    # ------------------------------------------------------------------ reading
    def _scene_of(self, image: Image.Image, box: tuple[int, int, int, int]) -> Scene | None:
        """The scene whose pixels inside `box` are the request's image."""
        pixels = np.asarray(image)
        for scene in self.scenes:
            if box[2] > scene.size[0] or box[3] > scene.size[1] or (box[2] - box[0], box[3] - box[1]) != image.size:
                continue
            region = scene.pixels[box[1] : box[3], box[0] : box[2]]
            if region.shape == pixels.shape and np.array_equal(region[::7, ::7], pixels[::7, ::7]) and np.array_equal(region, pixels):
                return scene
        return None

    def _task_of(self, prompt: str) -> tuple[str | None, dict[str, str]]:
        """The task a prompt asks and its fields (classes, expression, ...)."""
        for name, pattern in self._patterns:
            match = pattern.fullmatch(prompt)
            if match:
                return name, match.groupdict()
        return None, {}

    def _targets(self, scene: Scene, task: str, fields: dict[str, str]) -> list[int]:
        """The ground-truth objects the task asks about."""
        if task == "detect" and fields.get("classes"):
            wanted = {name.strip().casefold() for name in fields["classes"].split(",")}
            return [i for i, label in enumerate(scene.labels) if label.casefold() in wanted]
        if task in ("detect", "ocr_regions", "gui_elements"):
            return list(range(len(scene.labels)))
        key = {"ground": "expression", "point": "description", "gui_ground": "instruction", "region": "target"}[task]
        wanted = fields.get(key, "").casefold()
        if task == "point":
            return [i for i, label in enumerate(scene.labels) if label.casefold() == wanted]
        return [i for i, name in enumerate(scene.names) if name.casefold() == wanted][:1]

    # ------------------------------------------------------------------ answering
    def _rng(self, scene: Scene, box: tuple[int, ...], index: int, request: GenerationRequest) -> np.random.Generator:
        """A generator seeded by what is asked, so the same request always gets the same answer."""
        key = f"{self.seed}|{scene.name}|{box}|{index}|{request.prompt}|{request.budget}".encode()
        return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))

    def _text(self, scene: Scene, box, crop_size, resized, task: str, fields: dict[str, str], request: GenerationRequest) -> str:
        """The native answer for one request."""
        sx, sy = resized[0] / crop_size[0], resized[1] / crop_size[1]
        scale = np.array([sx, sy, sx, sy])
        offset = np.array([box[0], box[1], box[0], box[1]], dtype=np.float64)
        limit = np.array([crop_size[0], crop_size[1], crop_size[0], crop_size[1]], dtype=np.float64)
        boxes, labels = [], []
        for index in self._targets(scene, task, fields):
            visible = np.clip(scene.xyxy[index] - offset, 0, limit)
            if visible[2] <= visible[0] or visible[3] <= visible[1]:
                continue
            seen = visible * scale  # in resized pixels
            small = min(seen[2] - seen[0], seen[3] - seen[1])
            if task == "region":
                if small < self.region_min_px and not self.exact:
                    continue
                grow = self.context_px + (0 if self.exact else self._rng(scene, box, index, request).normal(0, 3.0, 4))
                seen = seen + np.array([-1, -1, 1, 1]) * np.abs(grow)
            elif not self.exact:
                if small < self.min_px:
                    continue
                seen = np.round(seen + self._rng(scene, box, index, request).normal(0, self.noise_px, 4))
            seen = np.clip(seen, 0, np.array([resized[0], resized[1], resized[0], resized[1]], dtype=np.float64))
            seen[2:] = np.maximum(seen[2:], seen[:2] + (1.0 if not self.exact else 1e-6))
            boxes.append(seen / scale)
            labels.append(scene.labels[index] if task in ("detect", "point", "ocr_regions", "gui_elements") else scene.names[index])
        if not boxes:
            return EMPTY
        pixels = np.array(boxes, dtype=np.float64)
        kind = "points" if task == "point" else "ocr_regions" if task == "ocr_regions" else "boxes"
        if kind == "points":
            pixels = np.stack([(pixels[:, 0] + pixels[:, 2]) / 2, (pixels[:, 1] + pixels[:, 3]) / 2], axis=1)
        resized_size = tuple(resized) if self.profile.needs_resized_size else None
        return format_answer(self.profile, kind, pixels, labels, crop_size, resized_size)


# ---------------------------------------------------------------------- scenes
def noise_background(size: tuple[int, int], seed: int) -> Image.Image:
    """A random, mid-grey noise image (every crop of it is unique, so crops find their scene)."""
    rng = np.random.default_rng(seed)
    width, height = size
    return Image.fromarray(rng.integers(90, 166, (height, width, 3), dtype=np.uint8))


def draw_objects(image: Image.Image, xyxy: np.ndarray, seed: int) -> Image.Image:
    """Draw each box as a filled rectangle of a random saturated colour (in place); return the image."""
    rng = np.random.default_rng(seed + 1)
    pen = ImageDraw.Draw(image)
    for x1, y1, x2, y2 in np.asarray(xyxy).tolist():
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        pen.rectangle([x1, y1, x2 - 1, y2 - 1], fill=colour)
    return image


def screenshot_scene(seed: int, size: tuple[int, int] = (3840, 2160), targets: int = 24, smallest: int = 12,
                     largest: int = 40, name: str | None = None) -> Scene:
    """A synthetic 4K "screenshot": noise with `targets` non-overlapping UI targets of
    `smallest`..`largest` px, half "icon" (square) and half "button" (wider), each with a
    unique name ("icon 3", "button 7")."""
    rng = np.random.default_rng(seed)
    width, height = size
    boxes: list[list[float]] = []
    labels: list[str] = []
    while len(boxes) < targets:
        kind = "icon" if len(boxes) % 2 == 0 else "button"
        side = float(rng.integers(smallest, largest + 1))
        w, h = (side, side) if kind == "icon" else (min(largest * 3.0, side * float(rng.uniform(2, 3))), side)
        x1, y1 = float(rng.integers(0, width - int(w))), float(rng.integers(0, height - int(h)))
        box = [x1, y1, x1 + w, y1 + h]
        if any(not (box[2] + 8 < b[0] or b[2] + 8 < box[0] or box[3] + 8 < b[1] or b[3] + 8 < box[1]) for b in boxes):
            continue
        boxes.append(box)
        labels.append(kind)
    names = [f"{label} {index}" for index, label in enumerate(labels)]
    image = draw_objects(noise_background(size, seed), np.array(boxes), seed)
    return Scene(image, np.array(boxes), labels, names, name or f"screen{seed}")
