"""Exports of a batch run: COCO json, YOLO txt + data.yaml, Pascal VOC xml (through
supervision's `sv.DetectionDataset`), a JSONL of full results, a failures file, and
annotated copies of the images.

Every export is deterministic: entries sorted by the image's relative name, ids given in
that order, no timestamps, no timings. So the same answers give byte-identical files,
whether a run went through in one go, was killed and resumed, or was re-scored from the
cache. Each file (or folder) is written to a temporary name beside it and moved into
place only when complete, so a crash never leaves a half-written export.

supervision's exporters name files by basename and refuse two images with the same
basename; here images are exported one sub-folder at a time (names within a folder are
unique) and the results are merged, so `a/img.jpg` and `b/img.jpg` both work: COCO
`file_name`s are the relative paths, and YOLO labels and VOC files mirror the folders.

Nothing carries another tool's name: supervision writes VOC `<database>roboflow.ai` and
`<folder>VOC`, and COCO `supercategory: common-objects`; here VOC says `vistool` and the
image's folder, and every COCO category is its own supercategory (the class names are
the user's). COCO annotations carry the box's confidence as `score` when it has one. The
YOLO export is trainable as it stands: `data.yaml` says `train`/`val: images` (relative
to its own folder), and `images/` holds copies of the images beside `labels/` (the
layout Ultralytics expects; a re-export reuses the previous copies).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import supervision as sv
from supervision.config import CLASS_NAME_DATA_FIELD

from vistool.batch.outpaths import path_inside, unique_safe_names
from vistool.batch.runner import Outcome
from vistool.errors import VistoolError
from vistool.io.images import load_image
from vistool.tasks import TASKS, TaskResult

TMP_PREFIX = ".vistool-tmp-"
VOC_DATABASE = "vistool"
BOX_KINDS = ("boxes", "ocr_regions")
OCR_CLASS = "text"  # the one class OCR regions are exported as (their text is not a class)
EXPORT_FORMATS = ("coco", "yolo", "voc", "jsonl", "labelstudio", "fiftyone")  # the last two: vistool.integrations


def _current_umask() -> int:
    """Return the process umask (temporary files are private; exports get normal permissions)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@dataclass(frozen=True)
class Entry:
    """One item to export: its outcome and the image's name relative to the source root."""

    name: str
    outcome: Outcome

    @property
    def path(self) -> Path:
        """The image file."""
        return Path(self.outcome.item.image)

    @property
    def result(self) -> TaskResult:
        """The item's result (only successful entries go into datasets)."""
        assert self.outcome.result is not None
        return self.outcome.result


def make_entries(outcomes: Iterable[Outcome], name: Callable[[Path], str]) -> list[Entry]:
    """Pair each outcome with its image's output name, sorted by that name.

    Takes the outcomes and `name(path)`, the image's name relative to the source root.
    The output name is that name made safe (`outpaths.unique_safe_names`: relative, no
    "..", unique), computed here once for every writer. Items that share a name (the
    same file listed twice with other options) keep their input order.
    """
    outcomes = list(outcomes)
    names = [name(Path(outcome.item.image)) for outcome in outcomes]
    safe = unique_safe_names(names)
    entries = [Entry(safe[given], outcome) for given, outcome in zip(names, outcomes)]
    return sorted(entries, key=lambda entry: entry.name)


def has_boxes(task: str) -> bool:
    """True when the task's results are boxes (exportable to COCO, YOLO and VOC)."""
    return TASKS[task].kind in BOX_KINDS


# --------------------------------------------------------------- atomic writes
def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and `os.replace`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        os.chmod(temp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def replace_folder(target: Path, build: Callable[[Path], None]) -> None:
    """Build a folder with `build(temporary_folder)`, then swap it in for `target`.

    The old folder (if any) is moved aside and deleted only after the new one is in
    place; a crash in between leaves temporary folders that `remove_stale_temporaries`
    cleans up, and the next run rebuilds the export.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=target.parent))
    try:
        os.chmod(temp, 0o777 & ~_UMASK)
        build(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=target.parent))
        os.replace(target, old / "old")
    os.replace(temp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files and folders a killed run left in `folder`; return how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for child in folder.iterdir():
        if child.name.startswith(TMP_PREFIX):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed += 1
    return removed


# ------------------------------------------------------------ JSONL outputs
def result_record(entry: Entry) -> dict[str, Any]:
    """Return the JSONL record of one result: image name, status, reason, then the full
    `TaskResult.to_dict()` with provenance, minus the timings (which differ run to run)."""
    data = entry.result.to_dict()
    data["provenance"] = {key: value for key, value in data["provenance"].items() if key != "timings"}
    return {
        "image": entry.name,
        "status": "failed" if entry.outcome.status == "failed" else "ok",
        "reason": entry.outcome.reason,
        "image_sha256": entry.outcome.image_sha256,
        **data,
    }


def write_results_jsonl(path: Path, entries: Sequence[Entry]) -> int:
    """Write one line per entry that has a result (sorted by name); return the line count.

    Each line is `result_record(entry)`; `TaskResult.from_dict(line)` rebuilds the result.
    """
    lines = [json.dumps(result_record(entry), ensure_ascii=False) for entry in entries if entry.outcome.result is not None]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_failures(path: Path, entries: Sequence[Entry]) -> int:
    """Write one line per failed entry: image, source path, stage and reason; return the count."""
    lines = [
        json.dumps(
            {"image": entry.name, "source": str(entry.path), "stage": entry.outcome.stage, "reason": entry.outcome.reason},
            ensure_ascii=False,
        )
        for entry in entries
        if entry.outcome.status == "failed"
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


# ---------------------------------------------------------------- datasets
def declared_classes(entry: Entry) -> list[str] | None:
    """The class names the entry's task asked for (None when it asked for no list)."""
    spec = TASKS[entry.outcome.item.task]
    if spec.kind == "ocr_regions":
        return [OCR_CLASS]
    return spec.classes(entry.outcome.item.options)


def _names(entry: Entry) -> list[str]:
    """The class name of each box of an entry's result."""
    if TASKS[entry.outcome.item.task].kind == "ocr_regions":
        return [OCR_CLASS] * len(entry.result.detections)
    names = entry.result.detections.data.get(CLASS_NAME_DATA_FIELD)
    return [] if names is None else [str(name) for name in names]


def dataset_classes(entries: Sequence[Entry]) -> list[str]:
    """Return the class list of an export.

    The classes the items asked for come first (in order of first appearance over the
    sorted entries); items that asked for no list (e.g. "detect all objects", "ground")
    add the labels the model gave them, sorted. A box whose label is not in this list
    (an item with a class list answered with another label) is not exported.
    """
    classes: dict[str, None] = {}
    extra: set[str] = set()
    for entry in entries:
        declared = declared_classes(entry)
        if declared is None:
            extra.update(_names(entry))
        else:
            classes.update(dict.fromkeys(declared))
    return list(classes) + sorted(extra - set(classes))


def export_detections(entry: Entry, index: dict[str, int]) -> sv.Detections:
    """Return an entry's boxes for export: class ids from `index` (name -> id), boxes with
    other names dropped; only xyxy, class_id, confidence and class_name are kept."""
    detections = entry.result.detections
    names = _names(entry)
    keep = np.array([name in index for name in names], dtype=bool).reshape(-1)
    kept = [name for name in names if name in index]
    return sv.Detections(
        xyxy=np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)[keep],
        class_id=np.array([index[name] for name in kept], dtype=np.int64),
        confidence=None if detections.confidence is None else np.asarray(detections.confidence)[keep],
        data={CLASS_NAME_DATA_FIELD: np.array(kept, dtype=str)},
    )


def to_detection_dataset(entries: Sequence[Entry], classes: Sequence[str] | None = None) -> sv.DetectionDataset:
    """Return the successful box entries as an `sv.DetectionDataset` (images as paths).

    Takes the entries and the class list (default: `dataset_classes(entries)`). Failed
    entries and entries of non-box tasks are left out.
    """
    usable = [entry for entry in entries if entry.outcome.ok and has_boxes(entry.outcome.item.task)]
    classes = list(classes) if classes is not None else dataset_classes(usable)
    index = {name: position for position, name in enumerate(classes)}
    paths = [str(entry.path) for entry in usable]
    return sv.DetectionDataset(classes=classes, images=paths, annotations={p: export_detections(e, index) for p, e in zip(paths, usable)})


def _by_folder(entries: Sequence[Entry]) -> list[tuple[str, list[Entry]]]:
    """Group entries by the folder part of their name (sorted), keeping their order."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(str(PurePosixPath(entry.name).parent), []).append(entry)
    return sorted(groups.items())


def _checked(entries: Sequence[Entry]) -> list[Entry]:
    """Return the successful entries, refusing two different images with one name."""
    usable = [entry for entry in entries if entry.outcome.ok]
    seen: dict[str, Path] = {}
    for entry in usable:
        if seen.setdefault(entry.name, entry.path) != entry.path:
            raise VistoolError(f"two images are both named {entry.name!r} in the export")
    return list({entry.name: entry for entry in usable}.values())


def stem_collisions(names: Iterable[str]) -> list[tuple[str, str]]:
    """Return pairs of image names that would share a YOLO/VOC label file (same folder and stem)."""
    first: dict[str, str] = {}
    clashes = []
    for name in names:
        stem = str(PurePosixPath(name).with_suffix(""))
        if stem in first and first[stem] != name:
            clashes.append((first[stem], name))
        first.setdefault(stem, name)
    return clashes


def write_coco(path: Path, entries: Sequence[Entry], classes: Sequence[str]) -> int:
    """Write a COCO detection json of the successful entries; return the number of boxes.

    Annotations come from `sv.DetectionDataset.as_coco`, run per folder; the images are
    then listed in name order with ids 1..N, `file_name` = the relative name, without
    supervision's capture timestamps, and annotations renumbered 1..M in that order.
    """
    usable = _checked(entries)
    index = {name: position for position, name in enumerate(classes)}
    per_image: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    categories: list[dict[str, Any]] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=path.parent) as temp:
        for number, (_, group) in enumerate(_by_folder(usable)):
            dataset = to_detection_dataset(group, classes)
            target = Path(temp) / f"{number}.json"
            dataset.as_coco(annotations_path=str(target))
            written = json.loads(target.read_text(encoding="utf-8"))
            categories = written["categories"]
            annotations: dict[int, list[dict[str, Any]]] = {}
            for annotation in written["annotations"]:
                annotations.setdefault(annotation["image_id"], []).append(annotation)
            for position, (image, entry) in enumerate(zip(written["images"], group)):
                assert Path(image["file_name"]).name == entry.path.name, "supervision changed its image order"
                per_image[entry.name] = (
                    {"file_name": entry.name, "height": image["height"], "width": image["width"]},
                    _with_scores(annotations.get(image["id"], []), export_detections(entry, index)),
                )
    if not categories:
        from supervision.dataset.formats.coco import classes_to_coco_categories

        categories = classes_to_coco_categories(list(index))
    categories = [{**category, "supercategory": category["name"]} for category in categories]
    images, annotations_out = [], []
    for image_id, name in enumerate(sorted(per_image), start=1):
        image, boxes = per_image[name]
        images.append({"id": image_id, **image})
        for box in boxes:
            annotations_out.append({**box, "id": len(annotations_out) + 1, "image_id": image_id})
    coco = {
        "info": {"description": "written by vistool annotate"},
        "licenses": [],
        "categories": categories,
        "images": images,
        "annotations": annotations_out,
    }
    atomic_write_text(path, json.dumps(coco, ensure_ascii=False, indent=1) + "\n")
    return len(annotations_out)


def _with_scores(annotations: list[dict[str, Any]], detections: sv.Detections) -> list[dict[str, Any]]:
    """Add each box's confidence as "score" to its COCO annotation (same order), when known."""
    if detections.confidence is None:
        return annotations
    assert len(annotations) == len(detections), "supervision changed its annotation order"
    return [{**annotation, "score": round(float(score), 6)} for annotation, score in zip(annotations, detections.confidence)]


def yolo_data_yaml(classes: Sequence[str]) -> str:
    """Return an Ultralytics data.yaml for a YOLO export: `train`/`val` = images, `nc` and
    `names` (JSON strings, valid YAML). It has no `path`: Ultralytics then takes the
    data.yaml's own folder as the dataset root, so the export can be moved as a whole."""
    return (
        "# written by vistool annotate: images/ holds copies of the annotated images, labels/ their boxes;\n"
        "# the dataset root is this file's folder\n"
        "train: images\n"
        "val: images\n"
        f"nc: {len(classes)}\n"
        f"names: {json.dumps(list(classes), ensure_ascii=False)}\n"
    )


def _copy_image(target: Path, source: Path, previous: Path) -> None:
    """Put a copy of the image `source` at `target` (never a link: nothing written to the
    export can reach the source). A copy the previous export holds at `previous` with the
    source's size and modification time is hard-linked instead of copied again."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        old, new = previous.stat(), source.stat()
        if (old.st_size, old.st_mtime_ns) == (new.st_size, new.st_mtime_ns) and not previous.is_symlink():
            os.link(previous, target)
            return
    except OSError:
        pass
    shutil.copy2(source, target)


def write_yolo(folder: Path, entries: Sequence[Entry], classes: Sequence[str]) -> None:
    """Write a YOLO dataset of the successful entries: `folder/data.yaml` (see
    `yolo_data_yaml`), `folder/labels/<relative folder>/<stem>.txt` (one per image; empty
    when no box, through `sv.DetectionDataset.as_yolo`) and `folder/images/<relative
    folder>/<file>` (copies of the images, so the dataset stands on its own and nothing
    written to it can reach the sources). Raises VistoolError on a stem collision."""
    usable = _checked(entries)
    _refuse_stem_collisions(usable, "YOLO")

    def build(temp: Path) -> None:
        (temp / "data.yaml").write_text(yolo_data_yaml(classes), encoding="utf-8")
        for subfolder, group in _by_folder(usable):
            labels = path_inside(temp / "labels", subfolder)
            to_detection_dataset(group, classes).as_yolo(annotations_directory_path=str(labels))
            for entry in group:
                name = str(PurePosixPath(subfolder) / entry.path.name)
                _copy_image(path_inside(temp / "images", name), entry.path, path_inside(folder / "images", name))

    replace_folder(folder, build)


def write_voc(folder: Path, entries: Sequence[Entry], classes: Sequence[str]) -> None:
    """Write Pascal VOC xml files of the successful entries to `folder/<relative folder>/<stem>.xml`
    through `sv.DetectionDataset.as_pascal_voc`. Raises VistoolError on a stem collision."""
    usable = _checked(entries)
    _refuse_stem_collisions(usable, "Pascal VOC")

    def build(temp: Path) -> None:
        temp.mkdir(parents=True, exist_ok=True)
        for subfolder, group in _by_folder(usable):
            target = path_inside(temp, subfolder)
            to_detection_dataset(group, classes).as_pascal_voc(annotations_directory_path=str(target))
            name = PurePosixPath(subfolder).name or Path(group[0].path).parent.name
            for xml in sorted(target.glob("*.xml")):
                _rebrand_voc(xml, name)

    replace_folder(folder, build)


def _rebrand_voc(path: Path, folder_name: str) -> None:
    """Replace supervision's placeholders in a VOC file: `<folder>` becomes the image's
    folder name, `<database>` "vistool"."""
    from xml.sax.saxutils import escape

    text = path.read_text(encoding="utf-8")
    text = text.replace("<folder>VOC</folder>", f"<folder>{escape(folder_name)}</folder>", 1)
    text = text.replace("<database>roboflow.ai</database>", f"<database>{VOC_DATABASE}</database>", 1)
    path.write_text(text, encoding="utf-8")


def _refuse_stem_collisions(entries: Sequence[Entry], what: str) -> None:
    """Raise VistoolError when two images would write the same label file.

    The label file is named after the image file's stem, in the folder of its output name.
    """
    clashes = stem_collisions(str(PurePosixPath(entry.name).parent / entry.path.name) for entry in entries)
    if clashes:
        listed = "; ".join(f"{a} and {b}" for a, b in clashes[:5])
        raise VistoolError(f"{what} export needs one image per folder and file stem, but found {listed}")


def draw_results(folder: Path, entries: Sequence[Entry], max_pixels: int | None = None, workers: int = 4) -> int:
    """Write an annotated copy of every successful entry to `folder/<relative name>`; return
    how many. Images are re-read from their files (a few threads); JPEGs saved at quality 90."""
    usable = [entry for entry in _checked(entries) if entry.result.parsed is not None or entry.result.points is not None]

    def draw_one(entry: Entry, temp: Path) -> None:
        loaded = load_image(entry.path, max_pixels=max_pixels)
        drawn = entry.result.annotate(loaded.image)
        target = path_inside(temp, entry.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        options = {"quality": 90} if target.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
        drawn.save(target, **options)

    def build(temp: Path) -> None:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda entry: draw_one(entry, temp), usable))

    replace_folder(folder, build)
    return len(usable)


def class_counts(entries: Sequence[Entry], classes: Sequence[str]) -> dict[str, int]:
    """Count exported boxes per class over the successful box entries (plus "(not exported)")."""
    index = set(classes)
    counts: Counter[str] = Counter()
    for entry in entries:
        if entry.outcome.ok and has_boxes(entry.outcome.item.task):
            for name in _names(entry):
                counts[name if name in index else "(not exported)"] += 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
