"""Every model family on its tiny offline checkpoint: image tokens per budget, CPU speed,
and which tasks run locally and through `transformers serve`.

    python -m eval.bench_families tokens                 # image tokens of a 1920x1080 image at each budget
    python -m eval.bench_families speed [--images 16] [--batch-size 8] [--new-tokens 16] [--repeats 3]
    python -m eval.bench_families matrix [--server]      # family x task: local / via server / refused

`tokens` computes each family's rule on the client (`vistool.profiles.resize`) and runs
the family's real processor (its tiny checkpoint's) on the same image to show they agree.
`speed` times `detect` (one prompt, two classes) over the same mixed-aspect images per
family, one image at a time and batched, interleaving the families in each repeat, and
prints the best and the median images/s. The models are random and tiny: the figures
compare the families' pipelines (preprocessing, image tokens, prompt format), not the
published models. `matrix` runs every task once per family locally (and with --server,
through `transformers serve` on 127.0.0.1) and prints ok / the error / the refusal.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image

from eval.bench_runtime import make_images
from vistool.api import Vistool
from vistool.errors import VistoolError
from vistool.profiles import get_profile
from vistool.runtime.tiny import FAMILIES, make_tiny_model
from vistool.runtime.transformers_backend import TransformersBackend
from vistool.runtime.types import GenerationRequest
from vistool.tasks import TASKS, check_task

CALLS = {
    "detect": lambda vt, image: vt.detect(image, ["person", "car"]),
    "ground": lambda vt, image: vt.ground(image, "the red car"),
    "point": lambda vt, image: vt.point(image, "person"),
    "ocr": lambda vt, image: vt.ocr(image),
    "ocr_regions": lambda vt, image: vt.ocr(image, regions=True),
    "caption": lambda vt, image: vt.caption(image, "short"),
    "vqa": lambda vt, image: vt.ask(image, "What is this?"),
    "gui_elements": lambda vt, image: vt.gui_elements(image),
    "gui_ground": lambda vt, image: vt.gui_ground(image, "click OK"),
    "gui_mark": lambda vt, image: vt.gui_ground(image, "click OK", marks=True, elements=[{"box": [10, 10, 90, 40]}]),
    "classify": lambda vt, image: vt.classify(image, ["cat", "dog"]),
}


def build_all(root: Path) -> dict[str, Path]:
    """Build every family's tiny checkpoint under `root`; return family -> folder."""
    return {family: make_tiny_model(root / family, family=family) for family in FAMILIES}


def tokens_table(folders: dict[str, Path]) -> None:
    """Print the image tokens and resized size of a 1920x1080 image at each budget of each family."""
    image = Image.new("RGB", (1920, 1080), (40, 90, 160))
    print("| family | budget | resized (W x H) | image tokens (rule) | image tokens (processor) |")
    print("|---|---|---|---|---|")
    for family, folder in folders.items():
        profile = get_profile(family)
        backend = TransformersBackend(str(folder), device="cpu", dtype="float32")
        prompt = TASKS["caption"].prompt(profile, {"length": "short"})
        for budget in profile.budgets or (None,):
            request = GenerationRequest(prompt, images=[image], budget=budget, max_new_tokens=1)
            response = backend.generate([request])[0]
            rule = profile.resize
            rule_tokens = rule.image_tokens(1920, 1080, budget)
            width, height = response.image_sizes[0]
            print(f"| {family} | {budget or 'fixed'} | {width} x {height} | {rule_tokens} | {response.image_tokens} |")


def speed_table(folders: dict[str, Path], images: int, batch_size: int, new_tokens: int, repeats: int) -> None:
    """Time detect per family, one image at a time and batched; print best and median images/s."""
    pictures = make_images(images)
    vts = {}
    for family, folder in folders.items():
        backend = TransformersBackend(str(folder), device="cpu", dtype="float32")
        vts[family] = Vistool(backend, max_new_tokens=new_tokens)
        vts[family].detect(pictures[:1], ["person", "car"])  # warm-up
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for family, vt in vts.items():  # interleaved: every family sees the same machine load
            for size in (1, batch_size):
                vt.backend.batch_size = size
                start = time.perf_counter()
                results = vt.detect(pictures, ["person", "car"])
                runs.setdefault((family, size), []).append(len(pictures) / (time.perf_counter() - start))
                assert all(result.ok for result in results), [result.error for result in results if not result.ok]
    print(f"images={images} (mixed aspect ratios) new_tokens<={new_tokens} repeats={repeats} threads={torch.get_num_threads()}")
    print(f"| family | budget | img/s x1 best | img/s x1 median | img/s x{batch_size} best | img/s x{batch_size} median |")
    print("|---|---|---|---|---|---|")
    for family in vts:
        one, many = runs[(family, 1)], runs[(family, batch_size)]
        budget = TASKS["detect"].default_budget if get_profile(family).budgets else "fixed"
        print(f"| {family} | {budget} | {max(one):.2f} | {statistics.median(one):.2f} | {max(many):.2f} | {statistics.median(many):.2f} |")


def _cell(family: str, task: str, vt: Vistool | None) -> str:
    """Run one task once; return 'ok', the refusal, or the error."""
    image = make_images(1)[0]
    try:
        check_task(task, get_profile(family))
    except VistoolError as error:
        return f"refused: {error}"
    if vt is None:
        return "-"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = CALLS[task](vt, image)
        except VistoolError as error:  # e.g. a server backend cannot score (classify)
            return f"refused: {error}"
    return "ok" if result.ok else f"error: {result.error}"


def matrix(folders: dict[str, Path], server: bool) -> None:
    """Print family x task: local / server outcome (ok, error or refusal)."""
    print("| family | task | local | via transformers serve |")
    print("|---|---|---|---|")
    for family, folder in folders.items():
        local = Vistool(TransformersBackend(str(folder), device="cpu", dtype="float32"), max_new_tokens=4)
        remote_cells: dict[str, str] = {}
        if server:
            from eval.bench_openai import TransformersServe
            from vistool.runtime.openai_backend import OpenAIBackend

            with TransformersServe(folder, threads=1) as url:
                remote = Vistool(OpenAIBackend(str(folder), url, engine="transformers", max_attempts=1), max_new_tokens=4)
                remote_cells = {task: _cell(family, task, remote) for task in CALLS}
        for task in CALLS:
            print(f"| {family} | {task} | {_cell(family, task, local)} | {remote_cells.get(task, '-')} |")


def main() -> None:
    """Parse arguments, build the tiny checkpoints, print the asked table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["tokens", "speed", "matrix"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="matrix: also run every task through transformers serve")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folders = build_all(Path(tempfile.mkdtemp(prefix="vistool-bench-families-")))
    if args.table == "tokens":
        tokens_table(folders)
    elif args.table == "speed":
        speed_table(folders, args.images, args.batch_size, args.new_tokens, args.repeats)
    else:
        matrix(folders, args.server)


if __name__ == "__main__":
    main()
