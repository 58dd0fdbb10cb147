"""The Ray engine (vistool.engines.ray_engine) on a local Ray instance: the same answers,
cache and exports as the single-process engine, a worker killed with SIGKILL, and the
OpenAI backend over two loopback servers of which one fails half its requests.

One Ray instance serves the whole module (start-up dominates on a small machine); it is
limited in CPUs and object-store memory, has no dashboard, and is shut down at the end.
Skipped when Ray Data is not installed (`pip install 'vistool[ray]'`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the ray engine needs Ray Data: pip install 'vistool[ray]'")
pytest.importorskip("ray.data")
psutil = pytest.importorskip("psutil")

from tests.test_annotate import export_bytes, make_folder  # noqa: E402
from tests.test_openai_backend import ScriptedServer, completion  # noqa: E402
from vistool.api import Vistool, load  # noqa: E402
from vistool.batch import AnswerCache, BatchRunner, WorkItem, collect_images  # noqa: E402
from vistool.batch import runner as runner_module  # noqa: E402
from vistool.batch.annotate import AnnotateSummary, write_exports  # noqa: E402
from vistool.batch.export import make_entries  # noqa: E402
from vistool.cli import main  # noqa: E402
from vistool.engines import RayOptions, make_runner  # noqa: E402
from vistool.engines.ray_engine import ray_session  # noqa: E402
from vistool.errors import VistoolError  # noqa: E402
from vistool.runtime.logprob_columns import read_logprobs  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

IMAGES = 40
TASK, OPTIONS = "detect", {"classes": ["person", "car"]}
SETTINGS = {"budget": 70, "max_new_tokens": 8}
FORMATS = ["coco", "yolo", "voc"]
# Ray's own limits on this shared 2-core machine: logical CPUs for 2 model actors plus
# image-reading tasks, a small object store, no dashboard.
LOCAL_RAY = RayOptions(num_cpus=4, object_store_memory=256 * 1024**2)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module, shut down afterwards."""
    with ray_session(LOCAL_RAY) as startup:
        yield startup


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """40 random images in two sub-folders, plus one file that is not an image (last in order,
    so that both engines form the same batches: see ray_engine._item_blocks)."""
    src = tmp_path_factory.mktemp("ray") / "imgs"
    make_folder(src, IMAGES, seed=16, subfolders=True)
    (src / "part1" / "zz-broken.png").write_bytes(b"not a png")
    return src


def run_and_export(runner: Any, src: Path, out: Path) -> AnnotateSummary:
    """Run the runner over every image of `src` and write annotate's exports into `out`."""
    source = collect_images(src)
    report = runner.run([WorkItem(path, TASK, OPTIONS) for path in source.paths])
    summary = AnnotateSummary(out, TASK, report)
    write_exports(summary, make_entries(report.outcomes, source.relative), FORMATS)
    return summary


def ray_runner(vt: Vistool, out: Path, **options: Any) -> Any:
    """A Ray runner writing its answer cache into `out` (batches of 4, no progress bar)."""
    out.mkdir(parents=True, exist_ok=True)
    return make_runner("ray", vt, AnswerCache(out / "answers.jsonl"), batch_size=4, progress=False,
                       ray=RayOptions(**options))


def cache_records(out: Path) -> dict[str, dict[str, Any]]:
    """The answer cache by key, every key asserted to appear once, timings left out."""
    lines = (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    keys = [record["key"] for record in records]
    assert len(keys) == len(set(keys)), "an answer was stored twice"
    for record in records:
        record["response"].pop("timings")
    return {record["key"]: record for record in records}


def assert_same_answers(out: Path, reference: Path) -> None:
    """The same keys and answers in both caches (each once). Token log-probabilities are
    compared to 1e-5: CPU matrix kernels may round differently in another process, in
    the last digits of a float32 (seen once in a few runs here, on one batch)."""
    mine, theirs = cache_records(out), cache_records(reference)
    assert mine.keys() == theirs.keys()
    for key, record in mine.items():
        mine_lp, their_lp = (read_logprobs(r["response"].pop("logprobs")) for r in (record, theirs[key]))
        assert record == theirs[key]
        assert (mine_lp is None) == (their_lp is None)
        if mine_lp is not None:
            assert (mine_lp.tokens, mine_lp.offsets) == (their_lp.tokens, their_lp.offsets)
            assert mine_lp.values == pytest.approx(their_lp.values, abs=1e-5)


@pytest.fixture(scope="module")
def reference(images, tiny_backend, tmp_path_factory) -> Path:
    """The single-process run over the same images and settings (its OUT folder)."""
    out = tmp_path_factory.mktemp("reference")
    runner = BatchRunner(Vistool(tiny_backend, **SETTINGS), AnswerCache(out / "answers.jsonl"), batch_size=4, progress=False)
    with pytest.MonkeyPatch.context() as patch:  # whole batches from the first on, as the Ray engine forms them
        patch.setattr(runner_module, "FIRST_BATCH_SHARE", 1)
        summary = run_and_export(runner, images, out)
    assert summary.report.generated == IMAGES and summary.report.count("failed") >= 1  # the broken file
    assert 0 < summary.report.model_calls < IMAGES  # backend calls, a batch each
    return out


def tiny_lazy(tiny_model_dir: Path) -> Vistool:
    """The tiny model as a recipe: each actor loads its own copy on the CPU."""
    return load(str(tiny_model_dir), lazy=True, device="cpu", dtype="float32", **SETTINGS)


def annotate_argv(images: Path, out: Path, model_dir: Path, actors: int) -> list[str]:
    """`vistool annotate` on Ray with the reference run's settings and formats."""
    return ["annotate", str(images), "--out", str(out), "--classes", "person,car", "--engine", "ray", "--ray-actors",
            str(actors), "--model", str(model_dir), "--device", "cpu", "--budget", "70", "--max-new-tokens", "8",
            "--batch-size", "4", "--format", ",".join(FORMATS), "--no-progress"]


# ------------------------------------------------------------------ transformers actors
def test_annotate_with_two_cpu_actors_matches_the_single_process_run(ray_instance, images, reference, tiny_model_dir,
                                                                     tmp_path, capsys):
    out = tmp_path / "ray"
    argv = annotate_argv(images, out, tiny_model_dir, actors=2)
    assert main(argv) == 1  # the broken file fails, by design
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == IMAGES and summary["done"] == IMAGES - summary["failed_by_stage"].get("answer", 0)
    assert 0 < summary["model_calls"] < IMAGES  # one backend call per model batch in the actors
    assert summary["model_loaded"] is True  # in the actors (this process loaded none)
    assert export_bytes(out) == export_bytes(reference)
    assert_same_answers(out, reference)  # every answer once, the same answers
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    broken = [failure for failure in failures if failure["image"] == "part1/zz-broken.png"]
    assert broken and broken[0]["stage"] == "read" and "zz-broken.png" in broken[0]["reason"]

    assert main(argv) == 1  # everything is cached now: no model call, the same exports
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_calls"] == summary["generated"] == 0 and summary["model_loaded"] is False
    assert summary["done"] == 0 and summary["cached"] == IMAGES - summary["failed"] + 1
    assert export_bytes(out) == export_bytes(reference) and len(cache_records(out)) == IMAGES
    assert main([*argv, "--rescore"]) == 1 and export_bytes(out) == export_bytes(reference)  # no Ray, no model


def test_a_damaged_cached_record_is_asked_again(ray_instance, images, reference, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "damaged"
    shutil.copytree(reference, out)  # a finished run's OUT
    cache = out / "answers.jsonl"
    lines = cache.read_text(encoding="utf-8").splitlines()
    damaged = json.loads(lines[1])
    damaged["response"]["text"] = 12345  # valid JSON, a valid key, a response that cannot be rebuilt
    cache.write_text("\n".join([lines[0], json.dumps(damaged), *lines[2:]]) + "\n", encoding="utf-8")

    assert main(annotate_argv(images, out, tiny_model_dir, actors=1)) == 1  # the broken file, as before
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["generated"] == summary["answers_from_model"] == 1, summary  # usable or not (the tiny model)
    assert summary["answers_from_cache"] == IMAGES - 1, summary
    assert summary["unreadable_cached_answers"] == 1 and "1 cached answer(s)" in captured.err
    appended = cache.read_text(encoding="utf-8").splitlines()[len(lines):]
    assert [json.loads(line)["key"] for line in appended] == [damaged["key"]]  # the model was asked that item only
    assert export_bytes(out) == export_bytes(reference)


def test_a_model_the_actors_cannot_load_stops_the_run_in_one_line(ray_instance, images, tmp_path, capsys):
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "gemma4"}))
    argv = ["annotate", str(images), "--out", str(tmp_path / "out"), "--classes", "person,car", "--engine", "ray",
            "--ray-actors", "1", "--model", str(broken), "--device", "cpu", "--no-progress"]
    assert main(argv) == 2  # a setup error, as with --engine local: not every image failing with it
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot load model '{broken}'" in errors[0] and "RayTaskError" not in err, err
    assert not (tmp_path / "out" / "results.jsonl").exists()


def model_actor_pids() -> list[int]:
    """Process ids of the model-stage workers of this test's own Ray instance (its descendants)."""
    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "ModelStage" in " ".join(process.cmdline()):
                pids.append(process.pid)
        except psutil.Error:  # gone meanwhile
            continue
    return pids


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_instance, images, reference, tiny_model_dir, tmp_path):
    out = tmp_path / "killed"
    answers = out / "answers.jsonl"
    killed: list[int] = []  # answers written when the actor was killed

    def kill_one_actor() -> None:  # once the first answers are written, kill -9 a model actor
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            written = len(answers.read_bytes().splitlines()) if answers.exists() else 0
            pids = model_actor_pids()
            if written >= 4 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(written)
            time.sleep(0.05)

    vt = tiny_lazy(tiny_model_dir)
    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    summary = run_and_export(ray_runner(vt, out, actors=2), images, out)
    killer.join(timeout=10)
    assert killed and killed[0] < IMAGES, "no model actor was killed while answers were still missing"
    written = len(answers.read_bytes().splitlines())
    assert written == IMAGES and len(summary.report.outcomes) == IMAGES + 1
    assert_same_answers(out, reference)  # none lost, none twice, the same answers
    assert export_bytes(out) == export_bytes(reference)


# -------------------------------------------------------------------- openai endpoints
BOX_ANSWER = '```json\n[{"box_2d": [100, 200, 600, 700], "label": "person"}]\n```'


def test_two_servers_one_failing_half_its_requests(ray_instance, images, tmp_path):
    steady, flaky = ScriptedServer(), ScriptedServer()
    counts = {"flaky": 0}
    lock = threading.Lock()

    def answer(body: dict, server: ScriptedServer):
        return 200, completion(BOX_ANSWER), {}

    def fail_every_other(body: dict, server: ScriptedServer):
        with lock:
            counts["flaky"] += 1
            failing = counts["flaky"] % 2 == 0
        return (500, {"error": {"message": "overloaded"}}, {}) if failing else answer(body, server)

    steady.reply, flaky.reply = answer, fail_every_other
    try:
        vt = load("google/gemma-4-E2B-it", backend="openai", base_url=[steady.base_url, flaky.base_url], lazy=True,
                  engine="vllm", max_attempts=1, backoff=0.0, timeout=20.0, budget=280, max_new_tokens=64)
        out = tmp_path / "served"
        first = run_and_export(ray_runner(vt, out, actors=2), images, out)
        outcomes = first.report.outcomes
        assert len(outcomes) == IMAGES + 1 and steady.count > 0 and flaky.count > 0
        model_failures = [outcome for outcome in outcomes if outcome.stage == "model"]
        assert len(model_failures) == flaky.count // 2 > 0  # every failed request is one recorded failure
        assert all("500" in (outcome.reason or "") for outcome in model_failures)
        assert first.report.count("done") == IMAGES - len(model_failures)
        assert steady.count + flaky.count == IMAGES  # each image asked once
        failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
        assert sorted(f["stage"] for f in failures) == sorted(["read"] + ["model"] * len(model_failures))
        assert len(cache_records(out)) == first.report.count("done")

        flaky.reply = answer  # the server recovers: a re-run asks only for what failed
        before = steady.count + flaky.count
        second = run_and_export(ray_runner(vt, out, actors=2), images, out)
        assert steady.count + flaky.count - before == len(model_failures) == second.report.generated
        assert second.report.count("done") == len(model_failures) and second.report.count("failed") == 1
        assert len(cache_records(out)) == IMAGES
        shutil.rmtree(out)
    finally:
        steady.stop()
        flaky.stop()


# --------------------------------------------------------------------------- checks
def test_unknown_engine_vllm_without_ray_and_an_unsendable_backend_are_refused(ray_instance, images, tiny_model_dir, tmp_path):
    vt = tiny_lazy(tiny_model_dir)
    with pytest.raises(VistoolError, match="unknown engine"):
        make_runner("spark", vt, None)
    vllm = load("google/gemma-4-E2B-it", backend="vllm", lazy=True)
    with pytest.raises(VistoolError, match="--backend vllm runs only with --engine ray"):
        make_runner("local", vllm, None)
    loaded = load("google/gemma-4-E2B-it", backend="openai", base_url="http://127.0.0.1:9/v1")  # a live HTTP client
    with pytest.raises(VistoolError, match=r"lazy=True"):
        ray_runner(loaded, tmp_path / "out").run([WorkItem(next(images.rglob("*.png")), TASK, OPTIONS)])


# ------------------------------------------------------------------------- vllm path
def stand_in_generate(row: dict) -> dict:
    """What a vLLM replica adds to a row (a fixed answer), for the stand-in processor."""
    assert row["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    return {**row, "generated_text": BOX_ANSWER, "num_input_tokens": 300, "num_generated_tokens": 20,
            "generated_tokens": [], "__inference_error__": ""}


def test_vllm_path_with_a_stand_in_processor(ray_instance, images, tmp_path, monkeypatch):
    import vistool.engines.ray_vllm as ray_vllm

    built: dict[str, Any] = {}

    class Config:  # stands in for ray.data.llm.vLLMEngineProcessorConfig
        def __init__(self, **kwargs: Any) -> None:
            built["config"] = kwargs

    def build_processor(config, preprocess, postprocess, builder_kwargs):
        built["builder_kwargs"] = builder_kwargs
        return lambda dataset: dataset.map(preprocess).map(stand_in_generate)

    monkeypatch.setattr(ray_vllm, "load_vllm", lambda: (build_processor, Config))
    vt = load("google/gemma-4-E2B-it", backend="vllm", lazy=True, budget=560, max_new_tokens=64)
    out = tmp_path / "vllm"
    first = run_and_export(ray_runner(vt, out, actors=3), images, out)
    assert first.report.count("done") == IMAGES and first.report.generated == IMAGES and first.report.model_calls >= 1
    assert [outcome.stage for outcome in first.report.failures] == ["read"]  # the broken file, settled on the driver
    assert built["config"]["engine_kwargs"]["mm_processor_kwargs"] == {"max_soft_tokens": 560}
    assert built["config"]["concurrency"] == 3 and built["builder_kwargs"]["chat_template_kwargs"] == {"enable_thinking": False}
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["annotations"]) == IMAGES  # one box per image, parsed by vistool
    second = run_and_export(ray_runner(vt, out, actors=3), images, out)
    assert second.report.count("cached") == IMAGES and second.report.model_calls == second.report.generated == 0
    assert len(cache_records(out)) == IMAGES


# ----------------------------------------------------------------------------- eval
def test_coco_evaluation_on_ray_scores_like_one_process(ray_instance, tmp_path):
    from tests.test_eval_run import coco_oracle, synthetic_coco, write_coco_set
    from vistool.evaluation.run import RunOptions, evaluate_coco

    instances = synthetic_coco(__import__("numpy").random.default_rng(1))
    write_coco_set(tmp_path / "images", instances)
    vt = Vistool(coco_oracle(instances))  # a replay backend: sent to the actors as it is
    local = evaluate_coco(vt, instances, tmp_path / "images", RunOptions(tmp_path / "local", progress=False), chunk_size=2)
    on_ray = evaluate_coco(vt, instances, tmp_path / "images", RunOptions(tmp_path / "ray", progress=False, engine="ray",
                                                                         ray=RayOptions(actors=1)), chunk_size=2)
    assert on_ray["metrics"] == local["metrics"] and on_ray["metrics"]["AP"] >= 0.99
    assert (tmp_path / "ray" / "results.json").read_bytes() == (tmp_path / "local" / "results.json").read_bytes()
    assert on_ray["meta"]["run"]["generated"] == local["meta"]["run"]["generated"] == 2 * len(instances["images"])
