"""How each family's processor resizes an image, and the budget knob that steers it.

A resize rule answers, for one family: which processor keywords carry an image-token
budget (locally and on a serving engine), what size (W, H) an image of a given size
becomes and how many image tokens it costs (computed on the client, the way the
server's processor does it), and how to read the size back from the processor's own
outputs (what the model saw). Three rules cover the families:

  - `Gemma4Resize`: keep the aspect ratio, sides multiples of patch x pool (48 px),
    at most `budget` soft tokens (`max_soft_tokens`);
  - `SmartResize`: Qwen's smart_resize, sides multiples of patch x merge (28 px for
    Qwen2.5-VL, 32 px for Qwen3-VL), pixels within min_pixels..max_pixels. vistool's
    budget is in image tokens here too: a budget of N tokens is max_pixels = N x factor^2
    (one token per factor x factor area), min_pixels stays the checkpoint's;
  - `FixedResize`: every image to one fixed size (PaliGemma 2, Florence-2): no budget.

Each rule also says what the family's video processor makes of a frame (`frame_size`,
given the clip's frame count and the loaded video processor), so that frames can be
decoded near that size (`vistool.runtime.speed.video_decode_size`).

Every rule is written from the installed transformers code (image_processing_gemma4.py,
image_processing_qwen2_vl.py, the SigLIP / CLIP processors, video_processing_qwen2_vl.py,
video_processing_qwen3_vl.py) and checked against it in tests/test_resize_rules.py and
tests/test_video_decode_size.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from vistool.errors import VistoolError


@dataclass(frozen=True)
class Gemma4Resize:
    """Gemma 4: aspect ratio kept, both sides multiples of patch x pool, (H/48)(W/48) <= budget.

    patch: the vision patch (16 px); pool: the pooling kernel (3); kwarg: the
    image-processor keyword of the budget.
    """

    patch: int = 16
    pool: int = 3
    kwarg: str = "max_soft_tokens"
    rule = "gemma4"
    client_side = True

    def __call__(self, size: tuple[int, int], budget: int | None) -> tuple[int, int]:
        """`resized_size` as the callable (size, budget) -> size (None: 280, the default)."""
        return self.resized_size(size[0], size[1], 280 if budget is None else budget)

    def resized_size(self, width: int, height: int, budget: int) -> tuple[int, int]:
        """Return the (W, H) a `width` x `height` image becomes at `budget` soft tokens."""
        side = self.patch * self.pool
        factor = math.sqrt(budget * self.pool**2 * self.patch**2 / (width * height))
        new_h = math.floor(height * factor / side) * side
        new_w = math.floor(width * factor / side) * side
        longest = budget * side
        if new_h == 0 and new_w == 0:
            raise VistoolError(f"Gemma 4 cannot resize a {width}x{height} image (both sides round to 0)")
        if new_h == 0:  # an extreme strip: one row of tokens, the other side in whole tokens
            new_h, new_w = side, min(math.floor(width / height) * side, longest)
        elif new_w == 0:
            new_w, new_h = side, min(math.floor(height / width) * side, longest)
        return new_w, new_h

    def image_tokens(self, width: int, height: int, budget: int) -> int:
        """Return the soft tokens of a `width` x `height` image at `budget`."""
        new_w, new_h = self.resized_size(width, height, budget)
        side = self.patch * self.pool
        return (new_w // side) * (new_h // side)

    def frame_size(self, width: int, height: int, frames: int, video_processor: Any, budget: int | None) -> tuple[int, int]:
        """Return the (W, H) Gemma 4's video processor makes of a `width` x `height` frame.

        The image rule at the frame budget: `budget`, else the video processor's own
        (`max_soft_tokens`, 70 per frame), with its patch and pooling; the frame count
        does not matter. Raises VistoolError for a frame that cannot be resized.
        """
        budget = budget or getattr(video_processor, self.kwarg, None) or 70
        patch = int(getattr(video_processor, "patch_size", None) or self.patch)
        pool = int(getattr(video_processor, "pooling_kernel_size", None) or self.pool)
        rule = self if (patch, pool) == (self.patch, self.pool) else Gemma4Resize(patch, pool, self.kwarg)
        return rule.resized_size(width, height, int(budget))

    def processor_kwargs(self, budget: int) -> dict[str, Any]:
        """The image-processor keywords (local processor, `transformers serve`) for `budget`."""
        return {self.kwarg: budget}

    def server_kwargs(self, budget: int) -> dict[str, Any]:
        """The `mm_processor_kwargs` of vLLM / SGLang for `budget`."""
        return {self.kwarg: budget}

    def settings(self, budget: int) -> dict[str, Any]:
        """What to record in provenance about how images were resized."""
        return {"rule": self.rule, self.kwarg: budget, "multiple_of": self.patch * self.pool}

    def read_sizes(self, inputs: Any, processor: Any) -> list[tuple[int, int]] | None:
        """Return each image's resized (W, H) from the processor outputs (`image_position_ids`,
        x then y; padding patches have x = -1), or None when they are absent."""
        positions = inputs.get("image_position_ids")
        if positions is None:
            return None
        patch = int(getattr(processor.image_processor, "patch_size", self.patch))
        valid = (positions[..., :1] >= 0).expand_as(positions)
        largest = positions.masked_fill(~valid, -1).amax(dim=1).tolist()
        return [(int(x) * patch + patch, int(y) * patch + patch) for x, y in largest]


@dataclass(frozen=True)
class SmartResize:
    """Qwen's smart_resize: sides multiples of patch x merge, pixels within a range.

    patch / merge: the vision patch and the spatial merge (their product is the side
    of one image token); min_tokens: the checkpoint's min_pixels in tokens (kept as it
    is); default_tokens: the checkpoint's max_pixels in tokens, assumed when a server
    fixes the budget itself; video_pixels: what the video processor's pixel range
    bounds, "frame" (each frame: Qwen2-VL's video processor, which Qwen2.5-VL uses) or
    "clip" (frames x height x width of the whole clip: Qwen3-VL's).
    """

    patch: int = 14
    merge: int = 2
    min_tokens: int = 4
    default_tokens: int = 16384
    video_pixels: Literal["frame", "clip"] = "frame"
    rule = "smart_resize"
    client_side = True

    def __call__(self, size: tuple[int, int], budget: int | None) -> tuple[int, int]:
        """`resized_size` as the callable (size, budget) -> size."""
        return self.resized_size(size[0], size[1], budget)

    @property
    def factor(self) -> int:
        """The side of one image token in pixels (28 for Qwen2.5-VL, 32 for Qwen3-VL)."""
        return self.patch * self.merge

    def pixels(self, budget: int | None) -> tuple[int, int]:
        """Return (min_pixels, max_pixels) for a budget in image tokens (None: the checkpoint's default)."""
        area = self.factor**2
        return self.min_tokens * area, (budget or self.default_tokens) * area

    def resized_size(self, width: int, height: int, budget: int | None) -> tuple[int, int]:
        """Return the (W, H) smart_resize gives a `width` x `height` image at `budget` tokens.

        Raises ValueError for an aspect ratio over 200, as the processor does.
        """
        min_pixels, max_pixels = self.pixels(budget)
        return _smart_resize(width, height, self.factor, min_pixels, max_pixels)

    def frame_size(self, width: int, height: int, frames: int, video_processor: Any, budget: int | None) -> tuple[int, int]:
        """Return the (W, H) the family's video processor makes of a `width` x `height` frame
        of a clip of `frames` frames.

        smart_resize in the video processor's own pixel range (`size`: shortest_edge ..
        longest_edge; the family sends no video budget, so `budget` is not used), per
        frame or over the whole clip (`video_pixels`), with the processor's optional
        `cap_pixels_per_frame` bound. Raises ValueError where the processor would (an
        aspect ratio over 200, a clip shorter than the temporal patch) or when the video
        processor states no pixel range.
        """
        size = getattr(video_processor, "size", None)
        min_pixels, max_pixels = _edge(size, "shortest_edge"), _edge(size, "longest_edge")
        if not (min_pixels and max_pixels):
            raise ValueError(f"the video processor states no pixel range (size={size!r})")
        factor = int(getattr(video_processor, "patch_size", None) or self.patch) * int(getattr(video_processor, "merge_size", None) or self.merge)
        temporal = int(getattr(video_processor, "temporal_patch_size", None) or 2)
        capped = bool(getattr(video_processor, "cap_pixels_per_frame", None))
        tokens = int(getattr(video_processor, "max_video_tokens", 0) or 0)
        if self.video_pixels == "frame":
            if capped:
                share = int(tokens * factor * factor * 0.9) * temporal // max(frames, 1)
                max_pixels = max(min(max_pixels, share), int(min_pixels * 1.05))
            return _smart_resize(width, height, factor, min_pixels, max_pixels)
        if capped:
            per_frame = max(min(tokens * factor * factor, max_pixels // max(frames, 1)), int(min_pixels * 1.05))
            max_pixels = per_frame * frames
        return _smart_resize_clip(width, height, frames, factor, temporal, min_pixels, max_pixels)

    def image_tokens(self, width: int, height: int, budget: int | None) -> int:
        """Return the image tokens of a `width` x `height` image at `budget` (grid / merge^2)."""
        new_w, new_h = self.resized_size(width, height, budget)
        return (new_w // self.factor) * (new_h // self.factor)

    def processor_kwargs(self, budget: int | None) -> dict[str, Any]:
        """The image-processor keywords for `budget`: transformers' `size` pixel range."""
        min_pixels, max_pixels = self.pixels(budget)
        return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}

    def server_kwargs(self, budget: int | None) -> dict[str, Any]:
        """The `mm_processor_kwargs` of vLLM / SGLang: Qwen's documented min_pixels / max_pixels."""
        min_pixels, max_pixels = self.pixels(budget)
        return {"min_pixels": min_pixels, "max_pixels": max_pixels}

    def settings(self, budget: int | None) -> dict[str, Any]:
        """What to record in provenance about how images were resized."""
        min_pixels, max_pixels = self.pixels(budget)
        return {"rule": self.rule, "multiple_of": self.factor, "min_pixels": min_pixels, "max_pixels": max_pixels}

    def read_sizes(self, inputs: Any, processor: Any) -> list[tuple[int, int]] | None:
        """Return each image's resized (W, H) from `image_grid_thw` (t, h, w in patches) x the
        processor's patch size, or None when it is absent."""
        grid = inputs.get("image_grid_thw")
        if grid is None:
            return None
        patch = int(getattr(processor.image_processor, "patch_size", self.patch))
        return [(int(w) * patch, int(h) * patch) for _, h, w in grid.tolist()]


@dataclass(frozen=True)
class FixedResize:
    """Every image resized (not cropped, no letterbox) to one square side: no budget knob.

    side: the side of the family's usual checkpoint (PaliGemma 2 comes in 224, 448 and
    896; the loaded processor's own size is what `read_sizes` reports); tokens: image
    tokens at that side; sides: every side the family's checkpoints come in (messages).
    The size depends on the checkpoint, not on a request, so a client that talks to a
    server cannot know it (`client_side` is False); coordinates of these families are
    normalised bins and do not need it.
    """

    side: int
    tokens: int
    sides: tuple[int, ...] = ()
    rule = "fixed"
    client_side = False

    def __call__(self, size: tuple[int, int], budget: int | None) -> tuple[int, int]:
        """`resized_size` as the callable (size, budget) -> size."""
        return self.resized_size(size[0], size[1], budget)

    def resized_size(self, width: int, height: int, budget: int | None) -> tuple[int, int]:
        """Return the fixed (W, H) every image becomes in the usual checkpoint, whatever its size."""
        return self.side, self.side

    def image_tokens(self, width: int, height: int, budget: int | None) -> int:
        """Return the image tokens of one image in the usual checkpoint (fixed)."""
        return self.tokens

    def frame_size(self, width: int, height: int, frames: int, video_processor: Any, budget: int | None) -> tuple[int, int]:
        """Fixed-size families take no video (`ModelProfile.video` is False): raises ValueError."""
        raise ValueError("a fixed-size family takes no video")

    def processor_kwargs(self, budget: int | None) -> dict[str, Any]:
        """No budget keywords: the size is fixed by the checkpoint."""
        return {}

    def server_kwargs(self, budget: int | None) -> dict[str, Any]:
        """No budget keywords: the size is fixed by the checkpoint."""
        return {}

    def settings(self, budget: int | None) -> dict[str, Any]:
        """What to record in provenance about how images were resized."""
        return {"rule": self.rule, "sides": list(self.sides or (self.side,))}

    def read_sizes(self, inputs: Any, processor: Any) -> list[tuple[int, int]] | None:
        """Return the image processor's fixed (W, H) once per processed image, or None when
        the processor does not resize to a fixed size."""
        pixels = inputs.get("pixel_values")
        size = getattr(processor.image_processor, "size", None) or {}
        height, width = size.get("height"), size.get("width")
        if pixels is None or not height or not width:
            return None
        return [(int(width), int(height))] * int(pixels.shape[0])

    def no_budget_reason(self, family: str) -> str:
        """The message for a budget asked of a fixed-size family."""
        sides = " / ".join(str(side) for side in (self.sides or (self.side,)))
        return (
            f"model family {family!r} resizes every image to a fixed square ({sides} px, set by the checkpoint), "
            "so it has no image-token budget: leave the budget out"
        )


def _edge(size: Any, key: str) -> int | None:
    """One entry of a processor's `size` (a transformers `SizeDict` or a plain dict)."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else None


def _smart_resize(width: int, height: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's smart_resize of one image or frame: (W, H), sides multiples of `factor`, pixels
    within min_pixels..max_pixels. Raises ValueError for an aspect ratio over 200."""
    if max(width, height) / min(width, height) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(width, height) / min(width, height):g}")
    new_h, new_w = round(height / factor) * factor, round(width / factor) * factor
    if new_h * new_w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif new_h * new_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    return new_w, new_h


def _smart_resize_clip(
    width: int, height: int, frames: int, factor: int, temporal: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen3-VL's video smart_resize: the pixel range bounds frames (rounded to the temporal
    patch) x H x W of the whole clip; frames smaller than one token are scaled up first.
    Returns the frames' (W, H). Raises ValueError for fewer frames than the temporal patch
    or an aspect ratio over 200, as the processor does."""
    if frames < temporal:
        raise ValueError(f"a clip of {frames} frame(s) is shorter than the temporal patch ({temporal})")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(width, height) / min(width, height) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(width, height) / min(width, height):g}")
    new_h, new_w = round(height / factor) * factor, round(width / factor) * factor
    clip = round(frames / temporal) * temporal
    if clip * new_h * new_w > max_pixels:
        beta = math.sqrt(frames * height * width / max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif clip * new_h * new_w < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    return new_w, new_h


ResizeRule = Gemma4Resize | SmartResize | FixedResize

__all__ = ["FixedResize", "Gemma4Resize", "ResizeRule", "SmartResize"]
