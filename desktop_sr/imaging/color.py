"""Colour management with Pillow's ImageCms (LittleCMS): the model works in sRGB, photos keep their own profile.

8-bit pixels go straight through LittleCMS. 16-bit and float pixels go through a 3-D lookup table sampled
from the same transform (33 nodes per axis, trilinear), because Pillow has no 16-bit RGB mode.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageCms

log = logging.getLogger(__name__)
_NODES = 33


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


def srgb_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def is_srgb(icc: bytes | None) -> bool:
    """True for no profile or an sRGB one (by description, as cameras and editors name it)."""
    if not icc:
        return True
    try:
        desc = ImageCms.getProfileDescription(_profile(icc)).lower()
    except (OSError, ImageCms.PyCMSError, TypeError):
        return True  # an unreadable profile cannot be applied; treat pixels as sRGB and keep the bytes
    return "srgb" in desc or "iec61966" in desc


def _transform(src: bytes, dst: bytes) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(
        _profile(src), _profile(dst), "RGB", "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL
    )


def _lut(transform: ImageCms.ImageCmsTransform) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.round(np.linspace(0, 255, _NODES)).astype(np.uint8)
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), axis=-1).reshape(_NODES * _NODES, _NODES, 3)
    out = ImageCms.applyTransform(Image.fromarray(grid, "RGB"), transform)
    table = np.asarray(out, dtype=np.float32).reshape(_NODES, _NODES, _NODES, 3) / 255.0
    return nodes.astype(np.float32) / 255.0, table


def _apply_lut(rgb: np.ndarray, nodes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``table`` (on the per-axis ``nodes``) at every pixel."""
    idx, frac = [], []
    for c in range(3):
        v = np.clip(rgb[..., c], 0.0, 1.0)
        i = np.clip(np.searchsorted(nodes, v, side="right") - 1, 0, len(nodes) - 2)
        idx.append(i)
        frac.append(((v - nodes[i]) / (nodes[i + 1] - nodes[i]))[..., None])
    (r, g, b), (fr, fg, fb) = idx, frac
    out = np.zeros(rgb.shape, dtype=np.float32)
    for dr in (0, 1):
        wr = fr if dr else 1 - fr
        for dg in (0, 1):
            wg = fg if dg else 1 - fg
            for db in (0, 1):
                wb = fb if db else 1 - fb
                out += wr * wg * wb * table[r + dr, g + dg, b + db]
    return out


def convert(rgb: np.ndarray, src: bytes, dst: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    """Convert float RGB between two ICC profiles. ``exact_8bit`` sends 8-bit data straight through LittleCMS."""
    transform = _transform(src, dst)
    if exact_8bit:
        img = Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
        return np.asarray(ImageCms.applyTransform(img, transform), dtype=np.float32) / 255.0
    nodes, table = _lut(transform)
    return _apply_lut(rgb, nodes, table)


def to_srgb(rgb: np.ndarray, icc: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    return convert(rgb, icc, srgb_bytes(), exact_8bit=exact_8bit)


def from_srgb(rgb: np.ndarray, icc: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    return convert(rgb, srgb_bytes(), icc, exact_8bit=exact_8bit)
