"""The body of one chat-completions request, built for the serving engine, and the
settings its response records.

What goes over the wire:
  - images as `image_url` parts and a video as its timestamped frames, all before the
    prompt (vistool.runtime.openai_media). `video_url` is not used: the frames vistool
    sampled (and their timestamps) are exactly what the model gets, whatever the
    server's video support;
  - the system turn as a plain string, the user turn as media parts then the prompt;
  - `max_tokens`, `temperature` (0 is greedy), `top_p`, `seed`, and `top_k` as an extra
    body field where the engine accepts it; `logprobs`/`top_logprobs` when the request
    asks for log-probs; `chat_template_kwargs: {"enable_thinking": ...}` for thinking;
  - the image-token budget in the engine's own field (vistool.runtime.openai_engines);
  - `response_format` for a request with a JSON schema (vistool.runtime.openai_structured);
  - the caller's `extra_body` fields, merged last.

The size the server's processor resizes each image to is computed on the client with
the family's own rule (`vistool.profiles.resize`) and the settings sent: Gemma 4's
max_soft_tokens, Qwen's min_pixels / max_pixels (smart_resize), so Qwen2.5-VL's answers in
resized pixels map back exactly. It fills `image_sizes`, and settings record the rule
under "resize" (`"assumed": True` when the engine fixes the budget at launch and
Qwen2.5-VL's checkpoint default is assumed). Fixed-size families (PaliGemma 2,
Florence-2) answer in normalised bins; their size depends on the served checkpoint and
is not reported. Unknown over HTTP: the number of image tokens (`image_tokens` is 0 and
settings say `"image_tokens_reported": False`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vistool.profiles.base import ModelProfile
from vistool.profiles.resize import SmartResize
from vistool.runtime import openai_structured
from vistool.runtime.openai_engines import BUDGET_IN_BODY, SERVER_BUDGET_WARNINGS, TAKES_TOP_K
from vistool.runtime.openai_media import ImageCache, ImageTransport, media_of
from vistool.runtime.types import GenerationRequest


@dataclass
class Wire:
    """One request as it goes over the wire, with what its response records.

    body: the JSON body. settings: the response's settings. encode_s: seconds spent
    resizing and encoding media. image_sizes: the (W, H) the server's processor resizes
    each image to, computed on the client ([] when unknown).
    """

    body: dict[str, Any]
    settings: dict[str, Any]
    encode_s: float = 0.0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)


class WireBuilder:
    """Build request bodies for one served model.

    Takes the served model name (`model_id`), the family's profile, the image transport,
    the server's (redacted) base address for settings, the `extra_body` fields merged
    into every body, and `warn(key, message)`, which warns once per key.
    """

    def __init__(
        self,
        model_id: str,
        profile: ModelProfile,
        transport: ImageTransport,
        base_url: str,
        extra_body: dict[str, Any],
        warn: Callable[[str, str], None],
    ) -> None:
        self.model_id = model_id
        self.profile = profile
        self.transport = transport
        self.base_url = base_url
        self.extra_body = extra_body
        self.warn = warn

    def settings(self, request: GenerationRequest, engine: str, refused: str | None) -> dict[str, Any]:
        """Return the settings a response records: request settings plus server facts (never the key).

        `refused` is why the server refused `response_format` before (None: it has not).
        """
        settings = {
            **request.settings(),
            "model": self.model_id,
            "profile": self.profile.name,
            "backend": "openai",
            "engine": engine,
            "base_url": self.base_url,
            "image_format": self.transport.image_format,
            "max_image_side": self.transport.max_image_side,
            "image_tokens_reported": False,
        }
        if engine not in BUDGET_IN_BODY:
            settings["budget"] = "server"
        settings.update(openai_structured.plan(request, refused)[1])
        return settings

    def build(
        self, request: GenerationRequest, asked_budget: int | None, engine: str, cache: ImageCache, refused: str | None
    ) -> Wire:
        """Return the request body for `engine` and the settings its response records.

        Takes the (validated) request, the budget the caller asked for (None: none; a
        server-side engine warns about one), the engine, the media cache of this
        `generate` call and why the server refused `response_format` (None: it has not).
        """
        settings = self.settings(request, engine, refused)
        start = time.perf_counter()
        content, sent_sizes = self.transport.media_parts(request, cache)
        encode_s = time.perf_counter() - start
        content.append({"type": "text", "text": request.prompt})
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": content})
        if any(size != image.size for size, image in zip(sent_sizes, media_of(request))):
            settings["client_resized_to"] = [list(size) for size in sent_sizes]

        decoding = request.decoding
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": request.max_new_tokens,
            "temperature": max(0.0, decoding.temperature),
            "stream": False,
        }
        not_sent: list[str] = []
        if not decoding.greedy and decoding.top_p is not None:
            body["top_p"] = decoding.top_p
        if not decoding.greedy and decoding.top_k is not None:
            if engine in TAKES_TOP_K:
                body["top_k"] = decoding.top_k
            else:
                not_sent.append("top_k")
        if decoding.seed is not None:
            body["seed"] = decoding.seed
        if request.return_logprobs:
            if engine == "transformers":
                not_sent.append("logprobs")  # transformers serve ignores them
            else:
                body["logprobs"] = True
                body["top_logprobs"] = 1

        template_kwargs: dict[str, Any] = {}
        if engine != "generic" or request.thinking:
            template_kwargs["enable_thinking"] = bool(request.thinking)
        if request.thinking and engine in ("vllm", "sglang"):
            body["skip_special_tokens"] = False  # keep <|channel> markers visible without a reasoning parser

        media = bool(request.images) or request.video is not None
        budget = self.profile.video_budget if request.video is not None else request.budget
        if request.video is not None:
            settings["video_frame_budget"] = budget
        if media and budget is not None and engine in ("vllm", "sglang"):
            budget_kwargs = self.profile.server_kwargs(budget)  # Qwen: min_pixels / max_pixels, as vLLM documents
        elif media and budget is not None:
            budget_kwargs = self.profile.processor_kwargs(budget)  # transformers' own keywords (transformers serve)
        else:
            budget_kwargs = {}
        if engine in ("vllm", "sglang") and budget_kwargs:
            body["mm_processor_kwargs"] = budget_kwargs
        elif engine == "transformers" and budget_kwargs:
            template_kwargs["processor_kwargs"] = budget_kwargs
        elif engine not in BUDGET_IN_BODY and asked_budget is not None:
            self.warn("budget", SERVER_BUDGET_WARNINGS[engine].format(budget=asked_budget))
        if template_kwargs:
            body["chat_template_kwargs"] = template_kwargs
        if request.json_schema is not None and openai_structured.plan(request, refused)[0]:
            body["response_format"] = openai_structured.response_format(request.json_schema)
        if not_sent:
            settings["not_sent"] = not_sent
            self.warn(
                "not_sent:" + ",".join(not_sent),
                f"the {engine} engine does not take {' / '.join(not_sent)}; not sent",
            )
        for key, value in self.extra_body.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        image_sizes = self.server_sizes(request, sent_sizes[: len(request.images)], engine, settings)
        return Wire(body=body, settings=settings, encode_s=encode_s, image_sizes=image_sizes)

    def server_sizes(
        self, request: GenerationRequest, sent: list[tuple[int, int]], engine: str, settings: dict[str, Any]
    ) -> list[tuple[int, int]]:
        """Compute the (W, H) the server's processor resizes each sent image to, with the
        family's rule and the budget sent; record the rule in `settings["resize"]`.

        When the engine fixes the budget itself, sizes are computed only for a family
        that needs them (answers in resized pixels), from the checkpoint's default
        settings, and marked `"assumed": True`. Returns [] when the size cannot be known.
        """
        rule = self.profile.resize
        if rule is None or not rule.client_side or not sent:
            return []
        sent_budget = engine in BUDGET_IN_BODY
        if not sent_budget and not self.profile.needs_resized_size:
            return []
        budget = request.budget if sent_budget else None
        if budget is None and not isinstance(rule, SmartResize):
            return []  # Gemma 4's rule needs the budget; its coordinates are normalised anyway
        settings["resize"] = {**rule.settings(budget), "computed_on": "client", "assumed": not sent_budget}
        return [rule.resized_size(width, height, budget) for width, height in sent]


__all__ = ["Wire", "WireBuilder"]
