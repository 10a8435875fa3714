"""Local pixel and semantic strengths: maps that scale the two strengths place by place.

PiSA-SR's composition ``eps = pix * eps_pix + sem * (eps_full - eps_pix)`` is linear and works per latent pixel,
so two numbers can become two maps at no network cost: the session composes ``z_H`` from the cached ``eps_pix`` and
``eps_full`` with a strength per latent pixel and decodes. A person paints "less invention" over text and faces, or
"more detail" over foliage, and only the decode runs again.

A :class:`StrengthMaps` holds *multipliers* of the global strengths (``RenderParams.pix`` / ``.sem``), covering the
whole photo at any resolution: 1 keeps the global strength, 0 removes the branch's contribution there, up to
:data:`MAX_GAIN` adds to it. So the sliders keep working over a painted photo, and a command-line map reads as
"white = the strength given by --sem, black = none". The engine resamples a map to its working grid (the latent
grid, one cell per 8 output pixels, for PiSA-SR and for the bundled model alike) and feathers it there with a small
Gaussian, so a hard-edged mask never makes a visible step. Both steps are convex combinations, and the result is
clipped to the map's own range: a map of constants stays exactly that constant, which makes it give byte-identical
results to the scalar strengths.

numpy and Pillow only (no torch): the editor's instant preview uses the same resampling on the GUI thread.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .api import Region, RenderParams

#: Largest multiplier a map may hold ("more detail" doubles the global strength at most).
MAX_GAIN = 2.0
#: Output pixels per cell of the grid the maps are applied on (PiSA-SR's latent pixel).
GRID = 8
#: Gaussian feather applied on the grid, in cells (one latent pixel: 8 output pixels).
FEATHER_CELLS = 1.0
#: Resampled grids kept per process (a grid is small: a 2048 x 2048 result has a 256 x 256 one).
_GRID_CACHE_ITEMS = 16


def _frozen(a: np.ndarray | None, name: str) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"the {name} strength map must be a 2-D array, not shape {arr.shape}")
    if arr.dtype not in (np.float16, np.float32):
        arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"the {name} strength map holds values that are not numbers")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > MAX_GAIN:
        raise ValueError(f"the {name} strength map goes from {lo:g} to {hi:g}; it must stay within 0..{MAX_GAIN:g}")
    arr = np.array(arr, copy=True, order="C")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class StrengthMaps:
    """Multipliers of the pixel and semantic strengths over the photo (H x W, float16/32, 0..:data:`MAX_GAIN`).

    ``None`` for a map means "1 everywhere". Immutable (the arrays are read-only copies) and compared by a content
    digest, so a :class:`~desktop_sr.engine.api.RenderParams` holding one still keys caches and queues, and an
    undo step that restores a mask restores an equal value.
    """

    pix: np.ndarray | None = None
    sem: np.ndarray | None = None
    digest: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pix", _frozen(self.pix, "pixel"))
        object.__setattr__(self, "sem", _frozen(self.sem, "semantic"))
        h = hashlib.blake2b(digest_size=16)
        for name, arr in (("pix", self.pix), ("sem", self.sem)):
            h.update(name.encode())
            if arr is not None:
                h.update(f"{arr.shape}{arr.dtype}".encode())
                h.update(arr.tobytes())
        object.__setattr__(self, "digest", h.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StrengthMaps) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        def shape(a: np.ndarray | None) -> str:
            return "None" if a is None else f"{a.shape[1]}x{a.shape[0]}"

        return f"StrengthMaps(pix={shape(self.pix)}, sem={shape(self.sem)}, {self.digest[:8]})"

    @property
    def empty(self) -> bool:
        return self.pix is None and self.sem is None

    def map(self, which: str) -> np.ndarray | None:
        if which not in ("pix", "sem"):
            raise ValueError(f"which must be 'pix' or 'sem', not {which!r}")
        return self.pix if which == "pix" else self.sem

    def on_grid(self, which: str, width: int, height: int) -> np.ndarray | None:
        """The ``which`` map resampled to a ``width`` x ``height`` grid and feathered: float64, or None (all 1)."""
        src = self.map(which)
        if src is None:
            return None
        key = (self.digest, which, width, height)
        with _grid_lock:
            found = _grid_cache.get(key)
            if found is not None:
                _grid_cache.move_to_end(key)
                return found
        grid = resample_to_grid(src, width, height)
        grid.flags.writeable = False
        with _grid_lock:
            _grid_cache[key] = grid
            while len(_grid_cache) > _GRID_CACHE_ITEMS:
                _grid_cache.popitem(last=False)
        return grid


_grid_cache: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
_grid_lock = threading.Lock()


def gaussian_feather(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float64 array with replicated borders (a convex combination per pixel),
    written as the value plus weighted differences so that a flat stretch keeps its value to the last bit."""
    r = math.ceil(3 * sigma)
    if r == 0 or sigma <= 0:
        return grid
    k = np.exp(-(np.arange(-r, r + 1, dtype=np.float64) ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    out = grid
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = out.shape[axis]
        acc = out.copy()  # x + sum w_i (x_i - x): a flat stretch stays exactly flat
        for i, w in enumerate(k):
            sl = [slice(None), slice(None)]
            sl[axis] = slice(i, i + n)
            acc += w * (padded[tuple(sl)] - out)
        out = acc
    return out


def resample_to_grid(src: np.ndarray, width: int, height: int, feather: float = FEATHER_CELLS) -> np.ndarray:
    """A map resized to ``width`` x ``height`` (Pillow bilinear, which averages when it shrinks) and feathered.

    Clipped to the source's range, so rounding never moves a flat region off its value."""
    lo, hi = float(src.min()), float(src.max())
    if src.shape != (height, width):
        img = Image.fromarray(np.ascontiguousarray(src, dtype=np.float32), mode="F")
        grid = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)
    else:
        grid = src.astype(np.float64)
    grid = gaussian_feather(grid, feather)
    return np.clip(grid, lo, hi)


def grid_size(width: int, height: int, cell: int = GRID) -> tuple[int, int]:
    """(width, height) of the grid the maps are applied on for a ``width`` x ``height`` result."""
    return math.ceil(width / cell), math.ceil(height / cell)


def local_strengths(params: RenderParams, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, S): the pixel and semantic strength per cell of a ``width`` x ``height`` grid, float64 (gh x gw)."""
    maps = params.maps
    out = []
    for which, value in (("pix", params.pix), ("sem", params.sem)):
        grid = maps.on_grid(which, width, height) if maps is not None else None
        out.append(np.full((height, width), float(value)) if grid is None else float(value) * grid)
    return out[0], out[1]


def needed_branches(p: np.ndarray, s: np.ndarray) -> tuple[str, ...]:
    """The UNet branches local strengths depend on: eps = S * eps_full + (P - S) * eps_pix (as the scalar rule)."""
    out = []
    if np.any(p != s):
        out.append("pix")
    if np.any(s != 0):
        out.append("full")
    return tuple(out)


def upsample(grid: np.ndarray, out_w: int, out_h: int, region: Region | None = None, step: int = 1) -> np.ndarray:
    """A grid stretched bilinearly over an ``out_w`` x ``out_h`` image (pixel centres on pixel centres, edges
    clamped), for the pixels of ``region``, every ``step``-th: float32 (Pillow's resampling, on the region only, so
    a window of a huge result never costs a full-size map). Clipped to the grid's range: flat stays exact."""
    x0, y0, x1, y1 = region if region is not None else (0, 0, out_w, out_h)
    gh, gw = grid.shape
    fx, fy = gw / out_w, gh / out_h
    nw, nh = len(range(x0, x1, step)), len(range(y0, y1, step))
    img = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32), mode="F")
    box = (x0 * fx, y0 * fy, (x0 + nw * step) * fx, (y0 + nh * step) * fy)
    out = np.asarray(img.resize((nw, nh), Image.Resampling.BILINEAR, box=box), dtype=np.float32).copy()
    return np.clip(out, np.float32(grid.min()), np.float32(grid.max()), out=out)


def output_strengths(
    params: RenderParams, out_w: int, out_h: int, region: Region | None = None, step: int = 1
) -> tuple[np.ndarray | np.float32, np.ndarray | np.float32]:
    """(P, S) per output pixel of ``region`` (every ``step``-th): float32 arrays, or a float32 scalar for a
    strength without a map, for models and previews that compose in image space (the bundled upscaler's frequency
    bands, the corner blend). The maps are resampled and feathered on the same 8-pixel grid as PiSA-SR's latents,
    then stretched bilinearly."""
    gw, gh = grid_size(out_w, out_h)
    maps = params.maps
    out: list[np.ndarray | np.float32] = []
    for which, value in (("pix", params.pix), ("sem", params.sem)):
        grid = maps.on_grid(which, gw, gh) if maps is not None else None
        out.append(np.float32(value) if grid is None else upsample(float(value) * grid, out_w, out_h, region, step))
    return out[0], out[1]


def constant_maps(width: int, height: int, pix: float | None = 1.0, sem: float | None = 1.0) -> StrengthMaps:
    """Maps of one value each (None: no map), e.g. to prove they equal the scalar strengths."""

    def full(v: float | None) -> np.ndarray | None:
        return None if v is None else np.full((height, width), v, dtype=np.float32)

    return StrengthMaps(pix=full(pix), sem=full(sem))


def local_adain(
    out: np.ndarray,
    ref_stats: tuple[np.ndarray, np.ndarray],
    corner_moments: np.ndarray,
    params: RenderParams,
    *,
    size: tuple[int, int] | None = None,
    region: Region | None = None,
    eps: float = 1e-5,
) -> np.ndarray:
    """The AdaIN colour fix of a result with local strengths, place by place as the scalar render there gets it.

    A scalar render's fix maps its own per-channel mean and std onto the input's; a render with varying strengths
    has no single "own" statistics, so each pixel uses those of the scalar render with its strengths, which follow
    exactly from the corner images' means and 3 x 3 covariances (``corner_moments``: C x 4 x 3, means then
    covariance, as the session caches them): mean = a . m, var = a' C a with a = (1 - P, P - S, S). ``out`` is the
    whole result, or the window ``region`` of a result of ``size`` (width, height)."""
    h, w = out.shape[:2]
    pp, ss = output_strengths(params, *(size or (w, h)), region)
    p, s = np.broadcast_to(pp, (h, w)), np.broadcast_to(ss, (h, w))
    a = (1.0 - p, p - s, s)
    r_mean, r_std = ref_stats
    fixed = np.empty_like(out, dtype=np.float32)
    for c in range(out.shape[2]):
        m, cov = corner_moments[c, 0], corner_moments[c, 1:]
        mean = a[0] * m[0] + a[1] * m[1] + a[2] * m[2]
        var = np.zeros((h, w), np.float32)
        for i in range(3):
            for j in range(3):
                var += (a[i] * a[j]) * np.float32(cov[i, j])
        std = np.sqrt(np.maximum(var, 0.0))
        fixed[..., c] = (out[..., c] - mean) * (np.float32(r_std[c]) / (std + np.float32(eps))) + np.float32(r_mean[c])
    return np.clip(fixed, 0.0, 1.0, out=fixed)
