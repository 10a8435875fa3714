"""Find faces so a starting mask can protect them ("less invention" where identity matters).

The detector's model must ship inside a wheel (the app works offline). Two were measured (bench/face_detectors.py,
figures in the README): OpenCV 4.x's Haar cascade (``cv2.data.haarcascades``; OpenCV 5 wheels no longer carry it)
and scikit-image's LBP frontal-face cascade (``skimage.data.lbp_frontal_face_cascade_filename()``). OpenCV is the
default: higher recall on the measured faces (97/100 against 94/100, no false alarm either) and 2-4x faster. It is
optional (the ``faces`` extra): without it the scikit-image cascade is used if installed, and without either the
editor says which extra to install. The extra pins ``opencv-python<5`` rather than the headless wheel: the bundled
model's wheel already requires ``opencv-python``, and two distributions of ``cv2`` in one environment overwrite
each other's files; one pinned distribution serves both.

Detection runs on a grey copy whose long side is at most :data:`DETECT_SIDE` pixels (faces smaller than about 2 %
of the photo's long side are not looked for: the brush is the tool for those), so it costs tens of milliseconds
whatever the photo's size. Boxes come back in photo pixels.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..engine.faces.landmarks import cascade_file, import_cv2

#: Long side of the grey copy faces are looked for in.
DETECT_SIDE = 1024
#: Smallest face looked for, in pixels of that copy (the cascades' own window is 24 px).
MIN_FACE = 24
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in photo pixels
BACKENDS = ("opencv", "skimage")


class NoFaceDetector(RuntimeError):
    """Neither detector is installed: the message names the extra to install."""


def _opencv_cascade() -> Path | None:
    return cascade_file("haarcascade_frontalface_default.xml")


def available_backends() -> list[str]:
    out = []
    if _opencv_cascade() is not None:
        out.append("opencv")
    if importlib.util.find_spec("skimage") is not None:
        out.append("skimage")
    return out


def _grey_copy(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 grey copy with a long side of at most DETECT_SIDE, and photo pixels per copy pixel."""
    h, w = rgb.shape[:2]
    f = max(1.0, max(h, w) / DETECT_SIDE)
    img = Image.fromarray(np.clip(np.rint(np.asarray(rgb, np.float32) * 255), 0, 255).astype(np.uint8)).convert("L")
    if f > 1.0:
        img = img.resize((max(1, round(w / f)), max(1, round(h / f))), Image.Resampling.BOX)
    return np.asarray(img), f


def _detect_opencv(grey: np.ndarray) -> list[Box]:
    cv2: Any = import_cv2()
    cascade = cv2.CascadeClassifier(str(_opencv_cascade()))
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in np.asarray(found).reshape(-1, 4)]


def _detect_skimage(grey: np.ndarray) -> list[Box]:
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    cascade = Cascade(lbp_frontal_face_cascade_filename())
    side = max(grey.shape)
    found = cascade.detect_multi_scale(grey.astype(np.float32) / 255.0, scale_factor=1.2, step_ratio=1,
                                       min_size=(MIN_FACE, MIN_FACE), max_size=(side, side))  # fmt: skip
    return [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]


_DETECTORS: dict[str, Callable[[np.ndarray], list[Box]]] = {"opencv": _detect_opencv, "skimage": _detect_skimage}


def detect_faces(rgb: np.ndarray, backend: str | None = None) -> list[Box]:
    """Face boxes in photo pixels (H x W x 3 float in [0, 1]). Raises :class:`NoFaceDetector` if none is installed."""
    backends = available_backends()
    if backend is None:
        if not backends:
            raise NoFaceDetector(
                "face detection needs OpenCV 4 (install desktop-sr[faces], i.e. opencv-python<5) or scikit-image"
            )
        backend = backends[0]
    elif backend not in backends:
        raise NoFaceDetector(f"the {backend} face detector is not installed")
    grey, f = _grey_copy(rgb)
    h, w = rgb.shape[:2]
    boxes = []
    for x0, y0, x1, y1 in _DETECTORS[backend](grey):
        boxes.append((max(0, math.floor(x0 * f)), max(0, math.floor(y0 * f)), min(w, math.ceil(x1 * f)),
                      min(h, math.ceil(y1 * f))))  # fmt: skip
    return merge_overlapping(boxes)


def merge_overlapping(boxes: list[Box], min_overlap: float = 0.3) -> list[Box]:
    """One box per face: boxes overlapping by more than ``min_overlap`` of the smaller are united."""
    out: list[Box] = []
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        for i, o in enumerate(out):
            ix = max(0, min(b[2], o[2]) - max(b[0], o[0]))
            iy = max(0, min(b[3], o[3]) - max(b[1], o[1]))
            small = min((b[2] - b[0]) * (b[3] - b[1]), (o[2] - o[0]) * (o[3] - o[1]))
            if small and ix * iy / small > min_overlap:
                out[i] = (min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3]))
                break
        else:
            out.append(b)
    return out
