"""The Ray engine's third model stage: ray.data.llm's vLLM processor (engine replicas in actors).

`--engine ray --backend vllm --model google/gemma-4-E2B-it` runs vLLM inside the Ray
job: `ray.data.llm` starts `actors` engine replicas (one GPU each, by default) and
feeds them the rows that need the model. vistool still builds every request (the task
adapter's prompt, the image as a lossless PNG data URL, greedy decoding, the token
limit, log-probs) and turns every answer into the same cache record as its other
backends, so the cache, the parser and the exports are shared. Needs `ray[data,llm]`
and `vllm` on every GPU node; without them the run stops at once with what to install.

What vLLM fixes per replica rather than per request: the image-token budget (passed as
`mm_processor_kwargs`) and thinking (the chat template's `enable_thinking`), so a run
must use one of each. Further engine arguments: `vistool.load(..., lazy=True,
engine_kwargs={...})` (e.g. `max_model_len`, `gpu_memory_utilization`).

Rows that need no model (cached answers, unreadable files) are filtered out before the
processor; the driver settles them from the cache.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import ray.data
from PIL import Image

from vistool.api import Vistool
from vistool.batch.cache import make_record
from vistool.batch.runner import BatchRunner, WorkItem
from vistool.engines import RayOptions
from vistool.errors import VistoolError
from vistool.runtime.deferred import BackendRecipe
from vistool.runtime.openai_backend import encode_image, map_logprobs
from vistool.runtime.thinking import split_thought
from vistool.runtime.types import GenerationRequest, GenerationResponse

VLLM_INSTALL_HINT = "pip install 'ray[data,llm]' vllm (on every GPU node)"


def load_vllm() -> tuple[Callable[..., Any], type]:
    """Return ray.data.llm's (build_processor, vLLMEngineProcessorConfig).

    Raises VistoolError naming what to install when ray.data.llm or vLLM is missing.
    """
    try:
        import vllm  # noqa: F401  (the processor imports it only inside its actors)
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise VistoolError(f"--backend vllm needs ray.data.llm and vLLM ({exc.name or exc} is not installed): "
                           f"{VLLM_INSTALL_HINT}") from exc
    return build_processor, vLLMEngineProcessorConfig


def vllm_stage(dataset: ray.data.Dataset, vt: Vistool, recipe: BackendRecipe, work: list[WorkItem], batch: int,
               actors: int, options: RayOptions) -> ray.data.Dataset:
    """Return `dataset` (read rows) answered by vLLM replicas, as rows of the engine's schema.

    Takes the read stage's dataset, the model-free `Vistool` (settings and family),
    the recipe (model, engine options), the work items (to check the run's budget and
    thinking), the rows per engine batch, the replicas and the Ray options.
    """
    from vistool.engines.ray_engine import ROW_SCHEMA

    build_processor, config_class = load_vllm()
    budget, thinking = _run_wide_settings(vt, work)
    engine_kwargs = {"limit_mm_per_prompt": {"image": 1}, **dict(recipe.options.get("engine_kwargs") or {})}
    budget_kwargs = vt.profile.processor_kwargs(budget)
    if budget_kwargs:
        engine_kwargs["mm_processor_kwargs"] = budget_kwargs
    config = config_class(model_source=recipe.model, engine_kwargs=engine_kwargs, batch_size=batch, concurrency=actors,
                          prepare_multimodal_stage=True, should_continue_on_error=True)
    processor = build_processor(config, preprocess=VllmRequests(vt), postprocess=None,
                                builder_kwargs={"chat_template_kwargs": {"enable_thinking": thinking}})
    waiting = dataset.filter(lambda row: row["status"] == "model")
    answered = processor(waiting)
    return answered.map_batches(VllmAnswers(vt, recipe.model), batch_size=batch, batch_format="pyarrow",
                                num_cpus=options.read_cpus).select_columns(ROW_SCHEMA.names)


def _run_wide_settings(vt: Vistool, work: list[WorkItem]) -> tuple[int | None, bool]:
    """The one budget and thinking setting of the run's requests (vLLM fixes both per replica)."""
    planner = BatchRunner(vt, None, batch_size=1, workers=0, progress=False)
    requests = [p.request for p in (planner.plan(i, item) for i, item in enumerate(work)) if p.request is not None]
    budgets = sorted({str(vt.profile.check_budget(request.budget)) for request in requests})
    thinking = sorted({request.thinking for request in requests})
    if len(budgets) > 1 or len(thinking) > 1:
        raise VistoolError(f"--backend vllm applies one image-token budget and one thinking setting per run "
                           f"(this run asks for budgets {', '.join(budgets)}, thinking {thinking}); run them separately")
    budget = vt.profile.check_budget(requests[0].budget) if requests else None
    return budget, bool(thinking and thinking[0])


def chat_messages(request: GenerationRequest, image: Image.Image) -> list[dict[str, Any]]:
    """The OpenAI chat messages of one request: the system turn, then the image and the prompt."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": encode_image(image)}},
        {"type": "text", "text": request.prompt},
    ]})
    return messages


def sampling_params(request: GenerationRequest) -> dict[str, Any]:
    """vLLM's sampling parameters for a request (temperature 0: greedy; log-probs of the chosen token)."""
    decoding = request.decoding
    params: dict[str, Any] = {"temperature": decoding.temperature, "max_tokens": request.max_new_tokens}
    for name in ("top_p", "top_k", "seed"):
        value = getattr(decoding, name)
        if value is not None:
            params[name] = value
    if request.return_logprobs:
        params["logprobs"] = 1
    return params


class VllmRequests:
    """The processor's preprocess: a read row -> its chat messages and sampling parameters."""

    def __init__(self, vt: Vistool) -> None:
        self.runner = BatchRunner(copy.copy(vt), None, batch_size=1, workers=0, progress=False)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import pickle

        prepared = self.runner.plan(row["index"], pickle.loads(row["item"]))
        assert prepared.request is not None  # the read stage planned the same item
        image = Image.frombytes("RGB", (int(row["width"]), int(row["height"])), row["pixels"])
        kept = {name: value for name, value in row.items() if name != "pixels"}
        return {**kept, "messages": chat_messages(prepared.request, image), "sampling_params": sampling_params(prepared.request)}


class VllmAnswers:
    """After the processor: each answer (or inference error) -> a row with its cache record.

    Used as a function (an instance), so that it runs in Ray tasks, not actors."""

    def __init__(self, vt: Vistool, model: str) -> None:
        self.vt = vt
        self.model = model
        self.runner = BatchRunner(copy.copy(vt), None, batch_size=1, workers=0, progress=False)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pickle

        from vistool.engines.ray_engine import ROW_SCHEMA

        rows = []
        for row in batch.to_pylist():
            out = {name: row.get(name) for name in ROW_SCHEMA.names}
            out["pixels"], out["asked"] = None, True
            error = row.get("__inference_error__")
            if error:
                out.update(status="error", answer=str(error))
            else:
                prepared = self.runner.plan(row["index"], pickle.loads(row["item"]))
                response = self.response(prepared.request, row)  # type: ignore[arg-type]
                record = make_record(json.loads(row["fields"]), response.to_dict(), (int(row["width"]), int(row["height"])),
                                     str(prepared.item.image))
                out.update(status="answered", answer=json.dumps(record, ensure_ascii=False))
            rows.append(out)
        return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)

    def response(self, request: GenerationRequest, row: dict[str, Any]) -> GenerationResponse:
        """Turn one processor output row into a `GenerationResponse` (thought split, log-probs mapped)."""
        raw = str(row.get("generated_text") or "")
        answer, thought = split_thought(raw)
        for token in self.vt.profile.strip_tokens:
            answer = answer.replace(token, "")
        answer = answer.strip()
        logprobs = None
        if request.return_logprobs and row.get("logprobs"):
            logprobs = map_logprobs(_chosen_logprobs(row["logprobs"], row.get("generated_tokens") or []), answer)
        generated = int(row.get("num_generated_tokens") or 0)
        settings = {**request.settings(), "model": self.model, "profile": self.vt.profile.name, "backend": "vllm",
                    "engine": "ray.data.llm"}
        return GenerationResponse(text=answer, raw_text=raw, thought=thought,
                                  finish_reason="length" if generated >= request.max_new_tokens else "stop",
                                  prompt_tokens=int(row.get("num_input_tokens") or 0), generated_tokens=generated,
                                  logprobs=logprobs, settings=settings)


def _chosen_logprobs(positions: list[Any], token_ids: list[int]) -> list[dict[str, Any]]:
    """vLLM's per-position {token id: {logprob, decoded_token}} -> the chosen token's entry per position
    (`token`, `logprob`), the format `map_logprobs` reads. Arrow may have turned each map
    into a list of (key, value) pairs; both shapes are read."""
    entries = []
    for position, candidates in enumerate(positions):
        pairs = candidates.items() if isinstance(candidates, dict) else (candidates or [])
        table = {str(key): value for key, value in pairs}
        chosen = table.get(str(token_ids[position])) if position < len(token_ids) else None
        if chosen is None and table:
            chosen = max(table.values(), key=lambda value: (value or {}).get("logprob", float("-inf")))
        chosen = chosen or {}
        entries.append({"token": str(chosen.get("decoded_token") or ""), "logprob": float(chosen.get("logprob") or 0.0)})
    return entries


__all__ = ["VLLM_INSTALL_HINT", "VllmAnswers", "VllmRequests", "chat_messages", "load_vllm", "sampling_params", "vllm_stage"]
