"""Benchmark evaluation: each benchmark is a reader + prompts + scorer; the model is separate.

  coco        COCO detection (pycocotools' scores, classes in one prompt or chunks)
  screenspot  GUI grounding (a click inside the ground-truth box)
  ocr         CER, WER and exact match (jiwer)
  refexp      referring expressions (Acc@0.5, mean IoU, centre accuracy)
  common      readers, box parsing and prediction alignment shared by the above
  report      report.json / report.md
  run         `vistool eval ...`: reader -> batch engine (answer cache, resume) -> scorer

The speed benchmarks are scripts in the repository's eval/ folder, not part of the package.
"""
