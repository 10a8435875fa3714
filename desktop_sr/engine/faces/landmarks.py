"""Faces with five landmarks (eye centres, nose tip, mouth corners), found with what ships in OpenCV 4's wheel.

Face restoration models read a face aligned to a five-point template, so each face needs landmarks, not only a box.
The detector's weights must come in a pip wheel (the app works offline), and a second ``cv2`` distribution must not be
pulled in beside ``opencv-python`` (mediapipe brings ``opencv-contrib-python``, which overwrites its files). OpenCV 4
ships Haar cascades for the frontal face and for eyes: the face box comes from ``haarcascade_frontalface_default``
(97/100 LFW faces, no false alarm on the 100 non-faces: ``bench/face_detectors.py``), the eye centres from
``haarcascade_eye`` inside the box's upper half, and where the eyes are not both found, from the box by the mean
geometry measured on LFW. The nose and the mouth corners follow from the eyes through the template itself (a
similarity transform fixed by the two eyes): the mouth is not detected, which is what a similarity alignment needs
anyway (five template points fitted by a similarity are dominated by the eyes' distance and angle).

Torch-free, Qt-free; runs on a grey copy whose long side is at most :data:`DETECT_SIDE` pixels.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .template import TEMPLATE_512

#: Long side of the grey copy faces are looked for in (faces below ~2 % of the long side are not looked for).
DETECT_SIDE = 1024
#: Smallest face looked for, in pixels of that copy (the cascade's own window is 24 px).
MIN_FACE = 24
#: Eye centres relative to a Haar face box (x / width, y / height), measured on the LFW faces where both eyes were
#: found (``bench/face_detectors.py --landmarks`` prints them): used when the eye cascade misses.
BOX_LEFT_EYE = (0.31, 0.38)
BOX_RIGHT_EYE = (0.67, 0.38)
_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


class NoFaceDetector(RuntimeError):
    """OpenCV 4 is not installed: the message names the extra to install."""


@dataclass(frozen=True)
class Face:
    """One face: its box in photo pixels and five landmarks (left eye, right eye, nose, left and right mouth
    corner, as seen in the photo), and whether the eyes were detected or placed from the box."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    points: tuple[tuple[float, float], ...]  # 5 x (x, y) in photo pixels
    eyes_detected: bool

    @property
    def size(self) -> float:
        """The face's size in pixels: the box's shorter side."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def key(self) -> tuple[int, int, int, int]:
        """What identifies the face in caches and on/off choices: its box."""
        return self.box

    def array(self) -> np.ndarray:
        return np.asarray(self.points, np.float64)


def import_cv2() -> Any | None:
    """cv2, or None. Its non-headless wheels point Qt's plugin and font variables at their own Qt on import: the
    app's Qt must keep its own, so they are put back."""
    if importlib.util.find_spec("cv2") is None:
        return None
    saved = {k: os.environ.get(k) for k in _QT_VARIABLES}
    try:
        import cv2
    except ImportError:
        return None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return cv2


def cascade_file(name: str) -> Path | None:
    """The path of OpenCV 4's Haar cascade ``name`` (in its wheel), or None without one (no cv2, or OpenCV 5)."""
    cv2 = import_cv2()
    if cv2 is None or not hasattr(cv2, "CascadeClassifier"):
        return None  # OpenCV 5 has neither the classifier nor the cascades
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(folder) / name if folder else None
    return path if path is not None and path.is_file() else None


def available() -> bool:
    return cascade_file("haarcascade_frontalface_default.xml") is not None


_local = threading.local()  # one classifier per thread: OpenCV does not promise that one is safe to share


def _cascade(name: str) -> Any:
    cascades: dict[str, Any] = _local.__dict__.setdefault("cascades", {})
    if name not in cascades:
        cv2 = import_cv2()
        path = cascade_file(name)
        if cv2 is None or path is None:
            raise NoFaceDetector("face restoration needs OpenCV 4 (install desktop-sr[faces], i.e. opencv-python<5)")
        cascades[name] = cv2.CascadeClassifier(str(path))
    return cascades[name]


def grey_copy(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 grey copy with a long side of at most DETECT_SIDE, and photo pixels per copy pixel."""
    cv2 = import_cv2()
    if cv2 is None:
        raise NoFaceDetector("face restoration needs OpenCV 4 (install desktop-sr[faces], i.e. opencv-python<5)")
    h, w = rgb.shape[:2]
    f = max(1.0, max(h, w) / DETECT_SIDE)
    u8 = np.clip(np.rint(np.asarray(rgb, np.float32) * 255), 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    if f > 1.0:
        grey = cv2.resize(grey, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    return grey, f


def _eyes(grey: np.ndarray, box: tuple[int, int, int, int]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The two eye centres inside the box's upper part (copy pixels), left one first; None unless one eye is found
    in each half at a plausible height and distance."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    top = grey[y0 + int(0.15 * h) : y0 + int(0.6 * h), x0:x1]
    if top.size == 0:
        return None
    side = max(6, int(0.12 * w))
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        top, scaleFactor=1.1, minNeighbors=3, minSize=(side, side), maxSize=(int(0.5 * w), int(0.5 * w))
    )
    y_top = y0 + int(0.15 * h)
    centres = [(x0 + ex + ew / 2, y_top + ey + eh / 2) for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
    mid = x0 + w / 2
    left = [c for c in centres if c[0] < mid]
    right = [c for c in centres if c[0] >= mid]
    if not left or not right:
        return None
    expect = [(x0 + ex * w, y0 + ey * h) for ex, ey in (BOX_LEFT_EYE, BOX_RIGHT_EYE)]
    le = min(left, key=lambda c: math.dist(c, expect[0]))
    re = min(right, key=lambda c: math.dist(c, expect[1]))
    dist = math.dist(le, re)
    angle = abs(math.degrees(math.atan2(re[1] - le[1], re[0] - le[0])))
    if not 0.25 * w <= dist <= 0.65 * w or angle > 25:
        return None  # an eyebrow, a nostril or a glasses' frame: the box's geometry is the better guess
    return le, re


def points_from_eyes(left: tuple[float, float], right: tuple[float, float]) -> np.ndarray:
    """Five landmarks from two eye centres: the template's nose and mouth corners carried by the similarity that
    puts the template's eyes on these."""
    src = TEMPLATE_512[:2]
    a = complex(*src[0]), complex(*src[1])
    b = complex(*left), complex(*right)
    s = (b[1] - b[0]) / (a[1] - a[0])  # rotation and scale as one complex number
    out = [b[0] + s * (complex(*p) - a[0]) for p in TEMPLATE_512]
    return np.array([[z.real, z.imag] for z in out])


def detect(rgb: np.ndarray) -> list[Face]:
    """Faces with landmarks, in photo pixels (H x W x 3 float in [0, 1]), largest first.
    Raises :class:`NoFaceDetector` if OpenCV 4 is not installed."""
    grey, f = grey_copy(rgb)
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
    )
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
    h, w = rgb.shape[:2]
    faces = []
    for box in _one_per_face(boxes):
        eyes = _eyes(grey, box)
        bw, bh = box[2] - box[0], box[3] - box[1]
        if eyes is None:
            eyes = ((box[0] + BOX_LEFT_EYE[0] * bw, box[1] + BOX_LEFT_EYE[1] * bh),
                    (box[0] + BOX_RIGHT_EYE[0] * bw, box[1] + BOX_RIGHT_EYE[1] * bh))  # fmt: skip
            detected = False
        else:
            detected = True
        pts = points_from_eyes(*eyes) * f
        photo_box = (max(0, math.floor(box[0] * f)), max(0, math.floor(box[1] * f)), min(w, math.ceil(box[2] * f)),
                     min(h, math.ceil(box[3] * f)))  # fmt: skip
        faces.append(Face(photo_box, tuple((float(x), float(y)) for x, y in pts), detected))
    return sorted(faces, key=lambda fc: -fc.size)


def _one_per_face(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Drop a box whose centre lies inside a larger one (the cascade's nested hits on one face)."""
    out: list[tuple[int, int, int, int]] = []
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        if not any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3] for o in out):
            out.append(b)
    return out
