"""The Ray engine's stages: the code that runs on Ray workers, and the row schema they share.

  read   `read_block` (a Ray task per block): the batch runner's `plan` and `load` for
         every row, against the cache's key set (`CachedKeys`, shipped once); a row that
         needs the model carries its decoded RGB pixels on.
  model  `ModelStage` (a Ray actor): one backend, built where the actor runs; `ask_model`
         answers each batch once per distinct key and turns each answer into its cache
         record; the pixels are dropped.

`item_blocks` cuts the work items into the dataset's first blocks. The driver (the
writer, vistool.engines.ray_engine) consumes what the model stage returns.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from PIL import Image

from vistool.api import Vistool
from vistool.batch.runner import BatchRunner, PreparedItem, WorkItem
from vistool.errors import ModelLoadError, VistoolError
from vistool.io.images import LoadedImage
from vistool.runtime.deferred import BackendRecipe, DeferredBackend

# One schema for every stage's rows. status: "model" (read, waiting for the model),
# "cached" (its answer is in the cache), "failed" (stage + reason), "answered" (answer
# holds the cache record as JSON), "error" (answer holds the model's error text) or
# "unloadable" (the actor's model cannot be built: reason says why; the driver stops the run).
ROW_SCHEMA = pa.schema([
    ("index", pa.int64()),
    ("item", pa.binary()),          # the pickled WorkItem
    ("status", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("fields", pa.string()),        # the cache key fields, JSON
    ("key", pa.string()),
    ("pixels", pa.large_binary()),  # RGB bytes, from the read stage to the model stage only
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("answer", pa.string()),
    ("asked", pa.bool_()),          # this row's request was sent (one per distinct key in a batch)
    ("call", pa.bool_()),           # this row opened a backend call (the first asked row of each model batch)
])


class ModelName:
    """A stand-in backend with the model's name and family only (for the steps that need no model)."""

    def __init__(self, model_id: str, profile_name: str) -> None:
        self.model_id = model_id
        self.profile_name = profile_name

    def generate(self, requests: Any) -> list[Any]:
        """Never called: the steps that hold this stand-in do not generate."""
        raise VistoolError("this stage runs no model")


class CachedKeys:
    """Membership in a set of cache keys, held as one sorted numpy array (cheap to ship)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys

    @classmethod
    def of(cls, keys: Iterable[str]) -> "CachedKeys":
        """Build from hex keys."""
        return cls(np.array(sorted(keys), dtype="S64"))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not len(self.keys):
            return False
        probe = key.encode("ascii")
        position = int(np.searchsorted(self.keys, probe))
        return position < len(self.keys) and self.keys[position] == probe


def _row(index: int, item: bytes, status: str, **values: Any) -> dict[str, Any]:
    """One row of ROW_SCHEMA (absent columns are null)."""
    return {"index": index, "item": item, "status": status, "asked": False, "call": False, **values}


def _facts(prepared: PreparedItem) -> dict[str, Any]:
    """The key columns of a prepared item."""
    return {"fields": None if prepared.fields is None else json.dumps(prepared.fields), "key": prepared.key}


# ------------------------------------------------------------------------ read stage
def read_block(batch: pa.Table, *, vt: Vistool, keys: Any) -> pa.Table:
    """The read stage: plan and load every row (one Ray task per block); return its rows."""
    cached = CachedKeys(ray.get(keys) if isinstance(keys, ray.ObjectRef) else keys)
    runner = BatchRunner(vt, cached, batch_size=1, workers=0, progress=False)  # type: ignore[arg-type]
    rows = []
    for index, blob in zip(batch.column("index").to_pylist(), batch.column("item").to_pylist()):
        try:
            item = pickle.loads(blob)
            prepared = runner.load(runner.plan(index, item))
        except Exception as exc:  # a bug on one row must not fail the block
            rows.append(_row(index, blob, "failed", stage="read", reason=f"cannot read the item: {type(exc).__name__}: {exc}"))
            continue
        if prepared.failure is not None:
            stage, reason = prepared.failure
            rows.append(_row(index, blob, "failed", stage=stage, reason=reason, **_facts(prepared)))
        elif prepared.image is None:
            rows.append(_row(index, blob, "cached", **_facts(prepared)))
        else:
            image = prepared.image
            rows.append(_row(index, blob, "model", pixels=image.image.tobytes(), width=image.width, height=image.height,
                             **_facts(prepared)))
    return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)


# ----------------------------------------------------------------------- model stage
class ModelStage:
    """The model stage: one backend per actor (built on the first batch that needs it)."""

    def __init__(self, vt: Vistool, source: BackendRecipe | Any) -> None:
        worker = copy.copy(vt)
        worker.backend = DeferredBackend(source) if isinstance(source, BackendRecipe) else source
        self.runner = BatchRunner(worker, None, batch_size=1, workers=0, progress=False)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Answer the rows that wait for the model; pass the others on; drop the pixels."""
        rows = batch.to_pylist()
        waiting: list[tuple[dict[str, Any], PreparedItem]] = []
        for row in rows:
            pixels, row["pixels"] = row["pixels"], None
            if row["status"] != "model":
                continue
            try:
                waiting.append((row, self._prepared(row, pixels)))
            except Exception as exc:  # one unusable row fails alone
                row.update(status="failed", stage="read", reason=f"cannot rebuild the request: {type(exc).__name__}: {exc}")
        if waiting:
            try:
                answers = self.runner.ask_model([prepared for _, prepared in waiting])
            except ModelLoadError as exc:  # a setup error: the driver stops the run with it (raised here, Ray would
                for row, _ in waiting:     # retry the block, then fail with its own error, not this one)
                    row.update(status="unloadable", reason=str(exc))
                return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
            sent: set[str] = set()
            waiting[0][0]["call"] = True  # ask_model made one backend call for the batch
            for row, prepared in waiting:
                answer = answers[prepared.key]  # type: ignore[index]
                row["asked"] = prepared.key not in sent
                sent.add(prepared.key)  # type: ignore[arg-type]
                if isinstance(answer, dict):
                    row.update(status="answered", answer=json.dumps(answer, ensure_ascii=False))
                else:
                    row.update(status="error", answer=answer)
        return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)

    def _prepared(self, row: dict[str, Any], pixels: bytes) -> PreparedItem:
        """Rebuild a read row as a loaded item (its request planned again, its pixels as an image)."""
        prepared = self.runner.plan(row["index"], pickle.loads(row["item"]))
        if prepared.failure is not None:
            raise VistoolError(prepared.failure[1])
        prepared.fields, prepared.key = json.loads(row["fields"]), row["key"]
        size = (int(row["width"]), int(row["height"]))
        prepared.image = LoadedImage(Image.frombytes("RGB", size, pixels), size[0], size[1], str(prepared.item.image))
        return prepared


def item_blocks(work: list[WorkItem], batch: int, most_blocks: int = 1000) -> list[pa.Table]:
    """The work items as blocks of whole batches (the last may be short), at most about `most_blocks`.

    A block always holds a multiple of `batch` consecutive items, so every model batch is
    `batch` consecutive items, as in one process when nothing is cached or failed: the
    same batches give the same numbers (batched inference differs in the last digits of
    log-probabilities between batchings, in one process too).
    """
    rows = batch * max(1, -(-len(work) // (batch * most_blocks)))
    return [
        pa.table({"index": list(range(start, min(start + rows, len(work)))),
                  "item": [pickle.dumps(item) for item in work[start:start + rows]]},
                 schema=pa.schema([("index", pa.int64()), ("item", pa.binary())]))
        for start in range(0, len(work), rows)
    ]



__all__ = ["ROW_SCHEMA", "CachedKeys", "ModelName", "ModelStage", "item_blocks", "read_block"]
