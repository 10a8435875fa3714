"""A byte-bounded LRU cache for latents, noise predictions and decoded images.

Keys are tuples that include everything the value depends on (photo hash, model id, scale, realism level,
prompt, tiling), so a different photo, model, t or tiling can never be served stale data.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np
import torch

Value = torch.Tensor | np.ndarray


def photo_hash(rgb: np.ndarray) -> str:
    """Content hash of a photo array: the part of every cache key that says which photo a value belongs to."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def nbytes(value: Value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return int(value.nbytes)


class LRUCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, Value] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Value | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def put(self, key: Hashable, value: Value) -> None:
        size = nbytes(value)
        if key in self._items:
            self.bytes -= nbytes(self._items.pop(key))
        if size > self.max_bytes:
            return  # larger than the whole budget: do not evict everything for it
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= nbytes(old)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)
