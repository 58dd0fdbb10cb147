"""Row surgery on a transformers `DynamicCache`, for row refilling (vistool.runtime.refill).

A running batch is a left-padded batch, as `generate` makes one: every row's tokens sit
at the right end of the cache, the attention mask zeroes the padding on the left, and
each row carries its own positions. Rows of different lengths can therefore share one
cache as long as the left padding is adjusted:

  - `pad_left` adds empty columns on the left (a row group joining a longer batch, or a
    batch joined by a longer group);
  - `trim_left` drops columns that every row masks (the padding a finished row leaves);
  - `concat_rows` stacks two caches of the same length (a group joins the batch);
  - `keep_rows` keeps some rows (finished rows leave the batch).

Both kinds of layer `DynamicCache` holds are handled: a full layer stores every column;
a sliding-window layer stores only its last `sliding_window - 1` columns and counts the
rest in `cumulative_length`, and stays that way here. Layers that store nothing (the
layers of a model that share another layer's keys and values) are left alone.
`refillable` says whether a cache holds only such layers.
"""

from __future__ import annotations

from typing import Any


def _layers(cache: Any) -> list[Any]:
    """Return the cache's layers."""
    return list(getattr(cache, "layers", ()))


def _storing(cache: Any) -> list[Any]:
    """Return the cache's layers that store keys and values."""
    return [layer for layer in _layers(cache) if layer.is_initialized]


def _with_zeros_left(tensor: Any, columns: int) -> Any:
    """Return `tensor` (... x length x dim) with `columns` zero columns added on the left."""
    import torch

    shape = list(tensor.shape)
    shape[-2] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=-2)


def refillable(cache: Any) -> bool:
    """True when every layer of `cache` is a plain or sliding-window dynamic layer (what this module edits)."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = _layers(cache)
    if not layers:
        return False
    for layer in layers:
        if type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer):
            return False
        if getattr(layer, "record_past", False):
            return False
    return True


def _stored(layer: Any) -> int:
    """Return how many columns a layer stores."""
    return int(layer.keys.shape[-2]) if layer.is_initialized and layer.keys.numel() else 0


def _window(layer: Any) -> int | None:
    """Return how many columns a sliding-window layer keeps (None for a full layer)."""
    return layer.sliding_window - 1 if getattr(layer, "is_sliding", False) else None


def length(cache: Any) -> int:
    """Return the cache's length in columns (the padded sequence length it covers)."""
    storing = _storing(cache)
    return int(storing[0].get_seq_length()) if storing else 0


def pad_left(cache: Any, columns: int) -> None:
    """Add `columns` empty columns on the left of every row (the mask must zero them)."""
    if columns <= 0:
        return
    for layer in _storing(cache):
        window = _window(layer)
        added = columns if window is None else max(0, min(columns, window - _stored(layer)))
        if window is not None:
            layer.cumulative_length += columns
        if added:
            layer.keys = _with_zeros_left(layer.keys, added)
            layer.values = _with_zeros_left(layer.values, added)


def trim_left(cache: Any, columns: int) -> None:
    """Drop the `columns` leftmost columns of every row (columns every row masks)."""
    if columns <= 0:
        return
    for layer in _storing(cache):
        window = _window(layer)
        if window is None:
            layer.keys = layer.keys[..., columns:, :]
            layer.values = layer.values[..., columns:, :]
            continue
        layer.cumulative_length -= columns
        drop = _stored(layer) - min(_stored(layer), layer.cumulative_length)
        if drop:
            layer.keys = layer.keys[..., drop:, :]
            layer.values = layer.values[..., drop:, :]


def concat_rows(cache: Any, other: Any) -> None:
    """Append the rows of `other` (a cache of the same model and the same length) to `cache`."""
    import torch

    for layer, extra in zip(_layers(cache), _layers(other), strict=True):
        if not layer.is_initialized and not extra.is_initialized:
            continue
        if layer.is_initialized != extra.is_initialized or _stored(layer) != _stored(extra):
            raise ValueError("the caches to stack differ in shape; pad them to one length first")
        layer.keys = torch.cat([layer.keys, extra.keys], dim=0)
        layer.values = torch.cat([layer.values, extra.values], dim=0)


def keep_rows(cache: Any, rows: Any) -> None:
    """Keep only `rows` (a long tensor of row indices, in the new order) of every layer."""
    for layer in _storing(cache):
        if layer.keys.numel():
            layer.keys = layer.keys.index_select(0, rows)
            layer.values = layer.values.index_select(0, rows)


__all__ = ["concat_rows", "keep_rows", "length", "pad_left", "refillable", "trim_left"]
