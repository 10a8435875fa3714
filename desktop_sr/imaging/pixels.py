"""Pixel helpers shared by reading, writing and callers: quantising, alpha resizing, flattening, input checks."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding (NaN becomes 0, out-of-range values are clipped)."""
    return np.round(np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(a: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint16 with rounding (NaN becomes 0, out-of-range values are clipped)."""
    return np.round(np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 65535.0).astype(np.uint16)


def as_float(a: np.ndarray) -> np.ndarray:
    """Any pixel array as float32 in [0, 1]: integer arrays are scaled by their type's range, floats are kept.

    Callers hand over model output (float) but also plain uint8/uint16 arrays; scaling them here means an
    accidental uint8 array is saved as the picture it is, not as an all-white frame.
    """
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    return a.astype(np.float32, copy=False)


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an alpha plane (H x W in [0, 1]) to ``size`` = (width, height) with bicubic filtering, clipped.

    Alpha is resized on its own (not through the model, which only sees RGB); bicubic keeps soft edges soft
    and the clip removes the small overshoot bicubic makes beside hard edges.
    """
    a = np.ascontiguousarray(as_float(alpha))
    if a.ndim != 2:
        raise ValueError(f"alpha must be H x W, got {a.shape}")
    if (a.shape[1], a.shape[0]) == tuple(size):
        return a.copy()
    img = Image.fromarray(a, mode="F")
    return np.clip(np.asarray(img.resize(tuple(size), Image.Resampling.BICUBIC), dtype=np.float32), 0.0, 1.0)


def flatten(rgb: np.ndarray, alpha: np.ndarray, background: float = 1.0) -> np.ndarray:
    """Composite straight-alpha RGB over a plain background (white by default) for formats without alpha.

    Dropping alpha instead would reveal whatever colour sits under transparent pixels, often black or noise.
    """
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return (rgb * a + background * (1.0 - a)).astype(np.float32)


def resample(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float32 H x W x C (or H x W) pixels to ``size`` (width, height) with Lanczos, per channel, clipped.

    Pillow's Lanczos widens its kernel by the reduction factor, so a downsample is antialiased, and in mode "F" it
    works on the float values themselves: no 8- or 16-bit rounding happens before the file is written.
    """
    arr = np.asarray(rgb, dtype=np.float32)
    if (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr
    planes = [arr] if arr.ndim == 2 else [arr[..., c] for c in range(arr.shape[2])]
    out = [
        np.asarray(Image.fromarray(np.ascontiguousarray(p), mode="F").resize(tuple(size), Image.Resampling.LANCZOS))
        for p in planes
    ]
    res = out[0] if arr.ndim == 2 else np.stack(out, axis=-1)
    return np.clip(res, 0.0, 1.0, out=res).astype(np.float32, copy=False)
