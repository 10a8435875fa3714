"""EXIF, XMP and DPI: what is read from a photo and how it is updated for the exported file.

The exported picture is upright and larger, so its EXIF says orientation 1, carries the new pixel dimensions
and a resolution scaled with the picture (same print size, more dots per inch) or the DPI the user asked for.
Everything else the camera wrote (make, model, dates, exposure, GPS) is kept as it was.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

from PIL import Image, TiffImagePlugin

log = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
PIXEL_X, PIXEL_Y, MAKER_NOTE, USER_COMMENT = 0xA002, 0xA003, 0x927C, 0x9286
XMP_TAG = 700

# TIFF tags that describe how the source file stored its pixels. They are meaningless (or wrong) in another
# file, and Photoshop's layer data (37724) can be hundreds of megabytes, so they never travel with the EXIF.
_STORAGE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291, 292, 293, 317, 318,
     319, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347, 512, 513, 514, 515, 517, 518, 519, 520,
     521, 529, 530, 531, 532, XMP_TAG, 33723, 34377, 34675, 37724, 50706, 50740}
)  # fmt: skip
# EXIF text tags a TIFF keeps in its first IFD, for writers that cannot add an EXIF sub-IFD (16-bit TIFF).
TIFF_TEXT_TAGS = (0x010E, MAKE, MODEL, 0x0131, DATETIME, 0x013B, 0x8298)


def read_orientation(exif: Image.Exif) -> int:
    """EXIF orientation 1..8; anything else (missing, 0, garbage) counts as 1, upright."""
    try:
        value = int(exif.get(ORIENTATION_TAG, 1) or 1)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def portable_exif(exif: Image.Exif, *, swap_resolution: bool = False) -> bytes | None:
    """The photo's EXIF as bytes for another file: storage tags removed, orientation 1, sub-IFDs loaded.

    ``swap_resolution`` swaps X and Y resolution, for orientations that turned the picture by 90 degrees.
    Returns None when nothing worth keeping is left.
    """
    out = Image.Exif()
    for ifd in (EXIF_IFD, GPS_IFD):
        if ifd in exif:
            sub = exif.get_ifd(ifd)
            if sub:
                out.get_ifd(ifd).update(sub)
    for tag, value in exif.items():
        if tag not in _STORAGE_TAGS and tag not in (EXIF_IFD, GPS_IFD):
            out[tag] = value
    if ORIENTATION_TAG in out:
        out[ORIENTATION_TAG] = 1
    if swap_resolution and X_RESOLUTION in out and Y_RESOLUTION in out:
        out[X_RESOLUTION], out[Y_RESOLUTION] = out[Y_RESOLUTION], out[X_RESOLUTION]
    if not len(out) and not out.get_ifd(EXIF_IFD) and not out.get_ifd(GPS_IFD):
        return None
    return out.tobytes()


def load_exif(data: bytes) -> Image.Exif:
    e = Image.Exif()
    e.load(data)
    return e


def output_exif(
    exif: bytes, size: tuple[int, int], scale: float, *, max_bytes: int | None = None, dpi: float | None = None
) -> bytes | None:
    """EXIF for the exported file: orientation 1, pixel dimensions ``size`` (w, h), resolution times ``scale``
    (or set to ``dpi`` pixels per inch, when given, so the EXIF agrees with the file's own resolution field).

    ``max_bytes`` is the container's limit (JPEG keeps EXIF in one 64 KB segment): the maker note, then the user
    comment are dropped to fit, and None is returned (with a log line) if it still does not fit.
    """
    e = load_exif(exif)
    e[ORIENTATION_TAG] = 1
    if dpi:
        e[X_RESOLUTION] = e[Y_RESOLUTION] = TiffImagePlugin.IFDRational(Fraction(dpi).limit_denominator(1000))
        e[RESOLUTION_UNIT] = 2  # inches
    for tag in () if dpi else (X_RESOLUTION, Y_RESOLUTION):
        if tag in e:
            try:
                e[tag] = TiffImagePlugin.IFDRational(float(e[tag]) * scale)
            except (TypeError, ValueError, ZeroDivisionError):
                del e[tag]
    sub = e.get_ifd(EXIF_IFD)
    sub[PIXEL_X], sub[PIXEL_Y] = int(size[0]), int(size[1])
    data = e.tobytes()
    for bulky in (MAKER_NOTE, USER_COMMENT):
        if max_bytes is None or len(data) <= max_bytes:
            break
        if bulky in sub:
            del sub[bulky]
            data = e.tobytes()
    if max_bytes is not None and len(data) > max_bytes:
        log.warning("EXIF of %d bytes does not fit in this format (limit %d); not written", len(data), max_bytes)
        return None
    return data


def tiff_text_tags(exif: bytes | None) -> dict[int, str]:
    """The EXIF text fields (description, make, model, software, date, artist, copyright) as TIFF IFD0 tags."""
    if not exif:
        return {}
    e = load_exif(exif)
    return {t: e[t] for t in TIFF_TEXT_TAGS if isinstance(e.get(t), str) and e[t]}


def read_xmp(im: Image.Image) -> bytes | None:
    """The raw XMP packet where Pillow exposes it (JPEG, PNG, WebP, TIFF tag 700)."""
    value: Any = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if not value:
        tags = getattr(im, "tag_v2", None)
        value = tags.get(XMP_TAG) if tags is not None else None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) or None
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return bytes(value)
    return None


def read_dpi(im: Image.Image, *, swap: bool = False) -> tuple[float, float] | None:
    """Pixels per inch from the file, swapped for 90-degree orientations; None when absent or nonsense."""
    dpi = im.info.get("dpi")
    try:
        x, y = float(dpi[0]), float(dpi[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    if not (0 < x < 1e6 and 0 < y < 1e6):
        return None
    return (y, x) if swap else (x, y)
