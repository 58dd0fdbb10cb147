"""Write time of the annotation-tool exports: Label Studio tasks JSON and a FiftyOne dataset.

    python -m eval.bench_integrations [--images 200] [--boxes 10] [--repeats 3]

Detection results are replayed (no model), so only the export is timed: Label Studio's
tasks.json + label_config.xml, a new FiftyOne dataset, and the same dataset updated in
place. FiftyOne's database lives in a temporary folder; its start-up is timed apart.
Best and median of the repeats, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from vistool.api import Vistool
from vistool.integrations.labelstudio import write_labelstudio
from vistool.runtime.replay import ReplayBackend


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vistool-bench-"))
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(folder / "db"))
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    answer = json.dumps([{"box_2d": [100 + i, 50, 500, 250 + i], "label": "cat"} for i in range(args.boxes)])
    paths = []
    for index in range(args.images):
        path = folder / f"{index:05d}.png"
        Image.new("RGB", (640, 480)).save(path)
        paths.append(path)
    results = Vistool(ReplayBackend(lambda request: answer)).detect([str(path) for path in paths], ["cat"])
    pairs = list(zip(paths, results))
    times: dict[str, list[float]] = {"labelstudio": [], "fiftyone new": [], "fiftyone update": []}
    try:
        start = time.perf_counter()
        import fiftyone as fo

        fo.list_datasets()
        startup = f"{time.perf_counter() - start:.1f} s"
        from vistool.integrations.fiftyone import add_results
    except ImportError:
        fo, startup = None, "fiftyone not installed"
    for repeat in range(args.repeats):
        start = time.perf_counter()
        write_labelstudio(folder / "ls", [(path.name, result) for path, result in pairs])
        times["labelstudio"].append(time.perf_counter() - start)
        if fo is not None:
            name = f"vistool-bench-{repeat}"
            for key in ("fiftyone new", "fiftyone update"):
                start = time.perf_counter()
                add_results(name, pairs, "det")
                times[key].append(time.perf_counter() - start)
            fo.delete_dataset(name)
    print(f"{args.images} images x {args.boxes} boxes; FiftyOne import + database start: {startup}")
    print("| export | best s | median s |")
    print("|---|---:|---:|")
    for key, values in times.items():
        if values:
            print(f"| {key} | {min(values):.3f} | {statistics.median(values):.3f} |")


if __name__ == "__main__":
    main()
