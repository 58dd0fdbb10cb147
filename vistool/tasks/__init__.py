"""Task adapters: one module per task, each declaring its `TaskSpec`(s)."""

from vistool.tasks.base import RunSettings, TaskResult, TaskSpec, build_request, interpret, interpret_many
from vistool.tasks.caption import CAPTION
from vistool.tasks.classify import CLASSIFY
from vistool.tasks.detect import DETECT
from vistool.tasks.ground import GROUND
from vistool.tasks.gui import GUI_ELEMENTS, GUI_GROUND
from vistool.tasks.gui_marks import GUI_MARK
from vistool.tasks.ocr import OCR_REGIONS, OCR_TEXT
from vistool.tasks.point import POINT
from vistool.tasks.region import REGION
from vistool.tasks.video import VIDEO_LOCATE, VIDEO_QA
from vistool.tasks.vqa import VQA

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (DETECT, GROUND, POINT, OCR_TEXT, OCR_REGIONS, CAPTION, VQA, GUI_ELEMENTS, GUI_GROUND, VIDEO_QA, VIDEO_LOCATE,
                 CLASSIFY, GUI_MARK, REGION)
}

__all__ = ["TASKS", "RunSettings", "TaskResult", "TaskSpec", "build_request", "interpret", "interpret_many"]
