"""Local generation with Hugging Face transformers (Gemma 4 by default; every family).

Loads a Hub id or a local folder through `AutoProcessor` + `AutoModelForImageTextToText`,
renders each request the family's way (its chat template, or its plain task prefix:
`vistool.runtime.inputs`), runs batches padded on the left (on the right for an
encoder-decoder such as Florence-2, whose output is the decoder sequence alone) and
returns one `GenerationResponse` per request, with token counts, the size each image was
resized to, timings, the thinking channel split off and, on request, per-token
log-probabilities. The family comes from the loaded model's config when no profile is
given.

Speed (issue 9; figures in eval/bench_speed.py's docstring): requests are grouped by
compatible settings, sorted by prompt length within a group (less padding), cut into
micro-batches whose default size depends on budget and device, and the next micro-batch
is preprocessed in a worker thread while the current one generates. A group larger
than one batch is decoded with row refilling (issue 19): finished rows leave the
running batch at once and the next micro-batches join it (vistool.runtime.refill);
`generate_iter` yields each micro-batch's answers as soon as they are done. `compile=True`
adds a static KV cache and `torch.compile` (CUDA graphs on a GPU) for the decode step.
A request with `stop_when_json_closes` stops as soon as its JSON answer closes. An
out-of-memory error halves the micro-batch and retries. None of these changes the
tokens a greedy run produces (tests/test_runtime_speed.py).

Answer controls (vistool.runtime.answer_controls): a request's `json_schema` constrains
its answer with a grammar (after a free thought when thinking), `thought_tokens` closes
the thought channel when spent, and `stop_on_repeat` ends a row whose answer loops.
"""

from __future__ import annotations

import copy
import itertools
import logging
import queue
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vistool.errors import ModelLoadError, RequestError
from vistool.profiles.base import ModelProfile
from vistool.runtime import compiled, speed, transformers_controls
from vistool.runtime import inputs as family_inputs
from vistool.runtime.answer_controls import AnswerControlBuilder, BatchControls
from vistool.runtime.backend import Answered, validate_requests
from vistool.runtime.logprobs import ChosenTokenLogprobs
from vistool.runtime.progress import ProgressCallback
from vistool.runtime.transformers_batch import batch_responses, generate_safely, setup_batch
from vistool.runtime.transformers_batching import group_key, plan_micro_batches
from vistool.runtime.transformers_controls import Controls, json_stop_table
from vistool.runtime.transformers_decode import TokenFacts, row_response
from vistool.runtime.transformers_refill import generate_refilling, refill_chunk
from vistool.runtime.transformers_loading import load_pretrained, pick_device_and_dtype
from vistool.runtime.types import GenerationRequest, GenerationResponse

logger = logging.getLogger(__name__)
_ChosenTokenLogprobs = ChosenTokenLogprobs  # its old name (tests/test_runtime_speed.py)

DEFAULT_MODEL = "google/gemma-4-E2B-it"


@dataclass
class _Prepared:
    """One processor-ready micro-batch and the time it took to build."""

    requests: list[GenerationRequest]
    inputs: Any
    seconds: float


class TransformersBackend:
    """Run a vision-language model locally with transformers.

    Takes a Hub id or local folder (`model_id`), optional device/dtype (auto by default),
    the model family profile (read from the loaded model's config when None), the micro-batch size
    (None: a default per budget and device, see `speed.default_batch_size`), and the
    opt-ins `trust_remote_code` and `revision`. Only safetensors weights are loaded.
    Speed switches: `prefetch` (how many upcoming micro-batches are preprocessed in
    worker threads, each with its own copy of the processor, while the current one
    generates; 0 = off; None = 1 on a GPU, 0 on CPU, where the model itself keeps the
    cores busy), `bucket` (sort requests by prompt length within a group of
    compatible requests, so a micro-batch carries little padding), `compile` (static
    KV cache + `torch.compile` of the decode step; CUDA graphs on a GPU; the first
    batches pay the compilation) and `refill` (row refilling, on by default: a row
    that finishes leaves the running batch and waiting requests take its place,
    vistool.runtime.transformers_refill; not with `compile`, not for encoder-decoders).
    All four keep greedy outputs token-identical (refilling up to the rounding of a
    different batch shape).
    """

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        profile: ModelProfile | None = None,
        batch_size: int | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        prefetch: int | None = None,
        bucket: bool = True,
        compile: bool = False,
        refill: bool = True,
    ) -> None:
        model_id = str(model_id)
        device, torch_dtype = pick_device_and_dtype(device, dtype)  # before the slow transformers import
        model, processor = load_pretrained(model_id, torch_dtype, trust_remote_code=trust_remote_code, revision=revision)
        model.to(device)
        self._setup(model, processor, model_id, device, torch_dtype, profile, batch_size, prefetch, bucket, compile, refill)

    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any,
        *,
        model_id: str = "in-memory",
        profile: ModelProfile | None = None,
        batch_size: int | None = None,
        prefetch: int | None = None,
        bucket: bool = True,
        compile: bool = False,
        refill: bool = True,
    ) -> "TransformersBackend":
        """Wrap a model and processor that are already loaded (benchmarks, tests, notebooks).

        Takes the model (on its device, in its dtype), its processor, the name to record
        as `model` in response settings and the same options as the constructor (the
        profile, when None, comes from `model.config`). Returns the backend.
        """
        backend = cls.__new__(cls)
        device = str(next(model.parameters()).device)
        backend._setup(model, processor, model_id, device, model.dtype, profile, batch_size, prefetch, bucket, compile, refill)
        return backend

    def _setup(
        self,
        model: Any,
        processor: Any,
        model_id: str,
        device: str,
        dtype: Any,
        profile: ModelProfile | None,
        batch_size: int | None,
        prefetch: int | None,
        bucket: bool,
        compile: bool,
        refill: bool = True,
    ) -> None:
        """Set the backend's state around a loaded model and processor."""
        self.model_id = model_id
        if profile is None:
            from vistool.profiles import family_from_config

            profile = family_from_config(model.config.to_dict(), repr(model_id))
        if profile.prompt_format.chat and not getattr(processor, "chat_template", None):
            raise ModelLoadError(
                f"{model_id!r} has no chat template, but model family {profile.name!r} renders its prompts with one; "
                "is the profile right? (--profile / profile=)"
            )
        self.profile = profile
        self.profile_name = self.profile.name
        self.batch_size = None if batch_size is None else max(1, int(batch_size))
        if prefetch is None:
            prefetch = speed.default_prefetch(device)
        self.prefetch = max(0, int(prefetch))
        self.bucket = bucket
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if compile and self.encoder_decoder:
            logger.warning("compile=True is not supported for encoder-decoder models (%s); generating without it", model_id)
            compile = False
        self.compile = compile
        self.refill = refill
        self.device, self.dtype = device, dtype
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = family_inputs.padding_side(model)
        # Stop, special and channel ids, ids -> text, and memoised per-token texts (vistool.runtime.transformers_decode);
        # the backend's own names for them are what scoring and the tests read.
        self._tokens = TokenFacts.of(self.tokenizer, model, profile)
        self._stop_ids, self._special_ids = self._tokens.stop_ids, self._tokens.special_ids
        self._channel_open, self._channel_close = self._tokens.channel_open, self._tokens.channel_close
        self._decode, self._pieces = self._tokens.decode, self._tokens.pieces
        text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.context_tokens: int | None = getattr(text_config, "max_position_embeddings", None)
        # Prefetch threads each borrow their own copy of the processor: a fast tokenizer
        # must not be used from two threads at once (padding settings mutate it).
        self._worker_processors: queue.SimpleQueue = queue.SimpleQueue()
        self._oom_batch_cap: dict[Any, int] = {}  # group key -> largest batch that fitted after an OOM
        self._json_table = None  # built on the first request that asks to stop when its JSON closes
        self._static_caches = compiled.StaticCaches(model)  # (batch, length) -> reusable StaticCache
        self._compile_config = compiled.LazyCompileConfig(device)
        # Called as progress(tokens generated so far, token limit) after each decode step (progress displays).
        self.progress: ProgressCallback | None = None
        self._controls: AnswerControlBuilder | None = None  # built on the first request that needs one

    # ----------------------------------------------------------------- helpers
    def _render(self, request: GenerationRequest, processor: Any = None) -> str:
        """Render one request the family's way (see `vistool.runtime.inputs.render`)."""
        return family_inputs.render(request, processor or self.processor, self.profile)

    def _prepare_in_worker(self, requests: list[GenerationRequest]) -> _Prepared:
        """`_prepare` for a prefetch thread: with a processor copy no other thread is using."""
        processor = self._worker_processors.get()  # `generate` made one copy per worker thread
        try:
            return self._prepare(requests, processor)
        finally:
            self._worker_processors.put(processor)

    def _prepare(self, requests: list[GenerationRequest], processor: Any = None) -> _Prepared:
        """Render and process one micro-batch of requests sharing budget and modality.

        Takes the requests and the processor to use (default: the backend's own).
        Returns the processor outputs and the seconds it took.
        """
        processor = processor or self.processor
        start = time.perf_counter()
        if requests[0].audio is not None and not self.accepts_audio:
            raise RequestError(f"model {self.model_id!r} has no audio encoder: it cannot hear the audio")
        # Pixels are cast to the model's dtype in `process` (the same rounding as on the device), and on
        # a GPU the tensors are pinned below: in a prefetch thread this takes the cast and half of the
        # host-to-device copy off the generation thread (~1 GB of float32 pixels per 128
        # images at budget 280), and the copy itself can run asynchronously.
        inputs = family_inputs.process(requests, processor, self.profile, self.dtype)
        if self.device.split(":")[0] == "cuda":
            for key, value in inputs.items():
                if hasattr(value, "pin_memory"):
                    inputs[key] = value.pin_memory()
        return _Prepared(requests, inputs, time.perf_counter() - start)

    _group_key = staticmethod(group_key)  # requests with the same key can share one `generate` call

    @property
    def accepts_audio(self) -> bool:
        """True when the model has an audio encoder (Gemma 4 E2B/E4B do; 26B/31B do not)."""
        return getattr(self.model.config, "audio_config", None) is not None

    def score(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Score fixed answers: for each request with `choices`, the log-probability of
        each choice as the whole answer, in `choice_logprobs` (see `vistool.runtime.scoring`:
        one forward pass over the prompt, one over all the choices). A request that fails
        gets a response with `error` set."""
        from vistool.runtime.scoring import score_requests

        return score_requests(self, self._validate(requests))

    def _validate(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Check the batch and resolve default budgets; raise RequestError/BudgetError."""
        resolved = validate_requests(requests, self.profile)
        family_inputs.check_format(resolved, self.profile)
        return resolved

    # ------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate one response per request, batching compatible requests together.

        Takes a non-empty sequence of requests. Returns responses in the same order. A
        micro-batch that fails is retried one request at a time, so a failure affects
        only the request that caused it (its response has `error` set); one that runs
        out of memory is split in halves and retried (and later micro-batches of that
        kind stay at the size that fitted).
        """
        responses: list[GenerationResponse | None] = [None] * len(requests)
        for answered in self.generate_iter(requests):
            for index, response in answered:
                responses[index] = response
        return [response for response in responses if response is not None]

    def generate_iter(self, requests: Sequence[GenerationRequest]) -> Iterator[Answered]:
        """Generate as `generate` does, yielding answers as soon as they are done.

        Takes a non-empty sequence of requests. Yields lists of (request index,
        response): each micro-batch's as soon as it has finished (with row refilling,
        micro-batches finish in the order their rows end, not in input order), so a
        caller can save answers while the rest generate. Every request is answered once.
        """
        resolved = self._validate(requests)
        plan = self._plan(resolved)
        workers = self.prefetch if len(plan) > 1 else 0
        while self._worker_processors.qsize() < workers:  # copied here, while no other thread uses it
            self._worker_processors.put(copy.deepcopy(self.processor))
        prepare_chunk = self._prepare_in_worker if workers else self._prepare

        def prepare(chunk: list[int]) -> _Prepared:
            return prepare_chunk([resolved[i] for i in chunk])

        def key_of(item: tuple[list[int], Any]) -> Any:
            return self._group_key(resolved[item[0][0]])

        for _, chunks in itertools.groupby(speed.prefetched(plan, prepare, workers), key=key_of):
            first = next(chunks)
            group = itertools.chain([first], chunks)
            if self._refills():
                yield from generate_refilling(self, resolved, group, self._batch_size_for(resolved[first[0][0]]))
                continue
            for indices, prepared in group:
                yield list(zip(indices, self._generate_static(resolved, indices, prepared)))

    def _generate_static(self, requests: list[GenerationRequest], indices: list[int], prepared: Any) -> list[GenerationResponse]:
        """Decode one micro-batch with one `generate` call (at the size that fitted, after an out-of-memory error)."""
        chunk = [requests[i] for i in indices]
        cap = self._oom_batch_cap.get(self._group_key(chunk[0]))
        if cap is not None and len(chunk) > cap:  # an earlier micro-batch of this kind ran out of memory
            results = []
            for start in range(0, len(chunk), cap):
                results.extend(self._generate_safely(chunk[start : start + cap]))
            return results
        return self._generate_safely(chunk, prepared)

    def _refills(self) -> bool:
        """True when groups are decoded with row refilling (vistool.runtime.transformers_refill)."""
        return self.refill and not self.compile and not self.encoder_decoder

    def _plan(self, requests: list[GenerationRequest]) -> list[list[int]]:
        """Cut the requests into micro-batches (vistool.runtime.transformers_batching); return
        each as a list of request indices, in input order within it.

        With row refilling, a group larger than one batch is cut into the smaller
        micro-batches that join a running batch (`refill_chunk`); a group that fits in
        one batch stays one micro-batch.
        """
        image_processor = getattr(self.processor, "image_processor", None)
        sizes = Counter(self._group_key(request) for request in requests)

        def refill_size_for(request: GenerationRequest) -> int:
            slots = self._batch_size_for(request)
            return slots if sizes[self._group_key(request)] <= slots else refill_chunk(slots)

        size_for = refill_size_for if self._refills() else self._batch_size_for
        return plan_micro_batches(requests, size_for, bucket=self.bucket, image_processor=image_processor)

    def video_frame_size(self, width: int, height: int, frames: int) -> tuple[int, int] | None:
        """Return the (W, H) to decode the frames of a (W, H) video of `frames` sampled frames at, or None for full size.

        Passed to `vistool.io.video.sample_video` as `decode_size`: frames come out of the
        decoder near the size the family's video processor resizes them to (the profile's
        resize rule, `ResizeRule.frame_size`, at the family's video budget; see
        `speed.video_decode_size`). None for a family that takes no video or has no rule.
        """
        rule = self.profile.resize
        video_processor = getattr(self.processor, "video_processor", None)
        if rule is None or video_processor is None or not self.profile.video:
            return None
        budget = self.profile.video_budget
        return speed.video_decode_size((width, height), lambda w, h: rule.frame_size(w, h, frames, video_processor, budget))

    def batch_size_for(self, budget: int | None) -> int:
        """Return the micro-batch size this backend uses for an image-token budget.

        Takes the budget (None: the family's default). Returns the explicit
        `batch_size` when one was given, else the default for the budget and device
        (`speed.default_batch_size`). The batch runner sends this many requests at once.
        """
        return self.batch_size or speed.default_batch_size(budget, self.device)

    def requests_per_call(self, budget: int | None) -> int:
        """Return how many requests a caller should send per `generate` call at an image-token budget.

        With row refilling, `speed.REFILL_CALLS` batches: finished rows then have
        requests waiting to take their place; otherwise one batch (`batch_size_for`).
        """
        size = self.batch_size_for(budget)
        return size * speed.REFILL_CALLS if self._refills() else size

    def _batch_size_for(self, request: GenerationRequest) -> int:
        """Return the micro-batch size for requests like `request` (explicit, else per budget and device)."""
        size = self.batch_size_for(request.budget)
        return min(size, self._oom_batch_cap.get(self._group_key(request), size))

    def _generate_safely(self, requests: list[GenerationRequest], prepared: Any = None) -> list[GenerationResponse]:
        """Run a micro-batch; on failure retry each request alone and record its error
        (vistool.runtime.transformers_batch.generate_safely: halves on out of memory)."""
        return generate_safely(self, requests, prepared)

    def _settings(self, request: GenerationRequest) -> dict[str, Any]:
        """Return the settings a response records: request settings plus model facts."""
        return {
            **request.settings(),
            "model": self.model_id,
            "profile": self.profile_name,
            "backend": "transformers",
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def _generate_batch(self, requests: list[GenerationRequest], prepared: _Prepared | None = None) -> list[GenerationResponse]:
        """Run one micro-batch of compatible requests through `model.generate`.

        Takes the requests and, optionally, their already prepared inputs (prepared here
        when None). Returns one response per request, in order. Raises what the model
        raises (the caller isolates failures and backs off on out-of-memory).
        """
        import torch

        if prepared is None:
            prepared = self._prepare(requests)
        batch = setup_batch(self, requests, prepared)
        timer = speed.PhaseTimer(self.device)
        batch.generate_kwargs["stopping_criteria"].insert(0, timer)
        start = time.perf_counter()
        timer.start()
        with torch.inference_mode():
            sequences = self.model.generate(**batch.model_inputs, **batch.generate_kwargs)
        timer.stop()
        generate_seconds = time.perf_counter() - start
        prefill_seconds, decode_seconds = timer.seconds()
        rows = len(requests)
        timings = {
            "preprocess_s": prepared.seconds / rows,
            "generate_s": generate_seconds / rows,
            "prefill_s": prefill_seconds / rows,
            "decode_s": decode_seconds / rows,
            "batch_size": rows,
        }
        return batch_responses(self, batch, sequences, [dict(timings) for _ in requests])

    def _token_counts(self, inputs: Any) -> tuple[list[int], list[int]]:
        """Return per row (image/video tokens, prompt tokens without padding) of processed inputs."""
        return family_inputs.token_counts(inputs, self.processor)

    def _generate_kwargs(self, requests: list[GenerationRequest], prompt_length: int) -> tuple[dict[str, Any], Any, Controls]:
        """Return the `generate` keyword arguments of a micro-batch, with its recorders
        (vistool.runtime.transformers_controls.generate_kwargs): (kwargs, the log-prob
        recorder or None, the batch's `Controls`)."""
        compiled_cache = None
        if self.compile:
            compiled_cache = self._static_caches.get(len(requests), prompt_length + requests[0].max_new_tokens)
        return transformers_controls.generate_kwargs(
            requests,
            prompt_length,
            device=self.device,
            json_table=self._json_stop_table,
            answer=self._answer_controls(requests, prompt_length),
            progress=self.progress,
            cache=compiled_cache,
            compile_config=self._compile_config.get() if self.compile else None,
        )

    def _answer_controls(self, requests: list[GenerationRequest], prompt_length: int) -> BatchControls:
        """Return the grammar, thought-budget and loop-stop controls of a micro-batch (empty when none is asked for)."""
        needed = any(r.json_schema is not None or r.stop_on_repeat or r.free_reason or r.thinking for r in requests)
        if not needed:
            return BatchControls(notes=[{} for _ in requests])
        if self._controls is None:
            vocab = max(len(self.tokenizer), int(getattr(self.model.config.get_text_config(), "vocab_size", 0) or 0))
            self._controls = AnswerControlBuilder(
                self.tokenizer, vocab, self._stop_ids, self._special_ids, self._channel_open, self._channel_close, self.device
            )
        return self._controls.build(requests, prompt_length)

    def _json_stop_table(self) -> Any:
        """Return (building it on first use) the JSON-close transition table on the model's device."""
        if self._json_table is None:
            self._json_table = json_stop_table(self.tokenizer, self.model, self._special_ids, self.device)
        return self._json_table

    def _response(
        self,
        request: GenerationRequest,
        token_ids: list[int],
        token_logprobs: list[float] | None,
        *,
        prompt_tokens: int,
        image_tokens: int,
        image_sizes: list[tuple[int, int]],
        timings: dict[str, float],
        json_stop: int | None = None,
        control: Any = None,
    ) -> GenerationResponse:
        """Build the response of one row (vistool.runtime.transformers_decode.row_response)."""
        return row_response(
            self._tokens,
            token_ids,
            token_logprobs,
            settings=self._settings(request),
            prompt_tokens=prompt_tokens,
            image_tokens=image_tokens,
            image_sizes=image_sizes,
            timings=timings,
            json_stop=json_stop,
            control=control,
        )

    def _resized_sizes(self, inputs: Any, requests: list[GenerationRequest]) -> list[list[tuple[int, int]]]:
        """Return, per request, the (W, H) each of its images was resized to by the processor
        (read by the family's resize rule from the processor outputs: what the model saw)."""
        return family_inputs.resized_sizes(inputs, requests, self.processor, self.profile)


__all__ = ["DEFAULT_MODEL", "TransformersBackend", "pick_device_and_dtype"]
