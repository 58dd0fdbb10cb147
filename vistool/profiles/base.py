"""The record that holds everything that differs between model families.

One `ModelProfile` per family (one module each in this package). The runtime reads the
budget fields; post-processing reads the coordinate convention and answer parser; task
adapters read the prompt wording. Nothing about a family lives anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vistool.errors import BudgetError, VistoolError
from vistool.profiles.resize import FixedResize, ResizeRule
from vistool.profiles.variants import NO_VARIANTS, AnswerVariants

if TYPE_CHECKING:  # the readers live in postprocess, which imports this module
    from vistool.postprocess.readers import RawItems

Kind = Literal["boxes", "points", "ocr_regions"]
KINDS: tuple[str, ...] = ("boxes", "points", "ocr_regions")

# A reader turns an answer text into raw items in the model's own coordinates.
Reader = Callable[[str, "ModelProfile"], "RawItems"]
# A resize rule (vistool.profiles.resize) maps (displayed (width, height), budget) to the
# (width, height) the family's processor resizes the image to: the pixels the model sees.


@dataclass(frozen=True)
class CoordSystem:
    """How a family writes coordinates, and how it quantises them.

    order: "yx" when each pair is (y, x) (Gemma 4, Gemini, PaliGemma), "xy" otherwise.
    scale: the value that stands for the full width/height (1000, 1024 bins);
      None means absolute pixels of the processor-RESIZED image (Qwen2.5-VL), so the
      resized size is the scale.
    offset: added to a value before scaling; 0.5 when a value names a bin whose centre
      is meant (Florence-2's dequantiser).
    quantise: how the model turns a coordinate into an integer: "round" (values
      0..scale) or "floor" (bins 0..scale-1). Used to write oracle answers.
    """

    order: Literal["yx", "xy"] = "yx"
    scale: float | None = 1000.0
    offset: float = 0.0
    quantise: Literal["round", "floor"] = "round"


@dataclass(frozen=True)
class LocFormat:
    """How a location-token family writes an item (PaliGemma, Florence-2).

    token: regex of one location token with the bin number as group 1.
    label_side: "after" when the label follows the tokens (PaliGemma), "before" when it
      precedes them (Florence-2).
    separator: text that ends an item's label ("" when none).
    skip: regex of other tokens to remove from labels (segmentation tokens).
    template: format string that writes one token from a bin number.
    """

    token: str
    label_side: Literal["after", "before"]
    template: str
    separator: str = ""
    skip: str = ""


@dataclass(frozen=True)
class PromptFormat:
    """How a request's prompt reaches the family's processor.

    chat: True when the processor's chat template renders the turns (system turn, media
      parts, text, the thinking switch: Gemma 4, Qwen); False for a plain task prefix
      (PaliGemma 2, Florence-2), which has no system turn and no thinking.
    image_token: what the plain format writes once per image before the prompt
      ("<image>" for PaliGemma, whose processor then adds `<bos>` and the closing
      newline; "" for Florence-2, whose processor inserts its own image tokens and turns
      a task token into its prompt).
    """

    chat: bool = True
    image_token: str = ""

    def plain(self, prompt: str, images: int) -> str:
        """Return the processor text of a plain-format request with `images` images."""
        return self.image_token * images + prompt


@dataclass(frozen=True)
class ModelProfile:
    """What one model family needs, in one place.

    Runtime fields:
      name: registry key (e.g. "gemma4").
      budgets: the image-token budgets the family accepts (empty: no budget knob).
      default_budget: budget used for images when a request gives none.
      video_budget: budget per video frame.
      budget_kwarg: the image-processor keyword that carries the budget.
      resize: how the processor resizes an image, and which keywords carry a budget
        (`vistool.profiles.resize`; a rule is also callable as (size, budget) -> size);
        None when unknown (a hosted model).
      token_pixels: pixels of the resized image per image token (Gemma 4: 48 x 48).
      prompt_format: chat template or plain task prefix (`PromptFormat`).
      video: whether the family takes video input.
      extra: free-form settings for the runtime.
      answer_end: the token that ends the model's answer (its end of turn), scored after
        each choice when classifying by log-probability (None: the tokenizer's eos).
      audio_seconds: the most seconds of audio the family hears (None: it takes no audio).

    Checkpoint fields (read by `vistool.profiles.detect`):
      title: the family's name in messages ("Qwen2.5-VL").
      model_types / architectures: the `model_type` and `architectures` values of the
        family's config.json.

    Answer fields (read by vistool.postprocess):
      coords: the coordinate convention (order, scale, bin offset, quantisation).
      readers: kind ("boxes", "points", "ocr_regions") -> function(text, profile)
        returning raw items; a kind missing here is not supported by the family.
      box_keys / point_keys: JSON keys that hold a box / a point, first match wins.
      label_keys / text_keys / confidence_keys: JSON keys of an item's label, of an OCR
        region's text, of a score the model wrote itself.
      loc_format: the location-token syntax (None for JSON families).
      ocr_quads: OCR regions are written as quadrilaterals (4 points, 8 numbers)
        rather than boxes (Florence-2).
      variants: the drifts from this format the reader still accepts (other keys, a
        label -> box dict, 0-1 or pixel coordinates, OCR quads; see
        vistool.profiles.variants). None by default: a family opts in.
      thought_markers: (open, close) pairs around reasoning to ignore.
      strip_tokens: special tokens to remove from labels and text.
      model_patterns: lower-case substrings of Hugging Face model ids of this family.

    Task fields (read by vistool.tasks):
      prompts: prompt templates that replace a task's default wording for this family,
        keyed "<task>" or "<task>.<variant>" (the defaults follow Gemma 4's conventions).
      default_prompts: which tasks may fall back to the default wording when the family
        has no prompt of its own: "all" (Gemma 4 conventions), "text" (only tasks that
        answer in text; structured answers need the family's own wording) or "none"
        (the family answers only its own task prefixes).
    """

    name: str
    budgets: tuple[int, ...] = ()
    default_budget: int | None = None
    video_budget: int | None = None
    budget_kwarg: str | None = None
    resize: ResizeRule | None = None
    token_pixels: int | None = None
    prompt_format: PromptFormat = PromptFormat()
    video: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    answer_end: str | None = None
    audio_seconds: float | None = None
    coords: CoordSystem = CoordSystem()
    readers: Mapping[str, Reader] = field(default_factory=dict)
    box_keys: tuple[str, ...] = ("box_2d",)
    point_keys: tuple[str, ...] = ("point_2d",)
    label_keys: tuple[str, ...] = ("label",)
    text_keys: tuple[str, ...] = ("text", "label")
    confidence_keys: tuple[str, ...] = ("confidence", "score")
    loc_format: LocFormat | None = None
    ocr_quads: bool = False
    variants: AnswerVariants = NO_VARIANTS
    thought_markers: tuple[tuple[str, str], ...] = ()
    strip_tokens: tuple[str, ...] = ()
    model_patterns: tuple[str, ...] = ()
    title: str = ""
    model_types: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    prompts: Mapping[str, str] = field(default_factory=dict)
    default_prompts: Literal["all", "text", "none"] = "all"

    @property
    def needs_resized_size(self) -> bool:
        """True when coordinates are pixels of the processor-resized image."""
        return self.coords.scale is None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The answer kinds this family can produce, in the order of `KINDS`."""
        return tuple(kind for kind in KINDS if kind in self.readers)

    def reader(self, kind: str) -> Reader:
        """Return the reader for `kind`; raise VistoolError when the family has none."""
        try:
            return self.readers[kind]
        except KeyError:
            known = ", ".join(self.kinds) or "none"
            raise VistoolError(f"model family {self.name!r} has no {kind!r} answer format (supported: {known})") from None

    def check_budget(self, budget: int | None) -> int | None:
        """Return the budget to use (the default for None); raise BudgetError if unsupported."""
        if budget is None:
            return self.default_budget
        if not self.budgets:
            if isinstance(self.resize, FixedResize):
                raise BudgetError(f"{self.resize.no_budget_reason(self.name)} (got {budget})")
            raise BudgetError(f"model family {self.name!r} has no image-token budget setting (got {budget})")
        if budget not in self.budgets:
            allowed = ", ".join(str(b) for b in self.budgets)
            raise BudgetError(f"image-token budget {budget} is not supported by {self.name}; use one of {allowed}")
        return budget

    def resized_size(self, size: tuple[int, int], budget: int | None = None) -> tuple[int, int] | None:
        """Return the (width, height) this family's processor resizes a (width, height)
        image to at `budget` (None: the default budget), or None when the family declares
        no resize rule. Raises BudgetError for an unsupported budget."""
        if self.resize is None:
            return None
        return self.resize((int(size[0]), int(size[1])), self.check_budget(budget))

    def image_tokens(self, size: tuple[int, int], budget: int | None = None) -> int | None:
        """Return how many image tokens a (width, height) image costs at `budget` (the
        family's resize rule: Gemma 4 (W/48)(H/48), Qwen (W/f)(H/f), fixed families their
        fixed count), or None when the family declares no resize rule."""
        if self.resize is None:
            return None
        return self.resize.image_tokens(int(size[0]), int(size[1]), self.check_budget(budget))

    def processor_kwargs(self, budget: int | None) -> dict[str, Any]:
        """Return the image-processor keyword arguments that apply `budget` (a local
        processor, or `transformers serve`); {} when the family has no budget knob."""
        budget = self.check_budget(budget)
        if self.resize is not None:
            return self.resize.processor_kwargs(budget) if budget is not None else {}
        if budget is None or self.budget_kwarg is None:
            return {}
        return {self.budget_kwarg: budget}

    def server_kwargs(self, budget: int | None) -> dict[str, Any]:
        """Return the `mm_processor_kwargs` that apply `budget` on vLLM / SGLang ({} without a knob)."""
        budget = self.check_budget(budget)
        if self.resize is not None:
            return self.resize.server_kwargs(budget) if budget is not None else {}
        return self.processor_kwargs(budget)

    def video_processor_kwargs(self) -> dict[str, Any]:
        """Return the video-processor keyword arguments of the per-frame budget ({}: the processor's own)."""
        if self.budget_kwarg and self.video_budget:
            return {self.budget_kwarg: self.video_budget}
        return {}
