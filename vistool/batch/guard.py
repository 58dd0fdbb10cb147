"""No run replaces a good export with an emptier one.

Before a run rewrites OUT's results and exports, `lost_results` compares them with what
OUT already holds: an image that has a usable result in OUT/results.jsonl and FAILED in
this run (a cache miss when re-scoring with other settings, a server that went away, a
file that became unreadable) would lose its result. Then the exports are kept as they
are and the run says why. Images that are simply not part of this run (a smaller
--limit, files removed from SRC) are not losses: the export follows what was asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vistool.batch.export import Entry


def exported_ok(results_file: Path) -> set[str]:
    """Return the names of the images with a usable result in a results.jsonl (empty when absent)."""
    names: set[str] = set()
    try:
        handle = open(results_file, encoding="utf-8")
    except OSError:
        return names
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("status") == "ok" and isinstance(record.get("image"), str):
                names.add(record["image"])
    return names


def lost_results(results_file: Path, entries: Sequence[Entry]) -> list[Entry]:
    """Return the entries that failed in this run but have a usable result in `results_file`."""
    before = exported_ok(results_file)
    return [entry for entry in entries if entry.outcome.status == "failed" and entry.name in before]
