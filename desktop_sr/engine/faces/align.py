"""Aligning a face to the 512 x 512 template and pasting the restored face back so the rest stays as it was.

Warp: the similarity (rotation, uniform scale, shift) that best puts the five landmarks on the template
(``cv2.estimateAffinePartial2D``, least squares over the five points), applied with ``cv2.warpAffine``.

Paste-back: the restored crop is colour-matched to the crop it was made from (per-channel mean and spread inside the
face, so a model's colour cast does not show as a patch), warped back with the inverse similarity, and blended with a
feathered mask: a rounded square inside the crop, blurred with a finite Gaussian kernel, so the weight falls smoothly
to exactly zero well inside the crop's border. Where the weight is zero the result is returned untouched (bit for
bit), and the blend only ever touches the face's bounding rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import import_cv2
from .template import FACE_SIDE, TEMPLATE_512

#: The mask's solid part stops this far inside the crop (template pixels), and its feather is this wide.
MASK_INSET = 48
FEATHER = 61  # Gaussian kernel side (odd); sigma = FEATHER / 6, so the weight reaches 0 within half of it
#: The spread of the restored face is scaled at most this much towards the result's (a random or failed model's
#: output must not be stretched without bound).
SPREAD_LIMIT = (0.5, 2.0)


def _cv2():  # noqa: ANN202 - the cv2 module
    cv2 = import_cv2()
    if cv2 is None:
        from .landmarks import NoFaceDetector

        raise NoFaceDetector("face restoration needs OpenCV 4 (install desktop-sr[faces], i.e. opencv-python<5)")
    return cv2


def similarity_to_template(points: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity taking photo points onto the 512 template."""
    cv2 = _cv2()
    m, _ = cv2.estimateAffinePartial2D(np.asarray(points, np.float32), TEMPLATE_512.astype(np.float32),
                                       method=cv2.LMEDS)  # fmt: skip
    if m is None:
        raise ValueError("these landmarks do not fix an alignment")
    return m.astype(np.float64)


def warp_face(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 512 x 512 aligned crop (float32 RGB); outside the photo it repeats the border."""
    cv2 = _cv2()
    return cv2.warpAffine(np.asarray(rgb, np.float32), matrix, (FACE_SIDE, FACE_SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def template_mask() -> np.ndarray:
    """The feathered weight in template space: 1 over the face, exactly 0 in a band along the crop's border."""
    global _MASK
    if _MASK is None:
        cv2 = _cv2()
        m = np.zeros((FACE_SIDE, FACE_SIDE), np.float32)
        r = MASK_INSET * 2
        cv2.rectangle(m, (MASK_INSET, MASK_INSET), (FACE_SIDE - 1 - MASK_INSET, FACE_SIDE - 1 - MASK_INSET), 1.0, -1)
        for cx in (MASK_INSET + r, FACE_SIDE - 1 - MASK_INSET - r):  # round the corners (hair and shoulders)
            for cy in (MASK_INSET + r, FACE_SIDE - 1 - MASK_INSET - r):
                corner = np.zeros_like(m)
                cv2.circle(corner, (cx, cy), r, 1.0, -1)
                qx = slice(0, cx) if cx < FACE_SIDE // 2 else slice(cx, FACE_SIDE)
                qy = slice(0, cy) if cy < FACE_SIDE // 2 else slice(cy, FACE_SIDE)
                m[qy, qx] = corner[qy, qx]
        m = cv2.GaussianBlur(m, (FEATHER, FEATHER), FEATHER / 6, borderType=cv2.BORDER_CONSTANT)
        m[m < 1e-3] = 0.0
        _MASK = m
    return _MASK


_MASK: np.ndarray | None = None


def match_colour(restored: np.ndarray, source: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``restored`` with each channel's mean and spread over the face (``weight``) moved to ``source``'s."""
    w = weight[..., None].astype(np.float64)
    total = float(w.sum()) or 1.0
    mr = (restored * w).sum((0, 1)) / total
    ms = (source * w).sum((0, 1)) / total
    sr = np.sqrt(((restored - mr) ** 2 * w).sum((0, 1)) / total) + 1e-6
    ss = np.sqrt(((source - ms) ** 2 * w).sum((0, 1)) / total) + 1e-6
    gain = np.clip(ss / sr, *SPREAD_LIMIT)
    return ((restored - mr) * gain + ms).astype(np.float32)


@dataclass(frozen=True)
class Placed:
    """A restored face ready to blend: its colour-matched pixels and its weight, both over ``rect`` of the result."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 in result pixels (x1, y1 exclusive)
    pixels: np.ndarray  # h x w x 3 float32
    weight: np.ndarray  # h x w float32 in [0, 1], 0 at the rectangle's edge


def place(result: np.ndarray, restored: np.ndarray, matrix: np.ndarray) -> Placed | None:
    """Warp the restored 512 crop back onto the result's pixel grid (colour-matched to it); None if the face lies
    outside the result."""
    cv2 = _cv2()
    h, w = result.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [FACE_SIDE, 0, 1], [0, FACE_SIDE, 1], [FACE_SIDE, FACE_SIDE, 1]], np.float64)
    xy = corners @ inverse.T
    x0, y0 = max(0, int(np.floor(xy[:, 0].min()))), max(0, int(np.floor(xy[:, 1].min())))
    x1, y1 = min(w, int(np.ceil(xy[:, 0].max())) + 1), min(h, int(np.ceil(xy[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = template_mask()
    matched = match_colour(restored, warp_face(result, matrix), mask)
    local = inverse.copy()
    local[:, 2] -= (x0, y0)  # the inverse warp onto the rectangle only
    size = (x1 - x0, y1 - y0)
    pixels = cv2.warpAffine(matched, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(mask, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return Placed((x0, y0, x1, y1), pixels, weight)


def blend(result: np.ndarray, placed: list[Placed], strength: float, out: np.ndarray | None = None) -> np.ndarray:
    """The result with each placed face mixed in at ``strength`` (0: the result itself). Into a new array, or into
    ``out`` (a copy of ``result`` made earlier), where only the faces' rectangles are rewritten: a re-blend then
    costs the faces' pixels, not the photo's."""
    if out is None:
        out = np.array(result, np.float32, copy=True)
    a_max = min(1.0, max(0.0, strength))
    for p in placed:
        x0, y0, x1, y1 = p.rect
        base = result[y0:y1, x0:x1]
        if a_max <= 0:
            out[y0:y1, x0:x1] = base
            continue
        a = (p.weight * a_max)[..., None]
        mixed = np.clip(base + a * (p.pixels - base), 0.0, 1.0)
        out[y0:y1, x0:x1] = np.where(p.weight[..., None] > 0, mixed, base)
    return out
