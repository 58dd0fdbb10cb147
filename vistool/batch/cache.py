"""The answer store: every raw model answer of a batch run, in one append-only JSONL file.

One line per answer: the cache key, the fields it is made of (image content hash, task,
prompt, system prompt, model, generation settings), the displayed image size and the
full `GenerationResponse.to_dict()` (per-token log-probs packed, see `make_record`). A run looks each work item up by key before asking
the model, so re-running skips what is done and a changed setting re-does only the items
whose key it changes.

Crash safety: lines are appended and `fsync`ed once per batch. A process killed in the
middle of a write (SIGKILL, power loss) leaves at most one torn last line; reading
ignores it, and the next append first truncates the file back to its last complete line,
so the file stays valid JSONL and no answer is recorded twice.

Test hook (documented, for the kill-and-resume tests only): when the environment
variable `VISTOOL_TEST_KILL_AFTER=N` is set, the process writes N records, then writes
HALF of the next line, flushes it to disk and kills itself with SIGKILL, which is the
worst moment a real crash can choose. `VISTOOL_TEST_KILL_MODE=clean` kills right after
the N-th complete record instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vistool.errors import VistoolError
from vistool.runtime.logprob_columns import read_logprobs
from vistool.runtime.types import GenerationRequest

CACHE_VERSION = 1
KILL_AFTER_ENV = "VISTOOL_TEST_KILL_AFTER"
KILL_MODE_ENV = "VISTOOL_TEST_KILL_MODE"


def file_sha256(data: bytes) -> str:
    """Return the hex sha256 of `data` (an image file's bytes)."""
    return hashlib.sha256(data).hexdigest()


# Request settings that never change the items an answer gives, so they stay out of the
# cache key (each answer still records them in its provenance, `GenerationResponse.settings`):
# `stop_when_json_closes` only leaves out what the model writes after its JSON closes (the
# closing fence, trailing prose; the tokens before are the same), and the parser reads the
# same items either way. An answer cached with or without it serves both, and a backend
# that ignores it (a server) keys its answers as the local backend does.
ANSWER_NEUTRAL_SETTINGS = frozenset({"stop_when_json_closes"})


def key_fields(
    image_sha256: str, task: str, request: GenerationRequest, model: str, crop: Sequence[int] | None = None
) -> dict[str, Any]:
    """Return the fields an answer depends on, for one image and one request.

    Takes the image's content hash, the task name, the request (its prompt, system
    prompt and `settings()` but for `ANSWER_NEUTRAL_SETTINGS`; its images are not looked
    at), the model id and, for a request about part of the image (a zoom tile or crop),
    that part's box (x1, y1, x2, y2) in pixels of the displayed image; None for the
    whole image, whose fields (and keys) stay as they always were. Returns a JSON-able
    dict; `cache_key` hashes it.
    """
    fields: dict[str, Any] = {
        "image_sha256": image_sha256,
        "task": task,
        "prompt": request.prompt,
        "system": request.system,
        "model": model,
        "settings": {name: value for name, value in request.settings().items() if name not in ANSWER_NEUTRAL_SETTINGS},
    }
    if crop is not None:
        fields["crop"] = [int(value) for value in crop]
    return fields


def cache_key(fields: Mapping[str, Any]) -> str:
    """Return the cache key (hex sha256 of the canonical JSON) of `key_fields(...)`."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """An append-only JSONL answer store with an in-memory index.

    Takes the file path (created on the first append, with its folder). Only the index
    (key -> byte offset and length) is kept in memory; records are read from the file
    when asked for, so a store of millions of answers stays cheap. Reading with `get`
    and testing membership are safe from other threads; appending is for one thread.
    Attributes after opening: `torn_tail` (bytes of an incomplete last line that the
    next append removes), `bad_lines` (unreadable complete lines, skipped) and
    `duplicates` (keys written more than once; the last one wins).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._index: dict[str, tuple[int, int]] = {}
        self._valid_end = 0
        self.torn_tail = 0
        self.bad_lines = 0
        self.duplicates = 0
        self._read_fd: int | None = None
        self._lock = threading.Lock()
        self._written = 0
        kill_after = os.environ.get(KILL_AFTER_ENV)
        self._kill_after = int(kill_after) if kill_after else None
        self._kill_clean = os.environ.get(KILL_MODE_ENV, "torn") == "clean"
        self._load()

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        """Index every complete, valid line; note a torn tail and bad lines."""
        if not self.path.exists():
            return
        offset = 0
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):  # only the last line can lack its newline: a torn write
                    self.torn_tail = len(line)
                    break
                record = _decode(line)
                if record is None:
                    self.bad_lines += 1
                else:
                    if record["key"] in self._index:
                        self.duplicates += 1
                    self._index[record["key"]] = (offset, len(line))
                offset += len(line)
        self._valid_end = offset

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[str]:
        """Return the keys of every stored answer (in no particular order)."""
        return list(self._index)

    def discard(self, key: str) -> bool:
        """Forget the record stored under `key` (one that cannot be read back), so that the
        next `append` of that key writes it again; return whether it was there.

        The old line stays in the file; when the file is opened again, the newest line of
        a key wins. Safe from other threads.
        """
        with self._lock:
            return self._index.pop(key, None) is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the record stored under `key` (a dict, see `make_record`), or None."""
        where = self._index.get(key)
        if where is None:
            return None
        with self._lock:
            if self._read_fd is None:
                self._read_fd = os.open(self.path, os.O_RDONLY)
            fd = self._read_fd
        offset, length = where
        return _decode(os.pread(fd, length, offset))

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield every stored record (the last one written per key), in the order keys were first written."""
        for key in list(self._index):
            record = self.get(key)
            if record is not None:
                yield record

    # ------------------------------------------------------------------ writing
    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append records (dicts with a "key", see `make_record`), then flush and fsync.

        Keys already stored are skipped (so nothing is recorded twice). A torn last line
        left by a crash is truncated away first. Returns the number of lines written.
        """
        lines: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for record in records:
            key = record["key"]
            if key in self._index or key in seen:
                continue
            seen.add(key)
            lines.append((key, (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")))
        if not lines:
            return 0
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size == self._valid_end + self.torn_tail and self.torn_tail:
                os.ftruncate(fd, self._valid_end)  # drop the torn line a crash left behind
                self.torn_tail = 0
            elif size != self._valid_end:
                raise VistoolError(f"answer cache {self.path} was changed by another process (one writer at a time)")
            offset = self._valid_end
            try:
                if self._kill_after is not None:
                    self._write_with_kill_hook(fd, offset, lines)
                else:
                    _write_all(fd, offset, b"".join(line for _, line in lines))
                    os.fsync(fd)
            except OSError as exc:  # e.g. disk full: leave the file as it was, then stop the run
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._valid_end)
                raise VistoolError(f"cannot write the answer cache {self.path}: {exc}") from exc
            for key, line in lines:
                self._index[key] = (offset, len(line))
                offset += len(line)
            self._valid_end = offset
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        return len(lines)

    def _write_with_kill_hook(self, fd: int, offset: int, lines: list[tuple[str, bytes]]) -> None:
        """Write record by record and kill this process at the configured point (tests only)."""
        assert self._kill_after is not None
        for _, line in lines:
            if self._written >= self._kill_after:
                if not self._kill_clean:
                    _write_all(fd, offset, line[: len(line) // 2])
                os.fsync(fd)
                os.kill(os.getpid(), signal.SIGKILL)
            _write_all(fd, offset, line)
            offset += len(line)
            self._written += 1
        os.fsync(fd)

    def close(self) -> None:
        """Close the read handle (the store can still be used; it reopens on demand)."""
        with self._lock:
            if self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd = None

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_record(fields: Mapping[str, Any], response: dict[str, Any], image_size: tuple[int, int], path: str) -> dict[str, Any]:
    """Return the cache record of one answer.

    Takes the key fields (`key_fields`), the response as `GenerationResponse.to_dict()`,
    the displayed image size (W, H) and the image's path (informational: a renamed file
    with the same content still hits). Returns the dict `AnswerCache.append` stores.
    Per-token log-probs are stored packed (`TokenLogprobs.pack`: token texts joined,
    values and integer columns in base64, nothing rounded); records written before,
    with one dict per token, still read (`GenerationResponse.from_dict` takes both).
    """
    if isinstance(response.get("logprobs"), list):  # store per-token log-probs in their compact form
        response = {**response, "logprobs": read_logprobs(response["logprobs"]).pack()}  # type: ignore[union-attr]
    return {
        "v": CACHE_VERSION,
        "key": cache_key(fields),
        **fields,
        "image_size": [int(image_size[0]), int(image_size[1])],
        "path": path,
        "response": response,
    }


def _decode(line: bytes) -> dict[str, Any] | None:
    """Return the record on one line, or None when it is not a valid record."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str) or "response" not in record:
        return None
    return record


def _write_all(fd: int, offset: int, data: bytes) -> None:
    """Write all of `data` at `offset` (os.pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise VistoolError(f"could not write to the answer cache at offset {offset}")
        view = view[written:]
        offset += written


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so a newly created file in it survives a power loss (POSIX only)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
