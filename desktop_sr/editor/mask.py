"""The strength mask a person paints: brush strokes, starting masks (detail map, faces), Qt-free.

The mask is the semantic-strength multiplier of :class:`~desktop_sr.engine.strength_map.StrengthMaps` on a grid
over the photo (the photo's size, at most :data:`MAX_SIDE` on the long side: finer than PiSA-SR's latent grid for
photos up to 2048 px at x4, and a brush is no finer than that anyway). 1 leaves the global strength, "less
invention" paints towards 0, "more detail" towards :data:`~desktop_sr.engine.strength_map.MAX_GAIN`, the eraser
back to 1. A stroke covers its dabs with the brush's soft profile and takes the highest coverage per cell (painting
over the same place within one stroke does not build up), then moves the cells from where they were when the stroke
began towards the brush's value by that coverage. Each finished stroke is one undo step of the editor's history,
since the mask travels inside the render parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..engine.strength_map import MAX_GAIN, StrengthMaps, gaussian_feather

MAX_SIDE = 1024
MODES = ("less", "more", "erase")
MODE_LABELS = {"less": "Less invention", "more": "More detail", "erase": "Eraser"}


def mask_grid(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the mask grid for a photo of that size."""
    f = max(1.0, max(width, height) / MAX_SIDE)
    return max(1, round(width / f)), max(1, round(height / f))


@dataclass(frozen=True)
class Brush:
    """``size``: diameter in output pixels; ``feather``: share of the radius that fades out (0 hard, 1 all soft);
    ``strength``: how far towards 0 ("less") or MAX_GAIN ("more") a full dab goes (0..1)."""

    mode: str = "less"
    size: float = 120.0
    feather: float = 0.5
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"brush mode must be one of {MODES}, not {self.mode!r}")

    def target(self) -> float:
        """The multiplier a full dab moves the mask to."""
        if self.mode == "erase":
            return 1.0
        s = min(1.0, max(0.0, self.strength))
        return 1.0 - s if self.mode == "less" else 1.0 + s * (MAX_GAIN - 1.0)


class Stroke:
    """One brush stroke on a mask grid: ``add(x, y)`` with points in output pixels, ``values()`` the mask now."""

    def __init__(self, start: np.ndarray, brush: Brush, output_size: tuple[int, int]) -> None:
        self.start = np.asarray(start, np.float32)
        self.brush = brush
        gh, gw = self.start.shape
        ow, oh = output_size
        self.fx, self.fy = gw / ow, gh / oh  # grid cells per output pixel
        self.coverage = np.zeros_like(self.start)
        self.last: tuple[float, float] | None = None
        self.dirty: tuple[int, int, int, int] | None = None  # grid cells touched (x0, y0, x1, y1)

    def _dab(self, x: float, y: float) -> None:
        r_out = max(0.5, self.brush.size / 2)
        rx, ry = r_out * self.fx, r_out * self.fy
        cx, cy = x * self.fx, y * self.fy
        gh, gw = self.coverage.shape
        x0, x1 = max(0, math.floor(cx - rx)), min(gw, math.ceil(cx + rx) + 1)
        y0, y1 = max(0, math.floor(cy - ry)), min(gh, math.ceil(cy + ry) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / max(rx, 1e-6)
        ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / max(ry, 1e-6)
        d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)  # 1 at the brush's edge
        soft = min(1.0, max(0.0, self.brush.feather))
        inner = 1.0 - soft
        if soft <= 0:
            a = (d <= 1.0).astype(np.float32)
        else:
            t = np.clip((d - inner) / soft, 0.0, 1.0)
            a = (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)  # smooth fall-off from the core to the edge
        a *= min(1.0, max(0.0, self.brush.strength)) if self.brush.mode == "erase" else 1.0
        region = self.coverage[y0:y1, x0:x1]
        np.maximum(region, a, out=region)
        d0 = self.dirty
        self.dirty = (x0, y0, x1, y1) if d0 is None else (min(d0[0], x0), min(d0[1], y0), max(d0[2], x1),
                                                           max(d0[3], y1))  # fmt: skip

    def add(self, x: float, y: float) -> None:
        """Extend the stroke to (x, y): dabs every quarter of the brush size along the way, so a fast drag stays
        a continuous line."""
        if self.last is None:
            self._dab(x, y)
        else:
            lx, ly = self.last
            n = max(1, math.ceil(math.hypot(x - lx, y - ly) / max(1.0, self.brush.size / 4)))
            for i in range(1, n + 1):
                self._dab(lx + (x - lx) * i / n, ly + (y - ly) * i / n)
        self.last = (x, y)

    def values(self) -> np.ndarray:
        target = np.float32(self.brush.target())
        return self.start + self.coverage * (target - self.start)


def neutral(grid: tuple[int, int]) -> np.ndarray:
    w, h = grid
    return np.ones((h, w), np.float32)


def as_maps(sem: np.ndarray | None) -> StrengthMaps | None:
    """The render parameters' maps for a semantic mask; None when it is all 1 (nothing painted)."""
    if sem is None or not np.any(sem != 1.0):
        return None
    return StrengthMaps(sem=np.clip(sem, 0.0, MAX_GAIN).astype(np.float16))


def from_detail(detail: np.ndarray, grid: tuple[int, int], threshold: float, value: float) -> np.ndarray:
    """A starting mask from the detail map (H x W in [0, 1]): ``value`` where the semantic branch invents more than
    ``threshold``, 1 elsewhere, with a soft edge of about one grid cell."""
    from PIL import Image

    w, h = grid
    small = Image.fromarray(np.ascontiguousarray(detail, np.float32), mode="F").resize((w, h), Image.Resampling.BOX)
    hit = (np.asarray(small, np.float32) > threshold).astype(np.float64)
    soft = np.clip(gaussian_feather(hit, 1.0), 0.0, 1.0)
    return (1.0 + soft * (value - 1.0)).astype(np.float32)


def from_boxes(
    boxes: list[tuple[int, int, int, int]], photo_size: tuple[int, int], grid: tuple[int, int], value: float
) -> np.ndarray:
    """A mask with ``value`` over an ellipse a little larger than each box (photo pixels: a face and its hair line),
    fading to 1 over a quarter of the box size."""
    pw, ph = photo_size
    w, h = grid
    out = np.zeros((h, w), np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) * ph / h
    xs = (np.arange(w, dtype=np.float32) + 0.5) * pw / w
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = 0.65 * (x1 - x0), 0.8 * (y1 - y0)  # faces are taller than the detector's square
        d = np.sqrt(((ys[:, None] - cy) / ry) ** 2 + ((xs[None, :] - cx) / rx) ** 2)
        a = np.clip((1.25 - d) / 0.25, 0.0, 1.0)
        np.maximum(out, a, out=out)
    return (1.0 + out * (value - 1.0)).astype(np.float32)
