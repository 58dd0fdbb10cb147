"""The data that crosses the backend boundary: requests in, responses out.

A `GenerationRequest` carries everything a backend needs (images already loaded and
oriented, prompt, budget, decoding settings); a `GenerationResponse` carries the raw
answer plus everything later layers need to interpret and audit it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from PIL import Image

from vistool.io.audio import AudioClip
from vistool.io.video import VideoFrames
from vistool.runtime.logprob_columns import TokenLogprob, TokenLogprobs, read_logprobs

# "repetition": the local backend stopped a row whose answer kept repeating a whole item.
FinishReason = Literal["stop", "length", "repetition", "error"]


@dataclass(frozen=True)
class Decoding:
    """Decoding settings. `temperature == 0` means greedy (the reproducible default)."""

    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax."""
        return self.temperature <= 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (for provenance and cache keys)."""
        return asdict(self)


@dataclass
class GenerationRequest:
    """One prompt over zero or more images (or one sampled video) for a backend.

    `budget` is the image-token budget (None: the model family's default); for Gemma 4
    it must be one of 70, 140, 280, 560, 1120. Images are placed before the text.
    `stop_when_json_closes` (honoured by the local transformers backend) ends
    generation as soon as the answer's first top-level JSON array/object closes (True),
    or its first top-level array ("array": for list answers, so that a model writing bare
    objects instead of a list is not cut after the first one): the tokens up to there
    are the same, the closing fence and any trailing prose are not generated. Use it
    only for prompts whose answer is one JSON value; the task layer sets it for those
    (`TaskSpec.json_stop`).
    `audio` is a sound track heard with the video (families and models that hear:
    Gemma 4 E2B/E4B). `choices`, when set, makes this a scoring request: the backend
    does not generate, it scores each choice as the whole answer (`Backend.score`).

    Answer control (vistool.structured, vistool.runtime.repetition):
      json_schema: constrain the answer to this JSON schema (constrained decoding on the
        local backend, `response_format` on a server); None generates free.
      free_reason: why a task that wanted a schema generates free (recorded, not sent).
      stop_on_repeat: stop a row once its answer repeats a whole item (local backend;
        a server's answer has the repeated tail cut off instead).
      thought_tokens: with `thinking`, the part of `max_new_tokens` reserved for the
        thought; the local backend closes the thought channel when it is spent, so
        the answer keeps the rest.
    """

    prompt: str
    images: list[Image.Image] = field(default_factory=list)
    video: VideoFrames | None = None
    system: str | None = None
    budget: int | None = None
    max_new_tokens: int = 256
    decoding: Decoding = field(default_factory=Decoding)
    thinking: bool = False
    return_logprobs: bool = False
    stop_when_json_closes: bool | Literal["array"] = False
    audio: AudioClip | None = None
    choices: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None
    free_reason: str = ""
    stop_on_repeat: bool = False
    thought_tokens: int | None = None

    def settings(self) -> dict[str, Any]:
        """Return the generation settings of this request as a JSON-able dict.

        `stop_when_json_closes`, `json_schema` (as a short id of the schema) and
        `thought_tokens` (with thinking) appear only when set, so the settings (and cache
        keys built from them) of requests that use none of them are unchanged; the JSON
        stop is recorded (provenance) but the answer cache leaves it out of its keys
        (`vistool.batch.cache.ANSWER_NEUTRAL_SETTINGS`). The loop stop is left out: it
        only shortens an answer that repeats itself, which parses to the same items.
        """
        settings: dict[str, Any] = {
            "budget": self.budget,
            "max_new_tokens": self.max_new_tokens,
            "decoding": self.decoding.to_dict(),
            "thinking": self.thinking,
            "return_logprobs": self.return_logprobs,
        }
        if self.stop_when_json_closes:
            settings["stop_when_json_closes"] = self.stop_when_json_closes
        if self.audio is not None:
            settings["audio_seconds"] = round(self.audio.duration, 3)
        if self.choices is not None:
            settings["choices"] = list(self.choices)
        if self.json_schema is not None:
            from vistool.structured.schema import schema_id

            settings["json_schema"] = schema_id(self.json_schema)
        if self.thinking and self.thought_tokens is not None:
            settings["thought_tokens"] = self.thought_tokens
        return settings


@dataclass
class GenerationResponse:
    """What a backend returns for one request.

    `text` is the answer with the thinking channel removed (kept in `thought`);
    `raw_text` is everything decoded (special tokens other than padding removed).
    `image_sizes` are the sizes (W, H) the processor resized each image to: the
    model's own pixel space, needed by families that answer in resized pixels.
    `error` is set (and `finish_reason == "error"`) when this one request failed.
    `choice_logprobs` answers a scoring request: the log-probability of each of its
    choices as the whole answer (end of answer included), in the request's order.
    `logprobs` is a sequence of `TokenLogprob` (the local backend gives a columnar
    `TokenLogprobs`, which holds no per-token objects).
    """

    text: str
    raw_text: str = ""
    thought: str | None = None
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    image_tokens: int = 0
    generated_tokens: int = 0
    logprobs: Sequence[TokenLogprob] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None
    choice_logprobs: list[float] | None = None

    @property
    def ok(self) -> bool:
        """True when the backend produced an answer."""
        return self.error is None

    def to_dict(self, packed_logprobs: bool = False) -> dict[str, Any]:
        """Return a JSON-able dict of every field (`choice_logprobs` only when set, so the
        records of generated answers are as before).

        Log-probs are a list of per-token dicts, or with `packed_logprobs` the compact
        form of `TokenLogprobs.pack` (what the answer cache stores; `from_dict` reads both).
        """
        data = asdict(replace(self, logprobs=None))
        if data["choice_logprobs"] is None:
            del data["choice_logprobs"]
        if self.logprobs is not None:
            columns = TokenLogprobs.from_items(self.logprobs)
            data["logprobs"] = columns.pack() if packed_logprobs else columns.to_list()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationResponse":
        """Rebuild a response written by `to_dict` (e.g. from the answer cache, old or new format)."""
        data = dict(data)
        data["logprobs"] = read_logprobs(data.get("logprobs"))
        data["image_sizes"] = [tuple(size) for size in data.get("image_sizes", [])]
        return cls(**data)

    @classmethod
    def failure(cls, message: str, settings: dict[str, Any] | None = None) -> "GenerationResponse":
        """Return the response that stands for a request that failed with `message`."""
        return cls(text="", finish_reason="error", error=message, settings=settings or {})
