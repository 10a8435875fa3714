"""The sample grid: one row per validation sample, columns LQ | pixel branch | full model | HR.

Looking at the grid is how a person sees that stage 1 removes degradation and stage 2 adds plausible detail,
long before any metric says so; the columns are the app's two branches, so it also shows what the sliders will do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

COLUMNS = ("LQ", "pixel", "full", "HR")


def grid_image(columns: list[torch.Tensor], gap: int = 4) -> Image.Image:
    """``columns``: equal-shape (B, 3, H, W) tensors in [0, 1]; returns an RGB image B rows x len(columns)."""
    b, _, h, w = columns[0].shape
    n = len(columns)
    canvas = np.full((b * h + (b - 1) * gap, n * w + (n - 1) * gap, 3), 255, dtype=np.uint8)
    for c, col in enumerate(columns):
        arr = (col.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
        for r in range(b):
            y, x = r * (h + gap), c * (w + gap)
            canvas[y : y + h, x : x + w] = arr[r]
    return Image.fromarray(canvas, "RGB")


def save_grid(path: Path, lq: torch.Tensor, pix: torch.Tensor, full: torch.Tensor, hr: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    grid_image([lq, pix, full, hr]).save(tmp)
    tmp.replace(path)
    return path
