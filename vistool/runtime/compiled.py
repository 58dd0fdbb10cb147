"""What `compile=True` needs: reusable static KV caches and the `CompileConfig`.

Caches are reused across calls (reset, not reallocated), so the compiled decode step
sees the same shapes and tensor addresses again: CUDA graphs are recorded once per shape
rather than once per `generate` call.
"""

from __future__ import annotations

from typing import Any

from vistool.runtime import speed


class StaticCaches:
    """Static KV caches of one model, keyed by (batch, length rounded up to 256); a few at a time."""

    def __init__(self, model: Any, keep: int = 4) -> None:
        self.model = model
        self.keep = keep
        self._caches: dict[tuple[int, int], Any] = {}

    def clear(self) -> None:
        """Drop every cache (after an out-of-memory error: they were sized for the failed batch)."""
        self._caches.clear()

    def get(self, batch: int, needed: int) -> Any:
        """Return an empty static KV cache for `batch` rows and at least `needed` positions.

        Sliding-window layers get a plain static layer that keeps the whole history (the
        attention mask applies the window, so tokens are unchanged): transformers'
        rolling sliding layer keeps its fill level in a Python int that `torch.compile`
        guards on, which recompiles the decode step as the sequence grows (3 compilations
        instead of 1 on the tiny model).
        """
        from transformers import StaticCache
        from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer

        key = (batch, speed.round_up(needed, 256))
        cache = self._caches.get(key)
        if cache is None:
            if len(self._caches) >= self.keep:  # a few shapes in use at a time; do not hoard memory
                self._caches.clear()
            cache = StaticCache(config=self.model.config, max_cache_len=key[1])
            cache.layers = [
                StaticLayer(max_cache_len=key[1]) if isinstance(layer, StaticSlidingWindowLayer) else layer
                for layer in cache.layers
            ]
            self._caches[key] = cache
        else:
            import torch

            with torch.inference_mode():  # its tensors were made during an earlier (inference-mode) generate
                cache.reset()
        return cache


class LazyCompileConfig:
    """The `CompileConfig` used with `compile=True` (CUDA graphs on a GPU), built on first use."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._config: Any = None

    def get(self) -> Any:
        """Return the config, building it the first time."""
        if self._config is None:
            from transformers import CompileConfig

            cuda = self.device.split(":")[0] == "cuda"
            config = CompileConfig(fullgraph=False, dynamic=None, mode="reduce-overhead" if cuda else "default")
            # transformers compiles only on accelerators by default; the caller asked for it, so honour it anywhere.
            config._compile_all_devices = True
            self._config = config
        return self._config
