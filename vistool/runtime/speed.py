"""Speed helpers for the local transformers backend.

Everything here keeps the tokens a greedy run produces unchanged; it only changes how
fast they come:

- `JsonCloseStop`: a stopping criterion that ends a row once its top-level JSON array or
  object closes (or, for list answers, its top-level array). Its state lives on the device (a token x state transition table), so
  it adds no host-device synchronisation to the decode loop.
- `PhaseTimer`: splits a `generate` call into prefill and decode time with CUDA events
  (no synchronisation inside the loop) or the wall clock on CPU; a no-op stopping
  criterion, which (unlike a logits processor) adds no per-step signature inspection.
- `default_batch_size` / `default_prefetch`: the micro-batch size and the number of
  micro-batches preprocessed ahead when the caller gives none.
- `is_out_of_memory` / `release_memory`: recognise and recover from an OOM, so the
  backend can halve the micro-batch and retry; `is_compile_error` recognises a failed
  `torch.compile`, so the backend can carry on without it.
- `prompt_length_estimate`: a cheap length key for length-bucketed batching.
- `video_decode_size`: the small size to decode video frames at that the processor
  turns into the same soft-token grid as full frames.
- `prefetched`: run a preparation function a few items ahead in worker threads.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from vistool.errors import VistoolError

T = TypeVar("T")
R = TypeVar("R")

# ------------------------------------------------------------------ batch sizes
# Default micro-batch per image-token budget on a GPU. Decoding a small model is bound
# by per-step overhead (kernel launches, Python), nearly flat in the batch size until
# the GPU is compute bound, so larger batches amortise it: the issue-9 anchor on one
# H200 (E2B shape, 64 new tokens) went from 0.27 img/s at batch 1 to 6.9 img/s at batch
# 64. The sizes keep roughly 40k prompt tokens per micro-batch (budget + ~40 text
# tokens per image); the out-of-memory back-off halves them where a card is smaller.
GPU_BATCH_BY_BUDGET = {70: 256, 140: 192, 280: 128, 560: 64, 1120: 32}
# On CPU (and MPS) the same holds at small budgets. Tiny model, 1 thread, 32 new tokens
# (eval/bench_speed.py): budget 70: batch 8 -> 32 took 16.5-17.5 to 27-28 img/s;
# budget 140: 8 -> 16 -> 32 gave 13-15 -> 16.5 -> 17.5 img/s. From budget 280 on, the
# vision tower dominates (its attention is quadratic in patches) and larger batches only
# add memory: 280: 5.0-5.6 img/s at batch 8, 16 or 32; 1120: 0.55-0.59 img/s at batch 1
# and 4, 0.47 at 8 with 5 GB of RSS (even the tiny model's tower needs ~0.6 GB per image).
CPU_BATCH_BY_BUDGET = {70: 32, 140: 16, 280: 8, 560: 8, 1120: 4}
# With row refilling (vistool.runtime.transformers_refill) a caller sends this many batches
# per call, so that a finished row has a request waiting to take its place.
REFILL_CALLS = 4


def default_batch_size(budget: int | None, device: str) -> int:
    """Return the default micro-batch size for an image-token budget on a device.

    Takes the budget (None: no image budget, e.g. text-only requests) and the device
    string ("cuda", "cuda:1", "mps", "cpu"). Returns a positive batch size.
    """
    table = GPU_BATCH_BY_BUDGET if device.split(":")[0] == "cuda" else CPU_BATCH_BY_BUDGET
    if budget is None:
        return table[280]
    # Budgets between the listed ones take the size of the next larger listed budget.
    for listed in sorted(table):
        if budget <= listed:
            return table[listed]
    return table[max(table)]


def default_prefetch(device: str) -> int:
    """Return how many micro-batches to preprocess ahead by default on `device`.

    On a GPU (or Apple MPS) the generating thread mostly waits for the device, so one
    worker thread preprocessing the next micro-batch hides the CPU work. On CPU the
    model already uses the cores: on a 2-core machine the overlap measured between -6%
    and +12% (noise; the two threads compete for cores and memory bandwidth), so it is off.
    """
    return 1 if device.split(":")[0] in ("cuda", "mps") else 0


# ------------------------------------------------------------------ out of memory
_OOM_MESSAGES = ("out of memory", "can't allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """True when `error` is an out-of-memory error (CUDA, MPS or CPU allocator).

    Takes any exception. Returns True for `torch.cuda.OutOfMemoryError` and for a
    RuntimeError whose message says "out of memory" (or the CPU allocator's "can't
    allocate memory").
    """
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _OOM_MESSAGES)


def is_compile_error(error: BaseException) -> bool:
    """True when `error` comes from `torch.compile` (dynamo or its backend), not from the model's data.

    Takes any exception. Such an error repeats on every call, so the backend turns
    compilation off instead of retrying request by request.
    """
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:
        return False
    return isinstance(error, TorchDynamoException)


def release_memory(device: str) -> None:
    """Free what an aborted batch left behind (Python garbage, the CUDA cache). Takes the device string."""
    gc.collect()
    if device.split(":")[0] == "cuda":
        import torch

        torch.cuda.empty_cache()


# ------------------------------------------------------------------ bucketing
def prompt_length_estimate(request: Any, image_processor: Any, budget: int | None) -> tuple[int, int]:
    """Return a sort key that orders requests by prompt length, without running the processor.

    Takes a `GenerationRequest`, the processor's image processor and the resolved budget.
    Returns (image tokens, text characters). Image tokens follow Gemma 4's resize rule
    when the image processor exposes it (`max_soft_tokens`, `patch_size`,
    `pooling_kernel_size`); otherwise the pixel count stands in for them.
    """
    text_chars = len(request.prompt) + len(request.system or "")
    tokens = 0
    for image in request.images:
        tokens += _image_tokens(image.size, image_processor, budget)
    if request.video is not None:
        tokens += sum(_image_tokens(frame.size, image_processor, budget) for frame in request.video.frames)
    return tokens, text_chars


def _image_tokens(size: tuple[int, int], image_processor: Any, budget: int | None) -> int:
    """Soft tokens of one (W, H) image under Gemma 4's rule, or W*H when the rule is unknown."""
    width, height = size
    patch = getattr(image_processor, "patch_size", None)
    pool = getattr(image_processor, "pooling_kernel_size", None)
    budget = budget or getattr(image_processor, "max_soft_tokens", None)
    if not (patch and pool and budget):
        return width * height
    try:
        from transformers.models.gemma4.image_processing_gemma4 import get_aspect_ratio_preserving_size
    except ImportError:
        return width * height
    new_h, new_w = get_aspect_ratio_preserving_size(
        height=height, width=width, patch_size=patch, max_patches=budget * pool * pool, pooling_kernel_size=pool
    )
    return (new_h // (patch * pool)) * (new_w // (patch * pool))


def video_decode_size(size: tuple[int, int], frame_size: Callable[[int, int], tuple[int, int]]) -> tuple[int, int] | None:
    """Return the (W, H) to decode a (W, H) video's frames at, or None to decode them at full size.

    Takes the source frame size and the family's frame rule: `frame_size(W, H)` gives
    the (W, H) the video processor resizes such a frame to (the profile's
    `ResizeRule.frame_size`, bound to the clip's frame count and the loaded video
    processor). Frames end up at T = frame_size(source) however large they are decoded;
    the answer is the smallest size D, of the source's aspect ratio (T itself first), with
    frame_size(D) == T: the processor then makes of a D-sized frame exactly the size,
    hence the token grid, it makes of a full one (at Gemma 4's 70-token frame budget,
    from 1/6 of the pixels of a 720p frame). None when the rule raises (ValueError,
    VistoolError), T is not smaller than the source in both sides, or no such D is found.
    """
    width, height = size
    try:
        target = tuple(frame_size(width, height))
    except (ValueError, VistoolError):
        return None
    if target[0] >= width or target[1] >= height:  # the processor does not shrink this frame
        return None
    candidates = [target]
    scale = max(target[0] / width, target[1] / height)
    candidates += [(round(width * scale * (1 + step / 100)), round(height * scale * (1 + step / 100))) for step in range(41)]
    for candidate in candidates:
        if candidate[0] < width and candidate[1] < height and min(candidate) > 0:
            try:
                if tuple(frame_size(*candidate)) == target:
                    return (int(candidate[0]), int(candidate[1]))
            except (ValueError, VistoolError):
                continue
    return None


# ------------------------------------------------------------------ prefetch
def prefetched(
    items: Sequence[T], prepare: Callable[[T], R], workers: int = 1
) -> Iterator[tuple[T, R | BaseException]]:
    """Yield (item, prepare(item)) in order, preparing upcoming items while the caller works.

    Takes the items, the preparation function and the number of worker threads (0: no
    threads, prepare each item when it is due). With `workers` = k, items i+1..i+k are
    being prepared while the caller consumes item i, so CPU preprocessing overlaps with
    generation (torch and the tokenizer release the GIL while they work). An exception
    raised by `prepare` is yielded in place of the result (the caller decides).
    """
    if workers <= 0 or len(items) < 2:
        for item in items:
            yield item, _call(prepare, item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vistool-prefetch") as pool:
        pending: deque[Future] = deque(pool.submit(_call, prepare, item) for item in items[:workers])
        upcoming = workers
        for item in items:
            result = pending.popleft().result()
            if upcoming < len(items):
                pending.append(pool.submit(_call, prepare, items[upcoming]))
                upcoming += 1
            yield item, result


def _call(prepare: Callable[[T], R], item: T) -> R | BaseException:
    """Run `prepare(item)`, returning the exception instead of raising it."""
    try:
        return prepare(item)
    except Exception as error:  # handed to the caller, which isolates failures per request
        return error


# ------------------------------------------------------------------ timing
class PhaseTimer:
    """A stopping criterion that never stops anything: it marks the end of prefill, to split generate time in two.

    Call `start()` before `generate`, pass the timer in `stopping_criteria`, call
    `stop()` after. `seconds()` returns (prefill, decode). On CUDA the marks are CUDA
    events recorded on the stream (read once generation is over, so nothing waits inside
    the decode loop); elsewhere they are wall-clock times.

    It is a stopping criterion rather than a logits processor because transformers'
    `LogitsProcessorList` runs `inspect.signature` on every processor at every decode
    step: measured at 0.12 ms a step inside `generate` (cold caches after the forward),
    1.9 ms per 16-token call, +2-3% of a batch-1 call on the tiny model on CPU.
    `StoppingCriteriaList` just calls its criteria; returning False costs one `|`.
    """

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device.split(":")[0] == "cuda" and torch.cuda.is_available()
        self.marks: list[Any] = []

    def _mark(self) -> Any:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        """Mark the start of generation."""
        self.marks = [self._mark()]

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        if len(self.marks) == 1:  # first call: the prefill forward has produced the first token
            self.marks.append(self._mark())
        return False  # never done; `StoppingCriteriaList` ORs it into its bool tensor

    def stop(self) -> None:
        """Mark the end of generation (after `generate` returned)."""
        self.marks.append(self._mark())

    def seconds(self) -> tuple[float, float]:
        """Return (prefill seconds, decode seconds); (total, 0.0) if decoding never started."""
        if len(self.marks) < 2:
            return 0.0, 0.0
        start, *middle, end = self.marks
        first = middle[0] if middle else end
        if self.cuda:
            end.synchronize()
            return start.elapsed_time(first) / 1000.0, first.elapsed_time(end) / 1000.0
        return first - start, end - first


# ------------------------------------------------------------------ JSON stop
MAX_JSON_DEPTH = 16
_DEPTHS = MAX_JSON_DEPTH + 1
# States: which values may end the row (any top-level value, or arrays only: a list task
# whose model writes bare objects first must not stop at the first object) x the kind of
# the value now open (object, array) x string mode (0 outside a string, 1 inside, 2 just
# after a backslash inside) x nesting depth (0 = no value open), plus one absorbing DONE.
_MODES = 3 * _DEPTHS
_STATES = 4 * _MODES + 1
DONE = _STATES - 1
START = 0  # a row that stops when its first top-level array or object closes
START_ARRAYS = 2 * _MODES  # a row that stops when its first top-level array closes
_JSON_CHARS = frozenset('[]{}"\\')


def advance_json_state(state: int, text: str) -> int:
    """Advance the JSON-close automaton over `text` and return the new state.

    Takes a state (`START`, `START_ARRAYS` or one returned before) and decoded text.
    Outside a value, only `[` and `{` matter (prose, quotes and fences are skipped);
    inside it, strings and escapes are tracked so that brackets in labels do not count.
    The state becomes `DONE` when a top-level value closes: any value from `START`, an
    array from `START_ARRAYS` (a top-level object closing there is read through).
    Nesting deeper than `MAX_JSON_DEPTH` saturates (such a value may be reported closed
    early).
    """
    if state == DONE:
        return DONE
    kind, rest = divmod(state, _MODES)
    arrays_only, array = divmod(kind, 2)
    mode, depth = divmod(rest, _DEPTHS)
    for char in text:
        if mode == 2:
            mode = 1
        elif mode == 1:
            if char == "\\":
                mode = 2
            elif char == '"':
                mode = 0
        elif depth == 0:
            if char in "[{":
                depth, array = 1, int(char == "[")
        elif char == '"':
            mode = 1
        elif char in "[{":
            depth = min(depth + 1, MAX_JSON_DEPTH)
        elif char in "]}":
            depth -= 1
            if depth == 0:
                if array or not arrays_only:
                    return DONE
                array = 0
    return ((arrays_only * 2 + array) * 3 + mode) * _DEPTHS + depth


def json_transition_table(token_texts: Sequence[str], special_ids: Iterable[int] = ()):
    """Build the token x state transition table of the JSON-close automaton.

    Takes the decoded text of every token id (index = id; ids beyond the list, e.g. a
    model vocabulary larger than the tokenizer's, must be added as "") and the ids of
    special tokens (they are not answer text, so they leave the state unchanged).
    Returns a uint8 numpy array of shape (len(token_texts), number of states).
    """
    import numpy as np

    states = np.arange(_STATES, dtype=np.uint8)
    table = np.tile(states, (len(token_texts), 1))
    # After a backslash inside a string, any character ends the escape (mode 2 -> 1).
    escaped = np.concatenate([np.arange(kind * _MODES + 2 * _DEPTHS, kind * _MODES + 3 * _DEPTHS) for kind in range(4)])
    special = set(special_ids)
    for token_id, text in enumerate(token_texts):
        if not text or token_id in special:
            continue
        if _JSON_CHARS.isdisjoint(text):
            table[token_id, escaped] = states[escaped - _DEPTHS]
            continue
        table[token_id] = [advance_json_state(state, text) for state in range(_STATES)]
    return table


class JsonCloseStop:
    """A stopping criterion: a row is done once its top-level JSON value closes.

    Takes the transition table (a uint8 tensor on the model's device, from
    `json_transition_table`), a bool tensor saying which rows may stop this way, the
    prompt length, and optionally each row's start state (a long tensor of `START` /
    `START_ARRAYS`; default `START`). Per step it does one table lookup on the device
    and returns the rows that are done; it never reads values back to the host.
    `stop_steps` holds, per row, how many tokens had been generated when its JSON
    closed (-1: never).
    """

    def __init__(self, table, enabled, prompt_length: int, start=None) -> None:
        import torch

        self.table = table
        self.enabled = enabled
        self.prompt_length = prompt_length
        self.state = torch.zeros(enabled.shape[0], dtype=torch.long, device=enabled.device) if start is None else start.long()
        self.stop_steps = torch.full_like(self.state, -1)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.state = self.table[input_ids[:, -1], self.state].long()
        closed = (self.state == DONE) & self.enabled
        step = input_ids.shape[1] - self.prompt_length
        self.stop_steps = torch.where(closed & (self.stop_steps < 0), step, self.stop_steps)
        return closed


def round_up(value: int, multiple: int) -> int:
    """Return the smallest multiple of `multiple` that is >= `value`."""
    return int(math.ceil(value / multiple) * multiple)
