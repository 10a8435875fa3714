"""numpy <-> QImage, the instant corner-blend preview, and the colour map of the detail overlay. numpy only."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtGui import QImage

# A perceptual dark-to-bright map (black, purple, orange, yellow) for "how much did the semantic branch invent".
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)

#: Above this many output pixels the instant preview is blended on a subsampled grid: a 4 MP blend takes ~25 ms
#: on two CPU cores, and the preview must reach the screen within 100 ms; the exact render follows anyway.
PREVIEW_MAX_PIXELS = 4_200_000


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    """uint8 H x W x 3 (or x 4) -> a QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(rgb)
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(a.data, w, h, w * c, fmt).copy()


def rgb_from_qimage(img: QImage) -> np.ndarray:
    """A QImage -> uint8 H x W x 3, for tests and screenshots."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    data = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return data[:, : w * 3].reshape(h, w, 3).copy()


def colormap(values: np.ndarray, opacity: float = 0.75) -> np.ndarray:
    """H x W in [0, 1] -> RGBA uint8, transparent where nothing was added."""
    v = np.clip(values, 0.0, 1.0)
    pos = v * (len(_ANCHORS) - 1)
    i = np.clip(pos.astype(np.int32), 0, len(_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f
    alpha = (np.sqrt(v) * 255 * opacity)[..., None]
    return np.concatenate([rgb, alpha], axis=-1).round().astype(np.uint8)


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

    def blend(self, pix: float, sem: float) -> np.ndarray:
        """uint8 H x W x 3: base + pix (pix - base) + sem (full - pix), rounded like ``to_uint8``."""
        out, tmp = self._out, self._tmp
        np.multiply(self.d_pix, np.float32(pix), out=out)
        out += self.base
        np.multiply(self.d_sem, np.float32(sem), out=tmp)
        out += tmp
        np.clip(out, 0.0, 255.0, out=out)
        np.rint(out, out=out)
        return out.astype(np.uint8)
