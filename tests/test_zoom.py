"""Zoom: tile grids, crops mapped back to pixels, merging across tile borders, refine.

Answers come from the simulated resolution-limited model (eval/zoom_sim.py), which knows
each synthetic scene's ground truth and answers every tile or crop as its geometry and
the budget's resize allow; with `exact=True` it is an oracle (native-format quantisation
only), so every step from crop to whole-image pixels is checked exactly by COCO mAP.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from eval.zoom_sim import Scene, SimulatedModel, draw_objects, noise_background, screenshot_scene
from vistool.errors import VistoolError
from vistool.io.images import load_image
from vistool.postprocess.oracle import OracleImage, coco_map
from vistool.profiles import get_profile
from vistool.runtime.types import GenerationResponse
from vistool.tasks import TASKS, RunSettings
from vistool.zoom import ZoomJob, ZoomSettings, check_zoom, run_jobs, tile_grid
from vistool.zoom.merge import join_texts, merge_boxes

GEMMA = get_profile("gemma4")
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- helpers
def random_scene(size, count, seed, smallest=40, largest=120, labels=("cat", "dog"), extra=()):
    """A noise image with `count` non-overlapping boxes (plus `extra` boxes as given)."""
    rng = np.random.default_rng(seed)
    width, height = size
    boxes = [list(box) for box in extra]
    tries = 0
    while len(boxes) < count + len(extra) and tries < 20000:
        tries += 1
        w = float(rng.integers(smallest, min(largest, width) + 1))
        h = float(rng.integers(smallest, min(largest, height) + 1))
        x1, y1 = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
        box = [x1, y1, x1 + w, y1 + h]
        if all(box[2] + 4 < b[0] or b[2] + 4 < box[0] or box[3] + 4 < b[1] or b[3] + 4 < box[1] for b in boxes):
            boxes.append(box)
    names = [labels[i % len(labels)] for i in range(len(boxes))]
    image = draw_objects(noise_background(size, seed), np.array(boxes), seed)
    return Scene(image, np.array(boxes), names, [f"{name} {i}" for i, name in enumerate(names)], f"scene{seed}")


def run(task, scene_or_scenes, options, zoom, sim=None, budget=None):
    """Run one zoomed task per scene through the simulated model; return (results, sim)."""
    scenes = scene_or_scenes if isinstance(scene_or_scenes, list) else [scene_or_scenes]
    sim = sim or SimulatedModel(scenes, exact=True)
    settings = RunSettings(budget=budget)
    jobs = [ZoomJob(TASKS[task], GEMMA, options, settings, scene.image, scene.name, ZoomSettings.parse(zoom)) for scene in scenes]
    run_jobs(jobs, sim.generate)
    return [job.result() for job in jobs], sim


def mean_ap(scenes, detections, classes=("cat", "dog")):
    truth = [OracleImage(i + 1, scene.size, scene.xyxy, scene.labels) for i, scene in enumerate(scenes)]
    return coco_map(truth, detections, list(classes))


def matches(found: sv.Detections, truth: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """How many found boxes overlap each true box by at least `iou`."""
    if not len(found):
        return np.zeros(len(truth), dtype=int)
    return (sv.box_iou_batch(truth, found.xyxy) >= iou).sum(axis=1)


# ----------------------------------------------------------------- settings
def test_zoom_settings_parse_and_refuse():
    assert ZoomSettings.parse(None).mode == "off" and not ZoomSettings.parse("off").on
    tiles = ZoomSettings.parse("tiles:tile=640x480,overlap=64,whole=true,merge=wbf")
    assert (tiles.tile, tiles.overlap, tiles.whole, tiles.merge) == ((640, 480), 64, True, "wbf")
    assert ZoomSettings.parse(tiles.text()) == tiles
    assert ZoomSettings.parse({"mode": "refine", "depth": 2}).depth == 2
    for bad in ("zoomy", "tiles:tile=3", "tiles:overlap=1.5", "tiles:size=4", "tiles:whole=maybe", "refine:depth=9", "tiles:tile"):
        with pytest.raises(VistoolError):
            ZoomSettings.parse(bad)
    with pytest.raises(VistoolError, match="does not apply to task 'caption'"):
        check_zoom("caption", "tiles")
    with pytest.raises(VistoolError, match="gui_ground"):
        check_zoom("gui_ground", "tiles")
    assert check_zoom("ground", "refine").mode == "refine"


# ----------------------------------------------------------------- tiling
def test_auto_grid_covers_the_image_at_the_wanted_resolution():
    settings = ZoomSettings(mode="tiles")
    for size, budget in [((3840, 2160), 280), ((3840, 2160), 1120), ((2160, 3840), 280), ((5000, 400), 70)]:
        grid = tile_grid(size, GEMMA, budget, settings)
        covered = np.zeros(size[::-1], dtype=bool)
        for x1, y1, x2, y2 in grid.boxes:
            assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
            resized = GEMMA.resized_size((x2 - x1, y2 - y1), budget)
            assert min(resized[0] / (x2 - x1), resized[1] / (y2 - y1)) >= settings.resolution
            covered[y1:y2, x1:x2] = True
        assert covered.all() and len(grid.boxes) > 1
        xs = sorted({box[0] for box in grid.boxes})
        if len(xs) > 1:  # neighbours overlap by the asked fraction of the tile
            assert grid.boxes[0][2] - xs[1] >= 0.2 * grid.tile[0] - 1
    small = tile_grid((640, 480), GEMMA, 280, settings)
    assert small.boxes == [(0, 0, 640, 480)]  # seen at full resolution already: one pass


def test_fixed_grid_last_tile_narrower_and_strips():
    grid = tile_grid((1000, 700), GEMMA, 280, ZoomSettings(mode="tiles", tile=400, overlap=0.25))
    assert sorted({(b[0], b[2]) for b in grid.boxes}) == [(0, 400), (300, 700), (600, 1000)]
    assert sorted({(b[1], b[3]) for b in grid.boxes}) == [(0, 400), (300, 700)]
    narrow = tile_grid((1050, 400), GEMMA, 280, ZoomSettings(mode="tiles", tile=400, overlap=100))
    assert [(b[0], b[2]) for b in narrow.boxes] == [(0, 400), (300, 700), (600, 1000), (900, 1050)]  # 150 wide
    strip = tile_grid((40, 3000), GEMMA, 280, ZoomSettings(mode="tiles", tile=512, overlap=128))
    assert {(b[0], b[2]) for b in strip.boxes} == {(0, 40)} and strip.boxes[-1][3] == 3000
    with pytest.raises(VistoolError, match="max_tiles"):
        tile_grid((3840, 2160), GEMMA, 280, ZoomSettings(mode="tiles", tile=64, overlap=0))
    with pytest.raises(VistoolError, match="smaller than the tile"):
        tile_grid((3840, 2160), GEMMA, 280, ZoomSettings(mode="tiles", tile=100, overlap=100))


# ------------------------------------------------------- oracle round trips
EDGE_CASES = {
    # last tiles narrower than the others (1000 = 400 + 300 + 300, 700 = 400 + 300)
    "last_tile_narrower": (dict(size=(1000, 700), count=18, seed=1), "tiles:tile=400,overlap=0.25"),
    # overlap (150 px) larger than every object (40..120 px), plus one object larger than any tile
    "overlap_larger_than_objects": (dict(size=(1200, 900), count=20, seed=2, extra=[(330.0, 280.0, 880.0, 640.0)]),
                                    "tiles:tile=450,overlap=150"),
    # a 40x3000 strip cut into 7 tiles
    "strip_40x3000": (dict(size=(40, 3000), count=12, seed=3, smallest=20, largest=40), "tiles:tile=512,overlap=128"),
    # tiles chosen from the budget (Gemma 4 at 70 tokens) on a 4K image
    "auto_4k": (dict(size=(3840, 2160), count=40, seed=4), "tiles"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_oracle_round_trip_through_tiles(case):
    scene_args, zoom = EDGE_CASES[case]
    scene = random_scene(**scene_args)
    results, sim = run("detect", scene, {"classes": ["cat", "dog"]}, zoom, budget=70)
    grid = results[0].provenance["zoom"]["grid"]
    assert grid["tiles"] > 1 and sim.calls == grid["tiles"]
    assert mean_ap([scene], [results[0].detections]) >= 0.99
    assert len(results[0].detections) == len(scene.labels)  # every object once: no duplicate survived


def test_oracle_round_trip_exif_rotated_input(tmp_path):
    displayed = random_scene((900, 1400), 16, seed=5)
    stored = displayed.image.rotate(90, expand=True)  # orientation 6 turns it back by 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.size == (900, 1400)
    scene = Scene(loaded.image, displayed.xyxy, displayed.labels, displayed.names, "rotated")
    results, _ = run("detect", scene, {"classes": ["cat", "dog"]}, "tiles:tile=512,overlap=160", budget=70)
    assert results[0].image_size == (900, 1400)
    assert mean_ap([scene], [results[0].detections]) >= 0.99


def test_oracle_round_trip_through_refine_crops():
    scenes = [screenshot_scene(seed, targets=12, smallest=40, largest=60) for seed in (1, 2)]
    detections, calls = [], 0
    for scene in scenes:
        found = []
        for index, name in enumerate(scene.names):
            (result,), sim = run("ground", scene, {"expression": name}, "refine", budget=280)
            passes = result.provenance["zoom"]["passes"]
            assert [p["purpose"] for p in passes] == ["region", "task"] and not passes[1]["whole_image"]
            assert len(result.detections) == 1
            calls += sim.calls
            found.append(result.detections.xyxy[0])
        detections.append(sv.Detections(np.array(found), class_id=np.array([0 if l == "icon" else 1 for l in scene.labels]),
                                        data={"class_name": np.array(scene.labels)}))
    assert calls == 2 * sum(len(scene.names) for scene in scenes)
    assert mean_ap(scenes, detections, ("icon", "button")) >= 0.99


# ------------------------------------------------------- merging across borders
def test_an_object_cut_by_a_tile_border_is_merged_to_its_whole_box():
    """Tile A sees 10 px of the object (a piece: IoU with the whole box 0.1), tile B all of it."""
    tiles = [(0, 0, 500, 500), (400, 0, 900, 500)]
    whole = [490.0, 100.0, 590.0, 200.0]
    xyxy = np.array([[490.0, 100.0, 500.0, 200.0], whole, [300.0, 300.0, 340.0, 340.0]])
    merged = merge_boxes(xyxy, np.array([0, 0, 0]), np.array([0, 1, 0]), tiles, [1.0, 1.0], (900, 500))
    assert len(merged) == 2 and merged[0].members == (0, 1)
    assert merged[0].value.tolist() == whole and merged[0].index == 1
    # an object larger than the overlap is seen in pieces only: their union stands for it
    pieces = np.array([[300.0, 50.0, 500.0, 150.0], [400.0, 50.0, 700.0, 150.0]])
    (union,) = merge_boxes(pieces, np.array([0, 0]), np.array([0, 1]), tiles, [1.0, 1.0], (900, 500))
    assert union.value.tolist() == [300.0, 50.0, 700.0, 150.0]
    # a small object of the same class inside a big one is not swallowed
    nested = np.array([[100.0, 100.0, 480.0, 480.0], [420.0, 420.0, 440.0, 440.0]])
    assert len(merge_boxes(nested, np.array([0, 0]), np.array([0, 1]), tiles, [1.0, 1.0], (900, 500))) == 2


@pytest.mark.parametrize("exact", [True, False])
def test_no_duplicate_survives_on_a_dense_scene(exact):
    """A dense grid of same-class objects 4 px apart, many cut by tile borders."""
    boxes = [[x, y, x + 26.0, y + 26.0] for y in np.arange(10.0, 1190.0, 30.0) for x in np.arange(10.0, 1990.0, 30.0)]
    image = draw_objects(noise_background((2000, 1200), 7), np.array(boxes), 7)
    scene = Scene(image, np.array(boxes), ["icon"] * len(boxes), name="dense")
    sim = SimulatedModel([scene], exact=exact, min_px=3.0, noise_px=0.7)
    (result,), _ = run("detect", scene, {"classes": ["icon"]}, "tiles:tile=500,overlap=100", sim=sim, budget=1120)
    per_truth = matches(result.detections, scene.xyxy)
    assert result.provenance["zoom"]["merged"]["items_before"] > len(boxes)  # the overlaps saw objects twice
    assert per_truth.max() == 1  # no duplicate survived
    assert len(result.detections) == len(boxes) and per_truth.min() == 1


def test_points_and_text_lines_merge_across_tiles():
    scene = random_scene((1400, 600), 14, seed=8, smallest=30, largest=60, labels=("star",))
    (points,), _ = run("point", scene, {"description": "star"}, "tiles:tile=500,overlap=150", budget=70)
    xy = points.parsed.result.xy
    assert len(xy) == len(scene.labels) == points.extras["count"]
    inside = [(b[0] <= x <= b[2]) and (b[1] <= y <= b[3]) for (x, y), b in zip(sorted(xy.tolist()), sorted(scene.xyxy.tolist()))]
    assert all(inside)
    assert join_texts([(300.0, "brown fox jumps"), (0.0, "The quick brown")]) == "The quick brown fox jumps"


def test_gui_elements_keep_their_fields_through_tiles():
    scene = random_scene((1600, 900), 10, seed=9, labels=("button", "icon"))
    (result,), _ = run("gui_elements", scene, {}, "tiles:tile=600,overlap=150", budget=280)
    elements = result.extras["elements"]
    assert len(elements) == len(scene.labels) and {e["type"] for e in elements} == {"button", "icon"}
    assert np.allclose(np.array([e["box"] for e in elements]), result.detections.xyxy)


# ------------------------------------------------------- provenance, cost, failures
def test_every_pass_is_recorded_with_its_cost():
    scene = screenshot_scene(3, targets=8)
    sim = SimulatedModel([scene])
    (tiles,), _ = run("detect", scene, {"classes": ["icon", "button"]}, "tiles:whole=true", sim=sim, budget=280)
    zoom = tiles.provenance["zoom"]
    assert zoom["cost"]["model_calls"] == sim.calls == zoom["grid"]["tiles"] + 1
    assert [p["purpose"] for p in zoom["passes"]][-1] == "whole"
    assert zoom["cost"]["image_tokens"] == tiles.provenance["image_tokens"] == sum(p["image_tokens"] for p in zoom["passes"])
    assert all(p["answer"] and p["prompt"] == tiles.provenance["prompt"] for p in zoom["passes"])
    assert [tuple(p["crop"]) for p in zoom["passes"]] == [log[1] for log in sim.log]
    (click,), _ = run("gui_ground", scene, {"instruction": scene.names[0]}, "refine:depth=2", sim=SimulatedModel([scene]), budget=280)
    passes = click.provenance["zoom"]["passes"]
    assert [p["purpose"] for p in passes] == ["region", "region", "task"]
    areas = [(p["crop"][2] - p["crop"][0]) * (p["crop"][3] - p["crop"][1]) for p in passes]
    assert areas[0] > areas[1] > areas[2]  # the view narrows step by step
    x, y = click.extras["click"]
    x1, y1, x2, y2 = scene.xyxy[0]
    assert x1 <= x <= x2 and y1 <= y <= y2


def test_a_failed_tile_fails_the_result_and_names_the_pass():
    scene = random_scene((1000, 700), 6, seed=10)
    sim = SimulatedModel([scene], exact=True)

    def flaky(requests):
        responses = sim.generate(requests)
        responses[2] = GenerationResponse.failure("out of memory")
        return responses

    job = ZoomJob(TASKS["detect"], GEMMA, {"classes": ["cat"]}, RunSettings(budget=70), scene.image, "s", ZoomSettings.parse("tiles:tile=400"))
    run_jobs([job], flaky)
    result = job.result()
    assert not result.ok and "tile pass 2" in result.error and "out of memory" in result.error


def test_lower_layers_never_import_zoom():
    for package in ("tasks", "postprocess", "runtime", "profiles", "io"):
        for path in (REPO / "vistool" / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
            names += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
            assert not [name for name in names if name.startswith(("vistool.zoom", "vistool.api", "vistool.batch"))], path


def test_refine_without_a_region_wording_asks_the_task_itself_first():
    """PaliGemma 2 has no wording for the region question (and no resize rule): pass 1 is
    its own `detect <expression>` on the whole image, pass 2 the same on a crop."""
    scene = random_scene((3000, 2000), 6, seed=13)
    sim = SimulatedModel([scene], profile="paligemma2", exact=True)
    job = ZoomJob(TASKS["ground"], get_profile("paligemma2"), {"expression": scene.names[2]}, RunSettings(), scene.image, "s",
                  ZoomSettings.parse("refine"))
    run_jobs([job], sim.generate)
    result = job.result()
    passes = result.provenance["zoom"]["passes"]
    assert [(p["purpose"], p["task"]) for p in passes] == [("region", "ground"), ("task", "ground")]
    assert passes[0]["prompt"] == passes[1]["prompt"] == f"detect {scene.names[2]}"
    assert max(passes[1]["crop"][2] - passes[1]["crop"][0], passes[1]["crop"][3] - passes[1]["crop"][1]) <= 1205
    assert sv.box_iou_batch(result.detections.xyxy, scene.xyxy[2:3])[0, 0] > 0.95
