"""numpy <-> QImage and the colour map of the detail overlay (the corner-blend preview is Qt-free, in the editor)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from ..editor.preview import CornerBlend

__all__ = ["CornerBlend", "colormap", "qimage_from_rgb", "rgb_from_qimage"]

# A perceptual dark-to-bright map (black, purple, orange, yellow) for "how much did the semantic branch invent".
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


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
