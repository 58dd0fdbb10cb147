"""The reliability probe of issue 20, item by item, on one or two source trees.

    python -m eval.probe_hardening [--baseline /path/to/old/checkout] [--limit-s 60]

Every case runs the real command (`python -m vistool.cli ...`, or a few lines of the
Python API) in a subprocess whose PYTHONPATH is the tree under test, in a fresh folder,
with a wall-clock limit (`--limit-s`; a case still running then is a hang and is
killed), an address-space limit of 6 GB (so a runaway allocation fails instead of
taking the machine) and, where the case needs it, servers on 127.0.0.1 run by this
process. For each case it records:
  crash     a Python traceback, a signal, or an exit code outside 0/1/2/130;
  hang      still running at the limit;
  lost      images whose answer the run had (or should have had) but that ended with
            neither a result nor a cached answer;
  outside   files changed outside OUT (every file of the case folder but OUT is hashed
            before and after; links are compared as links);
  wrong     the outcome the issue asks for was not met (the expected exit code, reason
            or behaviour, listed per case).
A tree lacking an option (--timeout, --retries) runs the case without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from tests.test_openai_backend import ScriptedServer, completion  # noqa: E402
from tests.test_openai_hardening import RawServer, models_or, trickle_body, trickle_headers  # noqa: E402

MEMORY_LIMIT = 6 << 30


@dataclass
class Run:
    """One finished (or killed) subprocess."""

    code: int | None
    out: str
    err: str
    hung: bool
    seconds: float

    @property
    def crashed(self) -> bool:
        return not self.hung and ("Traceback" in self.err or self.code is None or self.code not in (0, 1, 2, 130))


@dataclass
class Observation:
    """What one case did: its runs, images lost, and whether the asked-for outcome was met."""

    runs: list[Run] = field(default_factory=list)
    lost: int = 0
    wrong: bool = False
    note: str = ""


@dataclass
class Tree:
    """A source tree under test, the tiny model it uses, and the CLI options it knows."""

    path: Path
    tiny: Path
    limit_s: float
    options: set[str] = field(default_factory=set)
    outside_changes: int = 0  # files changed outside OUT by the runs of the current case

    def vistool(self, *args: str, cwd: Path, env: dict | None = None, file_size: int | None = None,
                timeout: float | None = None) -> Run:
        """Run `python -m vistool.cli ARGS`, dropping options this tree does not have."""
        kept: list[str] = []
        skip = False
        for index, arg in enumerate(args):
            if skip:
                skip = False
                continue
            if arg in ("--timeout", "--retries", "--api-key-env") and arg not in self.options:
                skip = True
                continue
            kept.append(arg)
        return self.python(["-m", "vistool.cli", *kept], cwd=cwd, env=env, file_size=file_size, timeout=timeout)

    def python(self, args: list[str], *, cwd: Path, env: dict | None = None, file_size: int | None = None,
               timeout: float | None = None) -> Run:
        """Run `python ARGS` on this tree with the limits; return the `Run`."""

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            if file_size is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
            os.setsid()

        environment = {**os.environ, "PYTHONPATH": str(self.path), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                       "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
        environment.pop("VISTOOL_API_KEY", None)
        before = snapshot(cwd)
        start = time.monotonic()
        process = subprocess.Popen([sys.executable, *args], cwd=cwd, env=environment, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=limits)
        try:
            out, err = process.communicate(timeout=timeout or self.limit_s)
            run = Run(process.returncode, out, err, False, time.monotonic() - start)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            run = Run(None, out, err, True, time.monotonic() - start)
        self.outside_changes += changed(before, snapshot(cwd))
        return run


# ----------------------------------------------------------------- helpers
def snapshot(root: Path, out_names: tuple[str, ...] = ("out",)) -> dict[str, str]:
    """Hash every entry under `root` except the OUT folders (links as links, special files by type)."""
    state: dict[str, str] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        if rel.parts and rel.parts[0] in out_names:
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            if path.is_symlink():
                state[str(rel / name)] = "link:" + os.readlink(path)
            elif path.is_file():
                size = path.stat().st_size
                state[str(rel / name)] = f"file:{size}:" + (hashlib.sha256(path.read_bytes()).hexdigest() if size < 1 << 26 else "big")
            else:
                state[str(rel / name)] = "special"
    return state


def changed(before: dict[str, str], after: dict[str, str]) -> int:
    """How many entries were added, removed or modified."""
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    """Write a small random PNG (or GIF, by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def replay(folder: Path, answer: str = '[{"box_2d": [100, 100, 600, 700], "label": "cat"}]') -> Path:
    """A replay answers file answering `answer` for every image."""
    path = folder / "replay.json"
    path.write_text(json.dumps({"answers": {}, "errors": {}, "default": answer, "delay_s": 0.0}))
    return path


def annotate(tree: Tree, root: Path, src: str, *extra: str, **options) -> Run:
    """`vistool annotate SRC --out out --classes cat` on the replay backend."""
    return tree.vistool("annotate", src, "--out", "out", "--classes", "cat", "--backend", "replay", "--replay-answers",
                        str(replay(root)), "--no-progress", *extra, cwd=root, **options)


def results(root: Path) -> dict[str, str]:
    """image name -> status in OUT/results.jsonl ({} when absent)."""
    path = root / "out" / "results.jsonl"
    if not path.is_file():
        return {}
    return {row["image"]: row["status"] for row in map(json.loads, path.read_text().splitlines())}


def lost_good(root: Path, good: list[str]) -> int:
    """Good images with no ok result."""
    done = results(root)
    return sum(1 for name in good if done.get(name) != "ok")


# -------------------------------------------------------------------- cases
def escaping_glob(tree: Tree, root: Path) -> Observation:
    """A glob with '..' after a wildcard, drawn and exported: nothing may change outside OUT."""
    image(root / "victim" / "photo.png")
    (root / "a1").mkdir()
    run = annotate(tree, root, "a*/../victim/*.png", "--draw", "--format", "coco,yolo,voc")
    return Observation([run], lost=lost_good(root, [next(iter(results(root)), "?")]) if results(root) else 1,
                       wrong=run.code != 0)


def http_case(action: Callable | None) -> Callable[[Tree, Path], Observation]:
    """detect against a server that trickles / never answers, with a 2 s deadline and one retry."""

    def case(tree: Tree, root: Path) -> Observation:
        def silent(connection: socket.socket, server: RawServer) -> None:
            server.stop_event.wait(300)

        server = RawServer(models_or(action or silent))
        try:
            run = tree.vistool("detect", str(image(root / "a.png")), "--classes", "cat", "--backend", "openai",
                               "--base-url", server.base_url, "--timeout", "2", "--retries", "1", cwd=root)
        finally:
            server.stop()
        return Observation([run], wrong=run.code != 2, note=f"{run.seconds:.1f} s")

    return case


def impostor_folder(kinds: tuple[str, ...]) -> Callable[[Tree, Path], Observation]:
    """annotate a folder with one good image and impostors: each must be one failed item, rc 1."""

    def case(tree: Tree, root: Path) -> Observation:
        image(root / "photos" / "good.png")
        for kind in kinds:
            target = root / "photos" / f"{kind}.jpg"
            if kind == "fifo":
                os.mkfifo(target)
            elif kind == "zero":
                os.symlink("/dev/zero", target)
            elif kind == "huge":
                with open(target, "wb") as handle:
                    handle.truncate(6 << 30)
            elif kind == "text":
                target.write_bytes(b"not an image\n" * 80_000)
        run = annotate(tree, root, "photos")
        failed = {Path(name).stem for name, status in results(root).items() if status != "ok"}
        failures = root / "out" / "failures.jsonl"
        listed = {Path(json.loads(line)["image"]).stem for line in failures.read_text().splitlines()} if failures.is_file() else set()
        return Observation([run], lost=lost_good(root, ["good.png"]), wrong=run.code != 1 or not set(kinds) <= (listed | failed))

    return case


def single(kind: str) -> Callable[[Tree, Path], Observation]:
    """detect on one impostor: a clear error (rc 2) before any model loads."""

    def case(tree: Tree, root: Path) -> Observation:
        target = root / f"{kind}.jpg"
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "zero":
            os.symlink("/dev/zero", target)
        else:
            with open(target, "wb") as handle:
                handle.truncate(6 << 30)
        run = tree.vistool("detect", str(target), "--classes", "cat", "--model", str(root / "no-model"), cwd=root)
        return Observation([run], wrong=run.code != 2 or "cannot load image" not in run.err)

    return case


def long_text(command: str) -> Callable[[Tree, Path], Observation]:
    """10,000 classes / a 100 KB question on the tiny model: a clear error (rc 2)."""

    def case(tree: Tree, root: Path) -> Observation:
        photo = str(image(root / "a.png"))
        classes = ",".join(f"c{i}" for i in range(10_000))  # one argument may hold at most 128 KB
        tiny = ["--model", str(tree.tiny), "--device", "cpu"]
        if command == "detect":
            run = tree.vistool("detect", photo, "--classes", classes, "--budget", "70", *tiny, cwd=root)
        elif command == "ask":
            run = tree.vistool("ask", photo, "why " * 25_000, "--budget", "70", *tiny, cwd=root)
        else:
            run = tree.vistool("annotate", photo, "--out", "out", "--classes", classes, "--budget", "70", *tiny,
                               "--no-progress", cwd=root)
        return Observation([run], wrong=run.code != 2, note=f"{run.seconds:.1f} s")

    return case


def parse_case(name: str) -> Callable[[Tree, Path], Observation]:
    """Parse one answer of the hostile corpus (eval.bench_parse_hostile) in a subprocess."""

    def case(tree: Tree, root: Path) -> Observation:
        # The corpus comes from this tree's benchmark file, loaded by path: `vistool` stays the tree's under test.
        bench = HERE / "eval" / "bench_parse_hostile.py"
        script = ("import importlib.util, sys, time; spec = importlib.util.spec_from_file_location('hostile', sys.argv[2]); "
                  "bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench); "
                  "from vistool.postprocess import parse_many; answers = bench.corpus(0)[sys.argv[1]]; "
                  "start = time.process_time(); parse_many(answers, [(640, 480)] * len(answers)); "
                  "print(time.process_time() - start)")
        run = tree.python(["-c", script, name, str(bench)], cwd=root)
        return Observation([run], note=f"{float(run.out.strip() or 'nan'):.2f} s CPU" if run.code == 0 else "")

    return case


def out_case(kind: str) -> Callable[[Tree, Path], Observation]:
    """An OUT that cannot be written: one line, rc 2, no traceback; with a full disk, no answer lost."""

    def case(tree: Tree, root: Path) -> Observation:
        image(root / "photos" / "a.png")
        image(root / "photos" / "b.png", 1)
        if kind == "below-file":
            (root / "out").write_text("a file where OUT should be")
            run = annotate(tree, root, "photos")
            return Observation([run], wrong=run.code != 2 or len(run.err.strip().splitlines()) != 1)
        if kind == "cache-folder":
            (root / "out" / "answers.jsonl").mkdir(parents=True)
            run = annotate(tree, root, "photos")
            return Observation([run], wrong=run.code != 2 or len(run.err.strip().splitlines()) != 1)
        first = annotate(tree, root, "photos")  # measure the sizes, then again with a file-size limit between them
        cache_size = (root / "out/answers.jsonl").stat().st_size
        results_size = (root / "out/results.jsonl").stat().st_size
        for name in os.listdir(root / "out"):
            path = root / "out" / name
            path.unlink() if path.is_file() else None
        run = annotate(tree, root, "photos", file_size=(cache_size + results_size) // 2)
        cached = (root / "out/answers.jsonl").read_text().count("\n") if (root / "out/answers.jsonl").is_file() else 0
        return Observation([first, run], lost=2 - cached, wrong=run.code != 2 or len(run.err.strip().splitlines()) != 1)

    return case


def corrupt_record(tree: Tree, root: Path) -> Observation:
    """A cached record with a valid key and a damaged body: asked again, rc 0."""
    image(root / "photos" / "a.png")
    first = annotate(tree, root, "photos")
    cache = root / "out/answers.jsonl"
    record = json.loads(cache.read_text())
    record["response"]["text"] = 12345
    cache.write_text(json.dumps(record) + "\n")
    again = annotate(tree, root, "photos")
    return Observation([first, again], lost=lost_good(root, ["a.png"]), wrong=again.code != 0)


def empty_answers(tree: Tree, root: Path) -> Observation:
    """content: null to detect and to annotate: one rule (both a failure naming it)."""
    server = ScriptedServer()
    server.reply = lambda body, srv: (200, completion(None), {})
    photo = str(image(root / "a.png"))
    try:
        common = ["--classes", "cat", "--backend", "openai", "--base-url", server.base_url]
        detect = tree.vistool("detect", photo, *common, cwd=root)
        batch = tree.vistool("annotate", photo, "--out", "out", *common, "--no-progress", cwd=root)
    finally:
        server.stop()
    return Observation([detect, batch], wrong=not (detect.code == 2 and batch.code == 1), note=f"detect rc {detect.code}, annotate rc {batch.code}")


def huge_answer(tree: Tree, root: Path) -> Observation:
    """A 50 MB answer: refused at the size cap (rc 2), quickly and without the memory."""
    server = ScriptedServer()
    server.reply = lambda body, srv: (200, completion("[" + "1, " * 17_000_000 + "1]"), {})
    try:
        run = tree.vistool("detect", str(image(root / "a.png")), "--classes", "cat", "--backend", "openai",
                           "--base-url", server.base_url, "--retries", "0", cwd=root)
    finally:
        server.stop()
    return Observation([run], wrong=run.code != 2, note=f"{run.seconds:.1f} s")


def symlink_loop(tree: Tree, root: Path) -> Observation:
    """A symlink loop as SRC: reported as a loop, not as 'no such file'."""
    os.symlink("photos", root / "photos")
    run = annotate(tree, root, "photos")
    return Observation([run], wrong=run.code != 2 or "symbolic link loop" not in run.err)


def gif_folder(tree: Tree, root: Path) -> Observation:
    """A folder with a GIF: annotated (first frame), not skipped."""
    image(root / "photos" / "a.gif")
    run = annotate(tree, root, "photos")
    return Observation([run], lost=lost_good(root, ["a.gif"]), wrong=run.code != 0)


def openai_key(tree: Tree, root: Path) -> Observation:
    """OPENAI_API_KEY set, --base-url on 127.0.0.1: the key must not be sent."""
    server = ScriptedServer()
    server.reply = lambda body, srv: (200, completion("[]"), {})
    try:
        run = tree.vistool("detect", str(image(root / "a.png")), "--classes", "cat", "--backend", "openai",
                           "--base-url", server.base_url, cwd=root, env={"OPENAI_API_KEY": "sk-probe"})
    finally:
        server.stop()
    return Observation([run], wrong=any(auth for auth in server.auth), note=f"sent: {[a for a in server.auth if a]}")


def api_url(tree: Tree, root: Path) -> Observation:
    """The Python API given a URL string: refused unless allow_urls=True, nothing fetched."""
    image(root / "a.png")
    server = RawServer(lambda connection, srv: (srv.read_request(connection), connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: " + str((root / "a.png").stat().st_size).encode() + b"\r\n\r\n"
        + (root / "a.png").read_bytes())))
    script = ("import sys; from vistool.api import Vistool; from vistool.runtime.replay import ReplayBackend; "
              "from vistool.errors import VistoolError\ntry:\n    Vistool(ReplayBackend(lambda r: '[]')).detect(sys.argv[1], ['cat'])\n"
              "    print('fetched')\nexcept VistoolError as e:\n    print('refused:', e)")
    try:
        run = tree.python(["-c", script, server.base_url.removesuffix("/v1") + "/a.png"], cwd=root)
    finally:
        server.stop()
    return Observation([run], wrong=server.connections > 0, note=run.out.strip()[:60])


CASES: list[tuple[int, str, Callable[[Tree, Path], Observation]]] = [
    (1, "glob with '..' after a wildcard, --draw, YOLO, VOC", escaping_glob),
    (2, "server trickles the body", http_case(trickle_body)),
    (2, "server trickles the headers", http_case(trickle_headers)),
    (2, "server never answers", http_case(None)),
    (3, "annotate: 6 GB non-image, /dev/zero link, text .jpg", impostor_folder(("huge", "zero", "text"))),
    (3, "detect: /dev/zero link", single("zero")),
    (3, "detect: 6 GB non-image", single("huge")),
    (4, "annotate: FIFO named .jpg", impostor_folder(("fifo",))),
    (4, "detect: FIFO named .jpg", single("fifo")),
    (5, "detect: 10,000 classes (tiny model)", long_text("detect")),
    (5, "ask: 100 KB question (tiny model)", long_text("ask")),
    (5, "annotate: 10,000 classes (tiny model)", long_text("annotate")),
    (6, "parse: single-quoted label, 32 KB", parse_case("single-quoted label, 32 KB")),
    (6, "parse: random bytes, 1 MB", parse_case("random bytes, 1 MB")),
    (6, "parse: 200-answer batch", parse_case("200-answer batch (parse_many)")),
    (7, "OUT is a file", out_case("below-file")),
    (7, "answers.jsonl is a folder", out_case("cache-folder")),
    (7, "disk full while writing results", out_case("disk-full")),
    (8, "damaged cache record, valid key", corrupt_record),
    (9, "content: null, detect vs annotate", empty_answers),
    (9, "50 MB answer", huge_answer),
    (10, "symlink loop as SRC", symlink_loop),
    (10, "folder holding a GIF", gif_folder),
    (11, "OPENAI_API_KEY with a 127.0.0.1 --base-url", openai_key),
    (11, "API given an http URL string", api_url),
]


def probe(tree: Tree) -> list[tuple[int, str, Observation, int]]:
    """Run every case on `tree`; return (item, case, observation, files changed outside OUT)."""
    rows = []
    for item, name, case in CASES:
        with tempfile.TemporaryDirectory(prefix="vistool-probe-") as temp:
            tree.outside_changes = 0
            try:
                observation = case(tree, Path(temp))
            except Exception as exc:  # the probe itself failed on this case: say so
                observation = Observation(wrong=True, note=f"probe error: {type(exc).__name__}: {exc}")
            rows.append((item, name, observation, tree.outside_changes))
        print(f"  [{tree.path.name}] item {item}: {name}: {_cells(observation)} outside {tree.outside_changes}", file=sys.stderr)
    return rows


def _cells(observation: Observation) -> str:
    crashes = sum(run.crashed for run in observation.runs)
    hangs = sum(run.hung for run in observation.runs)
    return f"crash {crashes} hang {hangs} lost {observation.lost} wrong {int(observation.wrong)} {observation.note}"


def options_of(path: Path) -> set[str]:
    """The --timeout / --retries / --api-key-env options the tree's `detect` knows."""
    environment = {**os.environ, "PYTHONPATH": str(path)}
    text = subprocess.run([sys.executable, "-m", "vistool.cli", "detect", "--help"], cwd=path, env=environment,
                          capture_output=True, text=True, timeout=120).stdout
    return {option for option in ("--timeout", "--retries", "--api-key-env") if option in text}


def main(argv: list[str] | None = None) -> int:
    """Run the probe on this tree (and a baseline) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another source tree (e.g. an export of main before the fixes)")
    parser.add_argument("--limit-s", type=float, default=60.0, help="seconds before a case counts as a hang")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vistool-probe-tiny-") as temp:
        tiny = Path(temp) / "tiny"
        subprocess.run([sys.executable, "-m", "vistool.cli", "make-tiny-model", str(tiny)], cwd=HERE, check=True,
                       env={**os.environ, "PYTHONPATH": str(HERE)}, capture_output=True)
        trees = ([("baseline", args.baseline.resolve())] if args.baseline else []) + [("this tree", HERE)]
        tables = {}
        for label, path in trees:
            tables[label] = probe(Tree(path, tiny, args.limit_s, options_of(path)))
    print(f"probe of issue 20: {len(CASES)} cases, limit {args.limit_s:g} s and 6 GB per run; "
          "crash / hang / lost / outside OUT / wrong outcome, summed per item")
    header = f"  {'item':>4s} {'cases':>5s}"
    for label in tables:
        header += f" | {label + ': crash hang lost outside wrong':>40s}"
    print(header)
    for item in sorted({item for item, _, _ in CASES}):
        count = sum(1 for it, _, _ in CASES if it == item)
        line = f"  {item:>4d} {count:>5d}"
        for rows in tables.values():
            mine = [row for row in rows if row[0] == item]
            sums = [sum(sum(run.crashed for run in obs.runs) for _, _, obs, _ in mine),
                    sum(sum(run.hung for run in obs.runs) for _, _, obs, _ in mine),
                    sum(obs.lost for _, _, obs, _ in mine), sum(out for *_, out in mine),
                    sum(int(obs.wrong) for _, _, obs, _ in mine)]
            line += " | " + " ".join(f"{value:>5d}" for value in sums).rjust(40)
        print(line)
    print("\nper case:")
    for index, (item, name, _) in enumerate(CASES):
        cells = "  |  ".join(f"{label}: {_cells(rows[index][2])}" for label, rows in tables.items())
        print(f"  {item:>2d} {name:48s} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
