"""The instant preview of a strength change: a blend of cached corner images, cheap enough for every slider move.

numpy only, so the editor model (and its tests) use it without Qt.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.strength_map import StrengthMaps, output_strengths

#: Above this many output pixels the instant preview is blended on a subsampled grid: a 4 MP blend takes ~25 ms
#: on two CPU cores, and the preview must reach the screen within 100 ms; the exact render follows anyway.
PREVIEW_MAX_PIXELS = 4_200_000


class CornerBlend:
    """The instant preview of a pixel/semantic change: ``Corners.blend`` done cheaply on the GUI thread.

    Built in the worker thread from the engine's float corner images (base, pix, full), it keeps the base and the
    two differences as float32 in 0..255, so a slider move costs three vector operations and a conversion, with
    preallocated buffers (no allocation per move). Very large results are blended on a subsampled grid
    (``step`` > 1); the compare view stretches any result to the output size, and the exact render replaces it.
    """

    def __init__(self, base: np.ndarray, pix: np.ndarray, full: np.ndarray, max_pixels: int = PREVIEW_MAX_PIXELS):
        h, w = base.shape[:2]
        self.size = (w, h)
        self.step = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
        s = self.step
        b, p, f = (np.asarray(a[::s, ::s], np.float32) for a in (base, pix, full))
        self.base = b * 255.0
        self.d_pix = (p - b) * 255.0
        self.d_sem = (f - p) * 255.0
        self._out = np.empty_like(self.base)
        self._tmp = np.empty_like(self.base)

    def blend(self, pix: float, sem: float, maps: StrengthMaps | None = None) -> np.ndarray:
        """uint8 H x W x 3: base + pix (pix - base) + sem (full - pix), rounded like ``to_uint8``; with ``maps``
        the strengths vary place by place as the engine applies them (its 8-pixel grid, stretched bilinearly)."""
        out, tmp = self._out, self._tmp
        p: float | np.ndarray = np.float32(pix)
        s: float | np.ndarray = np.float32(sem)
        if maps is not None:
            from ..engine.api import RenderParams

            w, h = self.size
            lp, ls = output_strengths(RenderParams(pix=pix, sem=sem, maps=maps), w, h, step=self.step)
            p, s = np.asarray(lp)[..., None], np.asarray(ls)[..., None]
        np.multiply(self.d_pix, p, out=out)
        out += self.base
        np.multiply(self.d_sem, s, out=tmp)
        out += tmp
        np.clip(out, 0.0, 255.0, out=out)
        np.rint(out, out=out)
        return out.astype(np.uint8)
