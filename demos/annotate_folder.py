"""Annotate a folder through the Python API: the engine behind `vistool annotate`, step by step.

    python -m demos.annotate_folder SRC OUT --classes person,car [--model M] [--budget 280]
    python -m demos.annotate_folder ../shared/data/coco8/images /tmp/coco8-out --tiny --limit 4

`--tiny` builds the tiny random-weight Gemma 4 (no download; its answers are noise, so
expect "unparseable answer" failures, but everything else runs for real). Running it
twice shows the cache at work: the second run asks the model nothing.

The same in one call: `vistool.batch.annotate.annotate(AnnotateConfig(src, out, ...))`,
or on the command line: `vistool annotate SRC --out OUT --classes person,car`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from vistool.api import Vistool, load
from vistool.batch import AnswerCache, BatchRunner, WorkItem, collect_images
from vistool.batch.export import dataset_classes, make_entries, to_detection_dataset, write_coco, write_failures, write_results_jsonl


def annotate_folder(vt: Vistool, src: str, out: Path, classes: list[str], limit: int | None = None) -> None:
    """Detect `classes` in every image under `src`, cache the answers in `out`, write COCO + JSONL.

    Takes a ready `Vistool`, the source (folder, glob or list file), the output folder,
    the class names and an optional image limit. Prints a summary; returns nothing.
    """
    source = collect_images(src, limit=limit)  # sorted paths + the root their names are relative to
    # One work item per image; each may carry its own options (e.g. a class list per image).
    items = [WorkItem(path, "detect", {"classes": classes}) for path in source.paths]
    with AnswerCache(out / "answers.jsonl") as cache:  # answers already there are not asked again
        report = BatchRunner(vt, cache).run(items)  # batch size: the backend's default for the budget
    entries = make_entries(report.outcomes, source.relative)  # sorted by relative name: deterministic exports
    names = dataset_classes([entry for entry in entries if entry.outcome.ok])
    boxes = write_coco(out / "coco.json", entries, names)
    write_results_jsonl(out / "results.jsonl", entries)
    failed = write_failures(out / "failures.jsonl", entries)
    dataset = to_detection_dataset(entries, names)  # an sv.DetectionDataset: split, merge, as_yolo, ...
    print(report.to_dict())
    print(f"{len(dataset)} images in the dataset, {boxes} boxes, {failed} failures; outputs in {out}")
    for outcome in report.failures[:3]:
        print(f"  {outcome.item.image}: {outcome.reason}")


def main() -> None:
    """Parse the command line, load the model (or the tiny one) and annotate the folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder (recursive), glob pattern or text file of paths")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--classes", default="person,car", help="comma-separated class names")
    parser.add_argument("--model", default="google/gemma-4-E2B-it")
    parser.add_argument("--budget", type=int, default=None, help="image-token budget (70, 140, 280, 560, 1120)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random model (no download)")
    args = parser.parse_args()
    model = args.model
    if args.tiny:
        from vistool.runtime.tiny import make_tiny_model

        model = str(make_tiny_model(Path(tempfile.gettempdir()) / "vistool-tiny-gemma4", seed=0))
    loaded = load(model, device="cpu" if args.tiny else None)
    vt = Vistool(loaded.backend, budget=args.budget or (70 if args.tiny else None), max_new_tokens=16 if args.tiny else None)
    annotate_folder(vt, args.src, args.out, [name.strip() for name in args.classes.split(",") if name.strip()], args.limit)


if __name__ == "__main__":
    main()
