"""Evaluation reports: one metrics dict written as JSON and as a markdown page.

Every evaluator's score object has ``to_dict()``; that dict is what goes in. The
markdown rendering is generic:

- scalar entries (numbers, strings, None) form the first table, ``| metric | value |``;
- an entry that maps names to dicts of scalars (a breakdown such as ``by_group``) becomes
  its own table, one row per name and one column per inner key;
- an entry that maps names to scalars or lists becomes a two-column table (lists as JSON);
- a multi-line string (such as pycocotools' printout) becomes a fenced block;
- a list of scalars (such as warnings) becomes a bullet list;
- anything else is written as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vistool.evaluation.common import write_json


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and "\n" not in value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def to_markdown(metrics: Mapping[str, Any], title: str, meta: Mapping[str, Any] | None = None, digits: int = 4) -> str:
    """Render a metrics dict (see the module docstring) as a markdown page; return the text.

    ``meta`` (e.g. dataset path, model, settings) is listed under the title, its tables
    (a mapping of scalars such as run counts, a list of records such as failures) after
    the metrics; floats are written with ``digits`` decimals.
    """
    lines = [f"# {title}", ""]
    tables: list[str] = []
    if meta:
        for key, value in meta.items():
            if isinstance(value, Mapping) and value and all(_is_scalar(v) or isinstance(v, Mapping) for v in value.values()):
                tables += [f"## {key}", ""] + _table([str(key), "value"], [[str(k), _fmt(v, digits)] for k, v in value.items()]) + [""]
            elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                columns = list(dict.fromkeys(c for row in value for c in row))
                tables += [f"## {key}", ""] + _table(columns, [[_fmt(row.get(c), digits) for c in columns] for row in value]) + [""]
            else:
                lines.append(f"- **{key}**: {_fmt(value, digits)}")
        lines += [""]
    scalars = [[str(k), _fmt(v, digits)] for k, v in metrics.items() if _is_scalar(v)]
    if scalars:
        lines += _table(["metric", "value"], scalars) + [""]
    for key, value in metrics.items():
        if _is_scalar(value):
            continue
        lines += [f"## {key}", ""]
        if isinstance(value, str):
            lines += ["```", value.rstrip("\n"), "```", ""]
        elif isinstance(value, list) and all(_is_scalar(v) for v in value):
            lines += [f"- {_fmt(v, digits)}" for v in value] or ["(none)"]
            lines += [""]
        elif isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            columns: list[str] = []
            for inner in value.values():
                columns += [c for c in inner if c not in columns]
            rows = [[str(name)] + [_fmt(inner.get(c), digits) for c in columns] for name, inner in value.items()]
            lines += _table([str(key)] + columns, rows) + [""]
        elif isinstance(value, Mapping) and all(_is_scalar(v) or isinstance(v, list) for v in value.values()):
            lines += _table([str(key), "value"], [[str(k), _fmt(v, digits)] for k, v in value.items()]) + [""]
        else:
            lines += ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```", ""]
    lines += tables
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    metrics: Mapping[str, Any],
    path: str | Path,
    title: str,
    meta: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``metrics`` as ``<path>.json`` and ``<path>.md``; return both paths.

    ``path`` is a file stem (a ``.json`` or ``.md`` suffix is dropped). The JSON file holds
    ``{"title", "meta", "metrics"}``; the markdown file is ``to_markdown(metrics, title, meta)``.
    """
    stem = Path(path)
    if stem.suffix in (".json", ".md"):
        stem = stem.with_suffix("")
    json_path = write_json(stem.with_name(stem.name + ".json"), {"title": title, "meta": dict(meta or {}), "metrics": dict(metrics)})
    md_path = stem.with_name(stem.name + ".md")
    md_path.write_text(to_markdown(metrics, title, meta), encoding="utf-8")
    return json_path, md_path


def emit(metrics: Mapping[str, Any], title: str, report: str | Path | None = None, meta: Mapping[str, Any] | None = None) -> str:
    """Shared CLI ending: return the markdown for ``metrics`` and, when ``report`` is set, write both report files there."""
    if report is not None:
        write_report(metrics, report, title, meta)
    return to_markdown(metrics, title, meta)
