"""Reading photos: every format Pillow knows, 16-bit PNG/TIFF at full depth, orientation applied, sRGB pixels.

Hostile files (empty, truncated, not an image, decompression bombs, folders, unreadable) raise one
:class:`PhotoError` with a plain reason and never another exception type, so a batch can list it and go on.
The source is opened read-only and read once.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .color import is_srgb, to_srgb
from .errors import PhotoError
from .orientation import ORIENTATION_TAG, apply_orientation
from .photo import Photo

DEFAULT_MAX_PIXELS = 200_000_000

try:  # optional extra: HEIC/HEIF and AVIF
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    HAVE_HEIF = True
except ImportError:
    HAVE_HEIF = False

_BASE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".dib"}
_HEIF_EXTENSIONS = {".heic", ".heif", ".hif", ".avif"}
SUPPORTED_READ_EXTENSIONS = frozenset(_BASE_EXTENSIONS | (_HEIF_EXTENSIONS if HAVE_HEIF else set()))


def is_probably_image(path: str | Path) -> bool:
    """A cheap filter for batch planning: a supported extension, not hidden. Content is checked on read."""
    p = Path(path)
    return p.suffix.lower() in SUPPORTED_READ_EXTENSIONS and not p.name.startswith(".")


def _check_path(path: Path) -> None:
    if not path.exists():
        raise PhotoError(path, "file not found")
    if path.is_dir():
        raise PhotoError(path, "is a folder, not a photo")
    if not os.access(path, os.R_OK):
        raise PhotoError(path, "cannot be read (permission denied)")


def _png_bit_depth(data: bytes) -> int:
    return data[24] if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 else 8


def _read_png16(data: bytes) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(bytes=data).asDirect()
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, info["planes"])
    return arr


def _read_tiff16(data: bytes) -> np.ndarray | None:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        page = tf.pages[0]
        if page.dtype != np.uint16:
            return None
        arr = page.asarray()
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):  # planar storage
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _split(arr: np.ndarray, maxval: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer pixels (H x W, H x W x 1..4) -> float RGB and optional alpha."""
    f = arr.astype(np.float32) / maxval
    if f.ndim == 2:
        f = f[..., None]
    channels = f.shape[2]
    if channels in (1, 2):
        rgb, alpha = np.repeat(f[..., :1], 3, axis=2), (f[..., 1] if channels == 2 else None)
    else:
        rgb, alpha = f[..., :3], (f[..., 3] if channels >= 4 else None)
    return np.ascontiguousarray(rgb), (np.ascontiguousarray(alpha) if alpha is not None else None)


def _pillow_pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (*_split(np.asarray(im).astype(np.uint16), 65535.0), 16)
    if mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float32)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return (*_split(np.clip(a, 0, top), top), 16 if top > 255 else 8)
    if mode == "CMYK":
        im = im.convert("RGB")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGBA" if "A" in mode else "RGB")
    return (*_split(np.asarray(im), 255.0), 8)


def read_photo(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_profile: bool = False) -> Photo:
    """Read a photo upright, in sRGB (unless ``keep_profile``), with its metadata. Raises :class:`PhotoError`."""
    path = Path(path)
    _check_path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PhotoError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise PhotoError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise PhotoError(
                    path, f"{w} x {h} is more than the limit of {max_pixels:,} pixels (decompression bomb?)"
                )
            im.load()
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoError(path, f"too many pixels for a photo (decompression bomb?): {exc}") from exc
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in _HEIF_EXTENSIONS and not HAVE_HEIF:
            raise PhotoError(path, "HEIC/HEIF/AVIF needs the optional extra: pip install 'desktop-sr[heif]'") from exc
        raise PhotoError(path, "not an image this app can read (unknown or damaged format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as exc:
        raise PhotoError(path, f"damaged or truncated image ({exc})") from exc

    fmt = im.format or "?"
    exif = im.getexif()
    orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
    icc = im.info.get("icc_profile") or None
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    dpi = im.info.get("dpi")
    try:
        arr16 = None
        if fmt == "PNG" and _png_bit_depth(data) == 16:
            arr16 = _read_png16(data)
        elif fmt == "TIFF":
            arr16 = _read_tiff16(data)
        if arr16 is not None:
            rgb, alpha = _split(arr16, 65535.0)
            depth = 16
        else:
            rgb, alpha, depth = _pillow_pixels(im)
    except PhotoError:
        raise
    except Exception as exc:  # decoders fail in many ways on damaged data; all mean the same to the user
        raise PhotoError(path, f"damaged image data ({type(exc).__name__}: {exc})") from exc

    rgb = apply_orientation(rgb, orientation)
    alpha = apply_orientation(alpha, orientation) if alpha is not None else None
    converted = False
    if icc and not keep_profile and not is_srgb(icc):
        try:
            rgb = to_srgb(rgb, icc, exact_8bit=depth == 8)
            converted = True
        except Exception as exc:  # a broken profile must not cost the user the photo
            raise PhotoError(path, f"its colour profile cannot be applied ({exc})") from exc
    exif_bytes = None
    if len(exif):
        if ORIENTATION_TAG in exif:
            exif[ORIENTATION_TAG] = 1
        exif_bytes = exif.tobytes()
    return Photo(
        rgb=rgb.astype(np.float32, copy=False),
        source=path,
        format=fmt,
        bit_depth=depth,
        alpha=alpha,
        icc_profile=icc,
        converted_from_icc=converted,
        exif=exif_bytes,
        xmp=xmp,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        info={"orientation": orientation, "mode": im.mode},
    )
