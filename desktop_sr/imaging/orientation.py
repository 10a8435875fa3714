"""EXIF orientation applied to numpy pixels, so every decoder (Pillow, pypng, tifffile) shares one code path."""

from __future__ import annotations

import numpy as np

ORIENTATION_TAG = 0x0112


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into upright pixels for EXIF orientation 1..8 (H x W or H x W x C arrays)."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = np.swapaxes(a, 0, 1)  # transpose: the stored top-left corner stays top-left
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = np.rot90(a, -1)[::-1]  # transverse: the stored top-left corner ends bottom-right
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)
