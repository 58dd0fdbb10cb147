"""The summary that ends a `vistool annotate` run: counts that say what they mean, the
files written, and why exports were kept or could not be written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistool.batch.runner import RunReport

EXIT_OK, EXIT_FAILED = 0, 1
SHOWN_FAILURES = 3


@dataclass
class AnnotateSummary:
    """What a run did: the runner's report, boxes per class, files written, export errors,
    notes (cache repairs, the model a re-score picked) and, when the exports in OUT were
    kept because this run would have made them emptier, why (`kept_exports`)."""

    out: Path
    task: str
    report: RunReport
    classes: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    export_errors: list[str] = field(default_factory=list)
    cache_notes: list[str] = field(default_factory=list)
    kept_exports: str | None = None
    model_loaded: bool | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every image is annotated and every export written, else 1."""
        failed = self.report.count("failed") or self.export_errors or self.kept_exports
        return EXIT_FAILED if failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-able dict (the counts are `RunReport.to_dict`'s)."""
        return {
            "out": str(self.out),
            "task": self.task,
            **self.report.to_dict(),
            "model_loaded": self.model_loaded,
            "total_seconds": round(self.seconds, 3),
            "detections_per_class": self.classes,
            "outputs": self.outputs,
            "export_errors": self.export_errors,
            "kept_exports": self.kept_exports,
            "cache_notes": self.cache_notes,
            "exit_code": self.exit_code,
        }

    def text(self) -> str:
        """Return a few human-readable lines: images annotated and failed, where the answers
        came from (cache, model, model calls), boxes per class, notes, files written."""
        counts = self.report.to_dict()
        lines = [f"{counts['images']} images: {counts['annotated']} annotated, {counts['failed']} failed, "
                 f"in {self.seconds:.1f} s"]
        unusable_cached = sum(1 for o in self.report.outcomes if o.answered == "cache" and o.status == "failed")
        answers = [f"{counts['answers_from_cache']} from the cache"
                   + (f" ({unusable_cached} unusable)" if unusable_cached else "")]
        if counts["generated"] or counts["model_calls"]:
            answers.append(f"{counts['answers_from_model']} from the model in {counts['model_calls']} model call(s)")
        elif self.model_loaded is False:
            answers.append("no model loaded")
        lines.append("answers: " + ", ".join(answers))
        if counts["failed"]:
            stages = ", ".join(f"{stage}: {n}" for stage, n in counts["failed_by_stage"].items())
            where = self.outputs.get("failures")
            lines.append(f"failures ({stages})" + (f" listed in {where}" if where else ""))
            for outcome in self.report.failures[:SHOWN_FAILURES]:
                lines.append(f"  {outcome.item.image}: {outcome.reason}")
        if self.classes:
            lines.append("boxes per class: " + ", ".join(f"{name} {n}" for name, n in self.classes.items()))
        lines.extend(f"note: {note}" for note in self.cache_notes)
        if self.kept_exports:
            lines.append(f"kept the exports in {self.out} unchanged: {self.kept_exports}")
        lines.extend(f"export error: {error}" for error in self.export_errors)
        if self.outputs:
            lines.append("wrote " + ", ".join(self.outputs.values()))
        return "\n".join(lines)
