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
is preprocessed in a worker thread while the current one generates. `compile=True`
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
import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vistool.errors import ModelLoadError, RequestError
from vistool.profiles.base import ModelProfile
from vistool.runtime import compiled, speed
from vistool.runtime import inputs as family_inputs
from vistool.runtime.answer_controls import AnswerControlBuilder, BatchControls
from vistool.runtime.backend import validate_requests
from vistool.runtime.detokenize import TokenPieces, plain_decoder
from vistool.runtime.devices import pick_device, pick_dtype
from vistool.runtime.hub import hub_error_hint, hub_preflight
from vistool.runtime.logprob_columns import TokenLogprobs
from vistool.runtime.logprobs import ChosenTokenLogprobs
from vistool.runtime.progress import ProgressCallback, StepProgress
from vistool.runtime.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, decode_answer
from vistool.runtime.types import GenerationRequest, GenerationResponse

logger = logging.getLogger(__name__)
_ChosenTokenLogprobs = ChosenTokenLogprobs  # its old name (tests/test_runtime_speed.py)

DEFAULT_MODEL = "google/gemma-4-E2B-it"


def pick_device_and_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, Any]:
    """Choose where and in what precision to run.

    Takes an optional device ("cuda", "cuda:1", "mps", "cpu") and dtype name
    ("bfloat16", "float16", "float32"). Returns (device, torch dtype): by default CUDA
    with bfloat16, else Apple MPS with float16, else CPU with float32. Raises
    RequestError for a device this machine lacks or an unknown name (see `devices`).
    """
    chosen = pick_device(device)
    return chosen, pick_dtype(dtype, chosen)


def _load_error(model_id: str, exc: Exception) -> ModelLoadError:
    """Turn a loading exception into one message that says what to do."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(model_id).exists():
        hint = "the folder exists but does not hold a loadable model (config.json, safetensors weights, processor files)"
    elif hub_error_hint(model_id, exc) is not None:
        hint = str(hub_error_hint(model_id, exc))
    else:
        hint = (
            "it is not a local folder, and it could not be fetched from the Hugging Face Hub: check the name, "
            "your network, and for gated models accept the licence and run `hf auth login`. "
            "To try vistool without a download, run `vistool make-tiny-model DIR` and pass `--model DIR`"
        )
    return ModelLoadError(f"cannot load model {model_id!r}: {hint} ({type(exc).__name__}: {reason})")


@dataclass
class _Controls:
    """What a micro-batch's `generate` call adds besides the log-prob recorder: the JSON stop and the answer controls."""

    json_stop: Any
    answer: BatchControls


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
    compatible requests, so a micro-batch carries little padding) and `compile` (static
    KV cache + `torch.compile` of the decode step; CUDA graphs on a GPU; the first
    batches pay the compilation). All three keep greedy outputs token-identical.
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
    ) -> None:
        model_id = str(model_id)
        device, torch_dtype = pick_device_and_dtype(device, dtype)  # before the slow transformers import
        from transformers import AutoModelForImageTextToText, AutoProcessor

        load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
        load_kwargs.update(hub_preflight(model_id, revision))  # an unreachable Hub fails (or goes offline) in seconds
        try:
            processor = AutoProcessor.from_pretrained(model_id, **load_kwargs)
            model = AutoModelForImageTextToText.from_pretrained(
                model_id, dtype=torch_dtype, use_safetensors=True, **load_kwargs
            )
        except Exception as exc:  # hub, file-system and format errors all mean "cannot load"
            raise _load_error(model_id, exc) from exc
        model.to(device)
        self._setup(model, processor, model_id, device, torch_dtype, profile, batch_size, prefetch, bucket, compile)

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
    ) -> "TransformersBackend":
        """Wrap a model and processor that are already loaded (benchmarks, tests, notebooks).

        Takes the model (on its device, in its dtype), its processor, the name to record
        as `model` in response settings and the same options as the constructor (the
        profile, when None, comes from `model.config`). Returns the backend.
        """
        backend = cls.__new__(cls)
        device = str(next(model.parameters()).device)
        backend._setup(model, processor, model_id, device, model.dtype, profile, batch_size, prefetch, bucket, compile)
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
        self.device, self.dtype = device, dtype
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = family_inputs.padding_side(model)
        self._stop_ids = self._find_stop_ids()
        self._special_ids = self._find_special_ids()
        text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.context_tokens: int | None = getattr(text_config, "max_position_embeddings", None)
        self._channel_open = self._token_id(CHANNEL_OPEN)
        self._channel_close = self._token_id(CHANNEL_CLOSE)
        # ids -> text, and memoised per-token texts: answer offsets in linear time (vistool.runtime.detokenize).
        self._decode = plain_decoder(self.tokenizer)
        self._pieces = TokenPieces(self._decode, self.tokenizer.convert_ids_to_tokens)
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
    def _token_id(self, token: str) -> int | None:
        """Return the id of a single special token, or None if the vocabulary lacks it."""
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        return None if token_id is None or token_id == self.tokenizer.unk_token_id else int(token_id)

    def _find_special_ids(self) -> set[int]:
        """Return the ids decoding leaves out of the answer: the tokenizer's special tokens,
        except the family's location tokens (some checkpoints mark `<loc_123>` special),
        which carry the answer's coordinates."""
        import re

        special = set(self.tokenizer.all_special_ids) | {
            token_id for token_id, token in self.tokenizer.added_tokens_decoder.items() if token.special
        }
        loc = self.profile.loc_format
        if loc is not None:
            pattern = re.compile(loc.token)
            special -= {
                token_id for token_id, token in self.tokenizer.added_tokens_decoder.items()
                if pattern.fullmatch(str(token))
            }
        return special

    def _find_stop_ids(self) -> set[int]:
        """Return the ids that end an answer (the generation config's eos ids)."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos])

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

    @staticmethod
    def _group_key(request: GenerationRequest) -> tuple:
        """Requests with the same key can share one `generate` call."""
        return (
            request.budget,
            bool(request.images),
            len(request.images),
            request.video is not None,
            request.audio is not None,
            request.max_new_tokens,
            request.decoding,
            request.return_logprobs,
        )

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
        resolved = self._validate(requests)
        responses: list[GenerationResponse | None] = [None] * len(resolved)
        plan = self._plan(resolved)
        workers = self.prefetch if len(plan) > 1 else 0
        while self._worker_processors.qsize() < workers:  # copied here, while no other thread uses it
            self._worker_processors.put(copy.deepcopy(self.processor))
        prepare_chunk = self._prepare_in_worker if workers else self._prepare

        def prepare(chunk: list[int]) -> _Prepared:
            return prepare_chunk([resolved[i] for i in chunk])

        for indices, prepared in speed.prefetched(plan, prepare, workers):
            chunk = [resolved[i] for i in indices]
            cap = self._oom_batch_cap.get(self._group_key(chunk[0]))
            if cap is not None and len(chunk) > cap:  # an earlier micro-batch of this kind ran out of memory
                results = []
                for start in range(0, len(chunk), cap):
                    results.extend(self._generate_safely(chunk[start : start + cap]))
            else:
                results = self._generate_safely(chunk, prepared)
            for index, response in zip(indices, results):
                responses[index] = response
        return [response for response in responses if response is not None]

    def _plan(self, requests: list[GenerationRequest]) -> list[list[int]]:
        """Cut the requests into micro-batches; return each as a list of request indices.

        Requests are grouped by `_group_key` (settings that must be shared within one
        `generate` call), in order of first appearance; with `bucket`, each group is
        sorted by estimated prompt length so that neighbours in a micro-batch need little
        padding. Each group is then cut into micro-batches of `_batch_size_for` requests,
        each listed in input order.
        """
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(self._group_key(request), []).append(index)
        plan = []
        image_processor = getattr(self.processor, "image_processor", None)
        for indices in groups.values():
            if self.bucket and len(indices) > 1:
                indices = sorted(
                    indices,
                    key=lambda i: speed.prompt_length_estimate(requests[i], image_processor, requests[i].budget),
                )
            size = self._batch_size_for(requests[indices[0]])
            # Sorting picks who shares a micro-batch; inside one, rows keep the input order
            # (the padding is the same). The image processor's allocation pattern depends on
            # the order of images: bench_speed's 8 sizes in length order cost 37k page faults
            # and +9% preprocessing time against 27k in input order, so a micro-batch the
            # caller made by hand is processed exactly as the caller would process it.
            plan.extend(sorted(indices[start : start + size]) for start in range(0, len(indices), size))
        return plan

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

    def _batch_size_for(self, request: GenerationRequest) -> int:
        """Return the micro-batch size for requests like `request` (explicit, else per budget and device)."""
        size = self.batch_size_for(request.budget)
        return min(size, self._oom_batch_cap.get(self._group_key(request), size))

    def _generate_safely(self, requests: list[GenerationRequest], prepared: Any = None) -> list[GenerationResponse]:
        """Run a micro-batch; on failure retry each request alone and record its error.

        Takes the requests and, optionally, their prepared inputs (or the exception that
        preparing them raised). On out-of-memory the batch is halved and each half
        retried, down to single requests; any other failure is retried request by request.
        """
        try:
            if isinstance(prepared, BaseException):
                raise prepared
            return self._generate_batch(requests, prepared)
        except Exception as batch_error:
            if self.compile and speed.is_compile_error(batch_error):
                logger.warning("torch.compile failed (%s); generating without it from now on", type(batch_error).__name__)
                self.compile = False
                return self._generate_safely(requests, prepared)
            prepared = None  # drop references to the batch's tensors before retrying
            if speed.is_out_of_memory(batch_error):
                self._static_caches.clear()  # sized for the failed batch; smaller ones are made on demand
                speed.release_memory(self.device)
                if len(requests) > 1:
                    half = (len(requests) + 1) // 2
                    key = self._group_key(requests[0])
                    self._oom_batch_cap[key] = min(half, self._oom_batch_cap.get(key, half))
                    logger.warning(
                        "out of memory at micro-batch %d; retrying as %d + %d", len(requests), half, len(requests) - half
                    )
                    return self._generate_safely(requests[:half]) + self._generate_safely(requests[half:])
            if len(requests) == 1:
                message = f"{type(batch_error).__name__}: {batch_error}"
                return [GenerationResponse.failure(message, self._settings(requests[0]))]
            return [self._generate_safely([request])[0] for request in requests]

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
        inputs = prepared.inputs
        image_sizes = self._resized_sizes(inputs, requests)
        model_inputs = family_inputs.model_inputs(inputs, self.processor, self.device)
        # Where generated tokens start in the output: after the prompt, or after an encoder-decoder's decoder start.
        prompt_length = family_inputs.generated_start(self.model, model_inputs)
        image_tokens, prompt_tokens = self._token_counts(inputs)
        self._check_context(requests, prompt_tokens)
        generate_kwargs, recorder, controls = self._generate_kwargs(requests, prompt_length)
        timer = speed.PhaseTimer(self.device)
        generate_kwargs["stopping_criteria"].insert(0, timer)
        start = time.perf_counter()
        timer.start()
        with torch.inference_mode():
            sequences = self.model.generate(**model_inputs, **generate_kwargs)
        timer.stop()
        generated = sequences[:, prompt_length:].tolist()
        generate_seconds = time.perf_counter() - start
        prefill_seconds, decode_seconds = timer.seconds()
        logprobs = None if recorder is None else recorder.collect(sequences, prompt_length)
        json_stops = None if controls.json_stop is None else controls.json_stop.stop_steps.tolist()
        timings = {
            "preprocess_s": prepared.seconds / len(requests),
            "generate_s": generate_seconds / len(requests),
            "prefill_s": prefill_seconds / len(requests),
            "decode_s": decode_seconds / len(requests),
            "batch_size": len(requests),
        }
        responses = []
        for row, request in enumerate(requests):
            responses.append(
                self._response(
                    request,
                    generated[row],
                    None if logprobs is None else logprobs[row],
                    prompt_tokens=prompt_tokens[row],
                    image_tokens=image_tokens[row],
                    image_sizes=image_sizes[row],
                    timings=dict(timings),
                    json_stop=None if json_stops is None or json_stops[row] < 0 else json_stops[row],
                    control=controls.answer.row(row),
                )
            )
        return responses

    def _check_context(self, requests: list[GenerationRequest], prompt_tokens: list[int]) -> None:
        """Raise RequestError when a prompt plus its max_new_tokens exceeds the model's context.

        Checked before `generate`, so a prompt far too long for the model (which would
        also need memory quadratic in its length) fails with a reason, not an allocation.
        """
        if not self.context_tokens:
            return
        separate = getattr(self.model.config, "is_encoder_decoder", False)  # the prompt and the answer each have a context
        for request, tokens in zip(requests, prompt_tokens):
            if (max(tokens, request.max_new_tokens) if separate else tokens + request.max_new_tokens) > self.context_tokens:
                raise RequestError(
                    f"the prompt is {tokens} tokens (images included) and max_new_tokens is {request.max_new_tokens}: "
                    f"more than the model's context of {self.context_tokens} tokens; shorten the text, lower the "
                    "budget or max_new_tokens"
                )

    def _token_counts(self, inputs: Any) -> tuple[list[int], list[int]]:
        """Return per row (image/video tokens, prompt tokens without padding) of processed inputs."""
        return family_inputs.token_counts(inputs, self.processor)

    def _generate_kwargs(self, requests: list[GenerationRequest], prompt_length: int) -> tuple[dict[str, Any], Any, "_Controls"]:
        """Return the `generate` keyword arguments of a micro-batch, with its recorders.

        Takes the micro-batch (compatible requests) and its padded prompt length. Returns
        (kwargs, the log-prob recorder or None, the batch's `_Controls`: the JSON-close
        criterion and the answer controls). The kwargs always hold a `logits_processor`
        and a `stopping_criteria` list (empty unless log-probs, the JSON stop or an answer
        control are asked for: every logits processor costs an `inspect.signature` per
        decode step in transformers). The log-prob recorder comes before the grammar, so
        log-probs are the model's own distribution (what vLLM's default `raw_logprobs`
        reports too). Everything except the grammar keeps its state on the device; the
        grammar reads the last tokens once per step.
        """
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        first = requests[0]
        generate_kwargs: dict[str, Any] = {
            "max_new_tokens": first.max_new_tokens,
            "logits_processor": LogitsProcessorList(),
            "stopping_criteria": StoppingCriteriaList(),
        }
        if first.decoding.greedy:
            generate_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            generate_kwargs.update(
                do_sample=True,
                temperature=first.decoding.temperature,
                top_p=first.decoding.top_p,
                top_k=first.decoding.top_k,
            )
            if first.decoding.seed is not None:
                torch.manual_seed(first.decoding.seed)
        recorder = None
        if first.return_logprobs:
            recorder = ChosenTokenLogprobs()
            generate_kwargs["logits_processor"].append(recorder)
        json_stop = None
        # The thinking channel may hold brackets of its own, so thinking rows never stop this way.
        wants_stop = [bool(request.stop_when_json_closes) and not request.thinking for request in requests]
        if any(wants_stop):
            enabled = torch.tensor(wants_stop, device=self.device)
            starts = [speed.START_ARRAYS if request.stop_when_json_closes == "array" else speed.START for request in requests]
            json_stop = speed.JsonCloseStop(
                self._json_stop_table(), enabled, prompt_length, torch.tensor(starts, device=self.device)
            )
            generate_kwargs["stopping_criteria"].append(json_stop)
        answer = self._answer_controls(requests, prompt_length)
        generate_kwargs["logits_processor"].extend(answer.processors())
        generate_kwargs["stopping_criteria"].extend(answer.criteria())
        if self.progress is not None:
            generate_kwargs["stopping_criteria"].append(StepProgress(self.progress, prompt_length, first.max_new_tokens))
        if self.compile:
            generate_kwargs["cache"] = self._static_caches.get(len(requests), prompt_length + first.max_new_tokens)
            generate_kwargs["compile_config"] = self._compile_config.get()
        return generate_kwargs, recorder, _Controls(json_stop, answer)

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

    def _json_stop_table(self):
        """Return (building it on first use) the JSON-close transition table on the model's device."""
        if self._json_table is None:
            import torch

            known = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[token_id] for token_id in range(known)], skip_special_tokens=False)
            # A random-weight model may have a larger vocabulary than its tokenizer: its extra ids are no text.
            vocab = max(known, int(getattr(self.model.config.get_text_config(), "vocab_size", known)))
            texts.extend([""] * (vocab - known))
            self._json_table = torch.from_numpy(speed.json_transition_table(texts, self._special_ids)).to(self.device)
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
        """Build the response of one row: cut at the stop token, decode, split thought.

        `json_stop` is the number of tokens generated when the row's JSON answer closed
        (None: it did not stop that way); those tokens are all part of the answer.
        `control` is the row's `RowControl` (where the loop stop ended it, what to record).
        """
        length, finish = len(token_ids), "length"
        for position, token_id in enumerate(token_ids):
            if token_id in self._stop_ids:
                length, finish = position, "stop"
                break
        eos = 1 if finish == "stop" else 0
        if json_stop is not None and json_stop <= length:
            length, finish, eos = json_stop, "stop", 0
        repeat_step = None if control is None else control.repeat_step
        if repeat_step is not None and repeat_step <= length:
            length, finish, eos = repeat_step, "repetition", 0
        answer_ids = token_ids[:length]  # padding only ever follows the stop token
        decoded = decode_answer(
            answer_ids,
            self._decode,
            self._special_ids,
            self._channel_open,
            self._channel_close,
            with_offsets=token_logprobs is not None,
            pieces=self._pieces,
        )
        logprobs = None
        if token_logprobs is not None:  # columns, not one object per token (see vistool.runtime.logprob_columns)
            values = list(map(float, token_logprobs[: len(answer_ids)]))
            logprobs = TokenLogprobs(decoded.token_texts, values, decoded.token_offsets, list(answer_ids))
        return GenerationResponse(
            text=decoded.text,
            raw_text=decoded.raw_text,
            thought=decoded.thought,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            image_tokens=image_tokens,
            generated_tokens=length + eos,
            logprobs=logprobs,
            timings=timings,
            settings={**self._settings(request), **(control.settings if control is not None else {})},
            image_sizes=image_sizes,
        )

    def _resized_sizes(self, inputs: Any, requests: list[GenerationRequest]) -> list[list[tuple[int, int]]]:
        """Return, per request, the (W, H) each of its images was resized to by the processor
        (read by the family's resize rule from the processor outputs: what the model saw)."""
        return family_inputs.resized_sizes(inputs, requests, self.processor, self.profile)
