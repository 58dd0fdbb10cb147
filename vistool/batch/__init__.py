"""Batch processing: many images, one engine, shared by `vistool annotate` and the evaluators.

  sources   SRC (folder, glob, list file) -> sorted image paths with relative names
  cache     the append-only, crash-safe answer store (JSONL keyed by image hash + settings)
  runner    work items (image, task, options) -> batched requests -> cache -> results
  export    COCO / YOLO / VOC (via sv.DetectionDataset), results and failures JSONL, drawings
  export_labels  COCO-style image labels of classifications
  annotate  the `vistool annotate` command built from the above

    from vistool.batch import AnswerCache, BatchRunner, WorkItem
    report = BatchRunner(vt, AnswerCache("out/answers.jsonl")).run(
        [WorkItem("a.jpg", "detect", {"classes": ["cat", "dog"]})]
    )
"""

from vistool.batch.cache import AnswerCache, cache_key, key_fields
from vistool.batch.runner import BatchRunner, Outcome, RunReport, WorkItem, answer_problem
from vistool.batch.sources import IMAGE_EXTENSIONS, ImageSource, collect_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "AnswerCache",
    "BatchRunner",
    "ImageSource",
    "Outcome",
    "RunReport",
    "WorkItem",
    "answer_problem",
    "cache_key",
    "collect_images",
    "key_fields",
]
