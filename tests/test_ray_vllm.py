"""The Ray engine's pieces that need no Ray instance: the read stage on one block, and the
vLLM stage's request and answer mapping (vLLM itself is not installed here: its absence
must stop a run with what to install). Skipped when Ray Data is not installed."""

from __future__ import annotations

import base64
import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.data", reason="the ray engine needs Ray Data: pip install 'vistool[ray]'")
pa = pytest.importorskip("pyarrow")  # comes with ray[data]

from tests.test_annotate import make_folder  # noqa: E402
from vistool.api import Vistool  # noqa: E402
from vistool.batch import BatchRunner, WorkItem  # noqa: E402
from vistool.engines.ray_engine import CachedKeys, ModelName, read_block  # noqa: E402
from vistool.engines.ray_vllm import VllmAnswers, VllmRequests, load_vllm, sampling_params  # noqa: E402
from vistool.errors import VistoolError  # noqa: E402
from vistool.io.images import load_image  # noqa: E402
from vistool.runtime.logprob_columns import read_logprobs  # noqa: E402
from vistool.runtime.types import Decoding  # noqa: E402

MODEL = "google/gemma-4-E2B-it"


@pytest.fixture
def light() -> Vistool:
    """A model-free Vistool (the read stage's and the vLLM stage's view of the run)."""
    return Vistool(ModelName(MODEL, "gemma4"), budget=280, max_new_tokens=64)


def block_of(paths, task="detect", options=None) -> pa.Table:
    """The engine's input block for these image paths."""
    items = [WorkItem(path, task, options if options is not None else {"classes": ["person"]}) for path in paths]
    return pa.table({"index": list(range(len(items))), "item": [pickle.dumps(item) for item in items]})


def test_read_block_decodes_uncached_rows_and_isolates_bad_ones(tmp_path, light):
    make_folder(tmp_path, 3, seed=3)
    (tmp_path / "bad.png").write_bytes(b"nope")
    paths = sorted(tmp_path.iterdir())  # bad.png first
    runner = BatchRunner(light, None, batch_size=1, workers=0, progress=False)
    first_key = runner.load(runner.plan(1, WorkItem(paths[1], "detect", {"classes": ["person"]}))).key
    rows = read_block(block_of(paths + [tmp_path / "missing.png"]), vt=light, keys=CachedKeys.of([first_key]).keys).to_pylist()
    assert [row["status"] for row in rows] == ["failed", "cached", "model", "model", "failed"]
    assert rows[0]["stage"] == "read" and "bad.png" in rows[0]["reason"]
    assert rows[0]["key"] is None  # a file whose header is no image is refused before it is hashed (issue 20, item 3)
    assert rows[4]["stage"] == "read" and rows[4]["key"] is None
    assert rows[1]["pixels"] is None and rows[1]["key"] == first_key
    image = load_image(paths[2]).image
    assert rows[2]["pixels"] == image.tobytes() and (rows[2]["width"], rows[2]["height"]) == image.size
    bad_options = read_block(block_of(paths[1:2], "ground", {}), vt=light, keys=CachedKeys.of([]).keys).to_pylist()
    assert bad_options[0]["status"] == "failed" and bad_options[0]["stage"] == "options"


def test_vllm_missing_stops_with_what_to_install():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(VistoolError, match=r"pip install 'ray\[data,llm\]' vllm"):
            load_vllm()
    else:
        pytest.skip("vLLM is installed here")


def test_vllm_requests_carry_the_prompt_the_pixels_and_the_decoding(tmp_path, light):
    make_folder(tmp_path, 1, seed=4)
    row = read_block(block_of(sorted(tmp_path.iterdir())), vt=light, keys=CachedKeys.of([]).keys).to_pylist()[0]
    made = VllmRequests(light)(row)
    assert "pixels" not in made and made["key"] == row["key"]
    user = made["messages"][-1]["content"]
    assert user[1]["text"] == BatchRunner(light, None, batch_size=1).plan(0, pickle.loads(row["item"])).request.prompt
    sent = Image.open(io.BytesIO(base64.b64decode(user[0]["image_url"]["url"].split(",", 1)[1])))
    assert sent.tobytes() == row["pixels"]  # lossless
    assert made["sampling_params"] == {"temperature": 0.0, "max_tokens": 64, "logprobs": 1}
    request = BatchRunner(light, None, batch_size=1).plan(0, pickle.loads(row["item"])).request
    sampled = sampling_params(type(request)(**{**request.__dict__, "decoding": Decoding(temperature=1.0, top_p=0.95, top_k=64)}))
    assert sampled["top_p"] == 0.95 and sampled["top_k"] == 64


@pytest.mark.parametrize("shape", ["dict", "pairs"])
def test_vllm_answers_become_cache_records(tmp_path, light, shape):
    make_folder(tmp_path, 1, seed=5)
    row = read_block(block_of(sorted(tmp_path.iterdir())), vt=light, keys=CachedKeys.of([]).keys).to_pylist()[0]
    text = '[{"box_2d": [10, 20, 500, 600], "label": "person"}]'
    tokens = ['[{"', "box", '_2d": [', "10", ", ", "20", ", ", "500", ", ", "600", '], "label": "', "person", '"}]']
    positions = [{str(7 + i): {"logprob": -0.1 * i, "decoded_token": token}} for i, token in enumerate(tokens)]
    answered = {**row, "pixels": None, "generated_text": text, "num_input_tokens": 300,
                "num_generated_tokens": len(tokens), "generated_tokens": [7 + i for i in range(len(tokens))],
                "__inference_error__": ""}
    failed = {**row, "pixels": None, "__inference_error__": "CUDA out of memory"}
    table = pa.Table.from_pylist([answered, failed])
    if shape == "dict":  # as Python dicts (an object column)
        column = pa.array([positions, None])
    else:  # as an Arrow map per position: to_pylist gives (key, value) pairs
        entry = pa.struct([("logprob", pa.float64()), ("decoded_token", pa.string())])
        column = pa.array([[list(p.items()) for p in positions], None], type=pa.list_(pa.map_(pa.string(), entry)))
    out = VllmAnswers(light, MODEL)(table.append_column("logprobs", column)).to_pylist()
    assert [r["status"] for r in out] == ["answered", "error"] and out[1]["answer"] == "CUDA out of memory"
    record = json.loads(out[0]["answer"])
    assert record["key"] == row["key"] and record["image_size"] == [row["width"], row["height"]]
    response = record["response"]
    assert response["text"] == text and response["prompt_tokens"] == 300 and response["settings"]["backend"] == "vllm"
    assert response["logprobs"]["packed"] == 1  # stored packed, as every cache record (vistool.runtime.logprob_columns)
    logprobs = read_logprobs(response["logprobs"])
    assert logprobs.values == pytest.approx([-0.1 * i for i in range(len(tokens))]) and logprobs.tokens == tokens
    assert logprobs.offsets[3] == text.index("10")
    prepared = BatchRunner(light, None, batch_size=1).plan(0, pickle.loads(row["item"]))
    prepared.fields, prepared.key = json.loads(row["fields"]), row["key"]
    outcome = BatchRunner(light, None, batch_size=1).outcome(prepared, record)
    assert outcome.ok and len(outcome.result.detections) == 1 and outcome.result.detections.confidence is not None
    assert np.all(outcome.result.detections.confidence > 0)


def test_zoomed_items_are_refused_before_ray_starts(tmp_path, light):
    from vistool.batch import AnswerCache
    from vistool.engines import make_runner

    make_folder(tmp_path / "imgs", 1, seed=6)
    runner = make_runner("ray", light, AnswerCache(tmp_path / "answers.jsonl"), progress=False)
    item = WorkItem(next((tmp_path / "imgs").iterdir()), "detect", {"classes": ["person"]}, {"zoom": "tiles"})
    with pytest.raises(VistoolError, match="zoom .* runs with --engine local only"):
        runner.run([item])
