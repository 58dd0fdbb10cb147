"""Post-processing figures: parse + map throughput, and the per-family oracle mAP table.

    python eval/bench_parse.py [--answers 10000] [--repeats 5] [--batch 64] [--seed 0]

Throughput: 10,000 synthetic Gemma 4 answers (seeded) of 1-50 items each, parsed and
mapped to pixels on one core (the process is pinned to a single CPU where the OS
allows it), two ways: `parse` one answer at a time, and `parse_many` on batches of
`--batch` answers (the way a batch of model answers arrives). Reported as answers per
second of CPU time (best and median of the repeats), for clean answers and for a messy
mix (prose, thinking channels, trailing commas, single quotes, wrappers, truncation).
The standard library's json.loads on the same bodies is timed in the same rounds, a
yardstick of how fast the machine is at that moment (shared machines vary).

Oracle table: ground truth written in each family's native answer format, quantised as
the model would, parsed back and scored with pycocotools (mAP@[.5:.95]) on the coco8
photos (../shared/data/coco8, when present), on the same photos under EXIF orientations
2-8 (worst of the seven), and on synthetic extreme shapes (3000x40, 40x3000, 7x7).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

from vistool.postprocess import parse, parse_many
from vistool.postprocess.geometry import exif_transform_boxes
from vistool.postprocess.oracle import OracleImage, extreme_images, load_yolo_dataset, round_trip_map
from vistool.profiles import PROFILES

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
LABELS = ["person", "car", "traffic light", "dog", "cat", "bicycle", "view recipe element", "button", "chair", "cup"]


def synthetic_answers(count: int, seed: int, messy: bool = False) -> list[tuple[str, tuple[int, int]]]:
    """Return `count` Gemma 4 answers of 1-50 items with their image sizes (seeded).

    Clean answers are ```json fenced lists, compact or indented. Messy ones add, at
    random, prose, a thinking channel, trailing commas, single quotes, a wrapper object,
    reversed corners, numbers as strings, or a cut at a random point.
    """
    rng = random.Random(seed)
    answers = []
    for _ in range(count):
        items = []
        for _ in range(rng.randint(1, 50)):
            y1, y2 = sorted(rng.randint(0, 1000) for _ in range(2))
            x1, x2 = sorted(rng.randint(0, 1000) for _ in range(2))
            items.append({"box_2d": [y1, x1, min(y2 + 1, 1000), min(x2 + 1, 1000)], "label": rng.choice(LABELS)})
        size = (rng.choice([320, 640, 1024, 1920]), rng.choice([240, 480, 768, 1080]))
        body = json.dumps(items, indent=2 if rng.random() < 0.5 else None)
        if messy:
            trick = rng.randrange(8)
            if trick == 0:
                body = body.replace("}", "},", 1).replace("]", ",]", 1)
            elif trick == 1:
                body = body.replace('"', "'")
            elif trick == 2:
                body = json.dumps({"boxes": items})
            elif trick == 3:
                for item in items:
                    item["box_2d"] = [str(v) for v in reversed(item["box_2d"])]
                body = json.dumps(items)
        text = f"```json\n{body}\n```"
        if messy:
            if rng.random() < 0.3:
                text = "Here are the objects I found:\n" + text + "\nLet me know if you need more."
            if rng.random() < 0.2:
                text = "<|channel>thought\nLooking at the image [carefully].<channel|>" + text
            if rng.random() < 0.2:
                text = text[: rng.randint(len(text) // 2, len(text))]
        answers.append((text, size))
    return answers


def throughput(answers: list[tuple[str, tuple[int, int]]], repeats: int, batch: int) -> dict[str, list[float]]:
    """Parse every answer `repeats` times each way; return answers/s of CPU time per round.

    Keys: "parse" (one call per answer), "parse_many" (batches of `batch`), "json"
    (json.loads of the fenced bodies). The three are interleaved in every round, so
    that a machine that slows down mid-run slows all three alike.
    """
    texts, sizes = [text for text, _ in answers], [size for _, size in answers]
    bodies = [text[text.find("[") : text.rfind("]") + 1] for text in texts]

    def one_by_one() -> None:
        for text, size in answers:
            parse(text, size, "gemma4", "boxes")

    def batched() -> None:
        for start in range(0, len(texts), batch):
            parse_many(texts[start : start + batch], sizes[start : start + batch], "gemma4", "boxes")

    def json_only() -> None:
        for body in bodies:
            try:
                json.loads(body)
            except ValueError:
                pass

    rates: dict[str, list[float]] = {"parse": [], "parse_many": [], "json": []}
    for _ in range(repeats):
        for name, run in (("parse", one_by_one), ("parse_many", batched), ("json", json_only)):
            start = time.process_time()
            run()
            rates[name].append(len(answers) / (time.process_time() - start))
    return rates


def qwen_resized(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) Qwen2.5-VL's processor resizes an image to (transformers' smart_resize)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    height, width = smart_resize(size[1], size[0])
    return width, height


def exif_variants(images: list[OracleImage]) -> dict[int, list[OracleImage]]:
    """Re-save each photo with EXIF orientations 2-8; return the ground truth as displayed."""
    variants: dict[int, list[OracleImage]] = {}
    for orientation in range(2, 9):
        variants[orientation] = []
        for image in images:
            with Image.open(image.name) as original:
                exif = original.getexif()
                exif[0x0112] = orientation
                buffer = io.BytesIO()
                original.convert("RGB").save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
            with Image.open(io.BytesIO(buffer.getvalue())) as stored:
                displayed_size = ImageOps.exif_transpose(stored).size
                boxes = exif_transform_boxes(image.xyxy, orientation, stored.size)
            variants[orientation].append(OracleImage(image.image_id, displayed_size, boxes, image.labels, image.name))
    return variants


def oracle_table() -> list[tuple[str, float | None, float | None, float]]:
    """Return (family, coco8 mAP, worst EXIF 2-8 mAP, extreme-shapes mAP) per family."""
    coco8_dir = DATA_DIR / "coco8"
    photos = load_yolo_dataset(coco8_dir) if (coco8_dir / "labels").is_dir() else []
    variants = exif_variants(photos) if photos else {}
    rows = []
    for family in PROFILES:
        photo_map = round_trip_map(family, photos, qwen_resized) if photos else None
        exif_map = min(round_trip_map(family, truth, qwen_resized) for truth in variants.values()) if variants else None
        rows.append((family, photo_map, exif_map, round_trip_map(family, extreme_images(), qwen_resized)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="answers per parse_many call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    clean = synthetic_answers(args.answers, args.seed)
    messy = synthetic_answers(args.answers, args.seed + 1, messy=True)
    items = sum(len(parse(text, size).detections) for text, size in clean)
    print(
        f"parse + map, Gemma 4 answers of 1-50 items ({args.answers} answers, {items} items, one core, "
        f"{args.repeats} interleaved rounds; answers/s of CPU time, best and median)"
    )
    print(f"  {'answers':8s} {'parse, one by one':>22s} {f'parse_many, batch {args.batch}':>24s} {'json.loads alone':>20s}")
    for name, answers in (("clean", clean), ("messy", messy)):
        rates = throughput(answers, args.repeats, args.batch)
        cells = [f"{max(rates[key]):8.0f} / {statistics.median(rates[key]):8.0f}" for key in ("parse", "parse_many", "json")]
        print(f"  {name:8s} {cells[0]:>22s} {cells[1]:>24s} {cells[2]:>20s}")
    print("\noracle round trip, COCO mAP@[.5:.95] (pycocotools)")
    print(f"  {'family':12s} {'coco8':>8s} {'EXIF 2-8':>9s} {'extremes':>9s}")
    for family, photo_map, exif_map, extreme_map in oracle_table():
        photo = f"{photo_map:8.4f}" if photo_map is not None else "     n/a"
        exif = f"{exif_map:9.4f}" if exif_map is not None else "      n/a"
        print(f"  {family:12s} {photo} {exif} {extreme_map:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
