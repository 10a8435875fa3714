"""Colour management with Pillow's ImageCms (LittleCMS): the model works in sRGB, photos keep their own profile.

LittleCMS in Pillow transforms 8-bit images only. 8-bit photos go straight through it (exact). 16-bit and float
pixels go through a 3-D lookup table sampled from the same transform and interpolated trilinearly, so deep
photos keep smooth gradients instead of being cut to 256 levels first. Grey profiles use a 1-D curve.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

from .pixels import to_uint8

_INTENT = ImageCms.Intent.PERCEPTUAL
# LUT nodes per axis, denser near black where gamma curves are steepest (all in 8-bit steps: the transform is 8-bit).
_NODES = np.unique(np.round(255 * np.linspace(0.0, 1.0, 41) ** 1.6)).astype(np.uint8)


class ProfileError(ValueError):
    """An embedded profile that LittleCMS cannot parse or apply."""


@functools.lru_cache(maxsize=16)
def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError) as exc:
        raise ProfileError(f"unreadable ICC profile ({exc})") from exc


@functools.lru_cache(maxsize=1)
def srgb_bytes() -> bytes:
    """The sRGB profile LittleCMS builds, as bytes to embed when pixels are sRGB but a tag is still wanted."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _srgb() -> ImageCms.ImageCmsProfile:
    return _profile(srgb_bytes())


def profile_space(icc: bytes | None) -> str | None:
    """The profile's colour space ("RGB", "GRAY", "CMYK", "LAB", ...), or None for no or an unreadable profile."""
    if not icc:
        return None
    try:
        return str(_profile(icc).profile.xcolor_space).strip().upper() or None
    except ProfileError:
        return None


def profile_name(icc: bytes | None) -> str:
    """The profile's description for messages, e.g. "Adobe RGB (1998)"."""
    if not icc:
        return "none"
    try:
        return ImageCms.getProfileDescription(_profile(icc)).strip() or "unnamed profile"
    except (ProfileError, ImageCms.PyCMSError):
        return "unreadable profile"


@functools.lru_cache(maxsize=64)
def _transform(src: bytes, dst: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    src_p = _srgb() if src == b"sRGB" else _profile(src)
    dst_p = _srgb() if dst == b"sRGB" else _profile(dst)
    try:
        # NOCACHE: LittleCMS's one-pixel cache is not thread-safe, and the GUI and a batch may convert at once.
        return ImageCms.buildTransform(
            src_p, dst_p, in_mode, out_mode, renderingIntent=_INTENT, flags=ImageCms.Flags.NOCACHE
        )
    except ImageCms.PyCMSError as exc:
        raise ProfileError(f"cannot build a colour transform ({exc})") from exc


def _apply(img: Image.Image, transform: ImageCms.ImageCmsTransform) -> Image.Image:
    try:
        return ImageCms.applyTransform(img, transform)
    except ImageCms.PyCMSError as exc:
        raise ProfileError(f"cannot apply the colour transform ({exc})") from exc


@functools.lru_cache(maxsize=64)
def is_srgb(icc: bytes | None) -> bool:
    """True when pixels tagged with ``icc`` already look like sRGB (no profile counts as sRGB).

    Judged by behaviour, not by name: a grid of colours goes through the transform and nothing may move by more
    than one 8-bit level. That recognises the many sRGB variants (camera, browser, "c2") and never mistakes a
    linear or wide-gamut profile for sRGB because of its description. Unreadable profiles count as sRGB: they
    cannot be applied, and the bytes are kept as they were.
    """
    if not icc:
        return True
    space = profile_space(icc)
    if space is None:
        return True
    if space != "RGB":
        return False
    try:
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        probe = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(16, -1, 3)
        out = _apply(Image.fromarray(probe, "RGB"), _transform(icc, b"sRGB", "RGB", "RGB"))
    except ProfileError:
        return True
    return int(np.abs(np.asarray(out, np.int16) - probe).max()) <= 1


@functools.lru_cache(maxsize=32)
def _lut(src: bytes, dst: bytes) -> np.ndarray:
    """The RGB->RGB transform sampled on the node grid: an (N, N, N, 3) float32 table."""
    n = len(_NODES)
    grid = np.stack(np.meshgrid(_NODES, _NODES, _NODES, indexing="ij"), axis=-1).reshape(n * n, n, 3)
    out = _apply(Image.fromarray(grid, "RGB"), _transform(src, dst, "RGB", "RGB"))
    return np.asarray(out, dtype=np.float32).reshape(n, n, n, 3) / 255.0


def _trilinear(rgb: np.ndarray, table: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Trilinear interpolation of ``table`` (on the per-axis ``_NODES``) at every pixel, a million at a time."""
    nodes = _NODES.astype(np.float32) / 255.0
    n = len(nodes)
    flat = table.reshape(-1, 3)
    src = rgb.reshape(-1, 3)
    out = np.empty_like(src, dtype=np.float32)
    for start in range(0, len(src), chunk):
        v = np.clip(src[start : start + chunk], 0.0, 1.0)
        i = np.clip(np.searchsorted(nodes, v, side="right") - 1, 0, n - 2)  # works per element on 2-D input
        f = (v - nodes[i]) / (nodes[i + 1] - nodes[i])
        base = i[:, 0] * (n * n) + i[:, 1] * n + i[:, 2]
        acc = np.zeros((len(v), 3), dtype=np.float32)
        for dr in (0, 1):
            wr = f[:, 0] if dr else 1 - f[:, 0]
            for dg in (0, 1):
                wrg = wr * (f[:, 1] if dg else 1 - f[:, 1])
                for db in (0, 1):
                    w = wrg * (f[:, 2] if db else 1 - f[:, 2])
                    acc += w[:, None] * flat[base + (dr * n * n + dg * n + db)]
        out[start : start + chunk] = acc
    return out.reshape(rgb.shape)


def convert_rgb(rgb: np.ndarray, src: bytes, dst: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    """Convert float RGB (H x W x 3) between two RGB profiles (``b"sRGB"`` names the built-in sRGB).

    ``exact_8bit`` sends the pixels through LittleCMS at 8 bits (right for 8-bit photos); otherwise the smooth
    lookup table keeps 16-bit gradients free of banding. Raises :class:`ProfileError`.
    """
    if exact_8bit:
        out = _apply(Image.fromarray(to_uint8(rgb), "RGB"), _transform(src, dst, "RGB", "RGB"))
        return np.asarray(out, dtype=np.float32) / 255.0
    return _trilinear(rgb, _lut(src, dst))


def to_srgb(rgb: np.ndarray, icc: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    return convert_rgb(rgb, icc, b"sRGB", exact_8bit=exact_8bit)


def from_srgb(rgb: np.ndarray, icc: bytes, *, exact_8bit: bool = False) -> np.ndarray:
    return convert_rgb(rgb, b"sRGB", icc, exact_8bit=exact_8bit)


@functools.lru_cache(maxsize=16)
def _grey_curve(icc: bytes) -> np.ndarray:
    """The grey profile's 256 levels as sRGB RGB values: a (256, 3) float32 table."""
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = _apply(Image.fromarray(ramp, "L"), _transform(icc, b"sRGB", "L", "RGB"))
    return np.asarray(out, dtype=np.float32).reshape(256, 3) / 255.0


def grey_to_srgb(grey: np.ndarray, icc: bytes) -> np.ndarray:
    """Grey levels (H x W in [0, 1]) tagged with a grey profile -> sRGB RGB (H x W x 3), interpolated for 16-bit."""
    curve = _grey_curve(icc)
    xs = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    g = np.clip(grey, 0.0, 1.0)
    return np.stack([np.interp(g, xs, curve[:, c]).astype(np.float32) for c in range(3)], axis=-1)


def srgb_to_grey(grey_srgb: np.ndarray, icc: bytes) -> np.ndarray:
    """The inverse of :func:`grey_to_srgb` for neutral pixels: sRGB grey levels (H x W) -> the profile's levels."""
    curve = _grey_curve(icc).mean(axis=1)
    curve = np.maximum.accumulate(curve)  # a tone curve rises; flat steps from rounding must not reverse it
    xs = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    return np.interp(np.clip(grey_srgb, 0.0, 1.0), curve, xs).astype(np.float32)


def grey_is_srgb(icc: bytes) -> bool:
    """True when the grey profile's tone curve matches sRGB's to one 8-bit level (nothing to convert)."""
    try:
        curve = _grey_curve(icc)
    except ProfileError:
        return True
    return float(np.abs(curve - np.linspace(0, 1, 256, dtype=np.float32)[:, None]).max()) <= 1.0 / 255.0


def image_to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """A Pillow image in the profile's own mode (CMYK, LAB, ...) converted to sRGB RGB by LittleCMS."""
    return _apply(img, _transform(icc, b"sRGB", img.mode, "RGB"))
