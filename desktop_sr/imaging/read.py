"""Reading photos: every format Pillow knows, 16-bit PNG/TIFF at full depth, orientation applied, sRGB pixels.

Hostile files (empty, truncated, not an image, decompression bombs, folders, pipes, unreadable) raise one
:class:`PhotoError` with a plain reason and never another exception type, so a batch can list it and go on.
The source is opened read-only, read once into memory, and never opened again.
"""

from __future__ import annotations

import io
import logging
import re
import stat
import warnings as pywarnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .color import ProfileError, grey_is_srgb, grey_to_srgb, is_srgb, profile_name, profile_space, to_srgb
from .decode import (
    Decoded,
    TooManyPixels,
    check_size,
    deep_pixels,
    is_tiff,
    pillow_limits,
    pillow_pixels,
    tifffile_pixels,
)
from .errors import PhotoError
from .formats import HAVE_HEIF, HEIF_EXTENSIONS, SUPPORTED_READ_EXTENSIONS, is_probably_image, is_raw_path
from .metadata import ORIENTATION_TAG, portable_exif, read_dpi, read_orientation, read_xmp
from .orientation import apply_orientation
from .photo import Photo

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_READ_EXTENSIONS",
    "Header",
    "is_probably_image",
    "read_header",
    "read_photo",
]

log = logging.getLogger(__name__)

#: What a photo's warnings say when its EXIF/TIFF tags were partly unreadable (Pillow read what it could).
METADATA_PARTLY_UNREADABLE = "metadata partly unreadable, kept what could be read"
_METADATA_WARNING = re.compile(r"exif|metadata|tag|truncated file read|ifd", re.IGNORECASE)

#: The default pixel limit: 200 megapixels (a 150 MP medium-format photo reads; a 1-gigapixel bomb does not).
DEFAULT_MAX_PIXELS = 200_000_000


def _check_path(path: Path) -> None:
    """Turn every odd path (missing, a folder, a pipe, empty) into a clear reason before anything opens it."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise PhotoError(path, "file not found") from exc
    except OSError as exc:
        raise PhotoError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise PhotoError(path, "is a folder, not a photo")
    if not stat.S_ISREG(st.st_mode):  # a pipe or device would block or never end
        raise PhotoError(path, "is not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise PhotoError(path, "the file is empty (0 bytes)")


def _read_bytes(path: Path) -> bytes:
    """The whole file, after :func:`_check_path`."""
    _check_path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except PermissionError as exc:
        raise PhotoError(path, "cannot be read (permission denied)") from exc
    except OSError as exc:
        raise PhotoError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise PhotoError(path, "the file is empty (0 bytes)")
    return data


def _to_srgb(dec: Decoded, icc: bytes | None, keep_profile: bool, warnings: list[str]) -> tuple[np.ndarray, str]:
    """Decoded values -> RGB for the model, and the colour state (see ``photo.COLOUR_STATES``)."""
    space = profile_space(icc)
    grey = dec.space == "L"
    values = dec.values
    as_rgb = np.repeat(values, 3, axis=2) if grey else values
    if dec.space == "sRGB":  # CMYK/Lab: the decoder already went through the profile (or a plain formula)
        return values, ("converted" if icc and space in ("CMYK", "LAB") else "srgb")
    if not icc:
        return as_rgb, "srgb"
    if space is None:
        warnings.append("its colour profile is unreadable; colours are shown as sRGB and the profile is kept")
        return as_rgb, "ignored"
    if space != ("GRAY" if grey else "RGB"):
        warnings.append(f"its {space} colour profile does not fit a {'grey' if grey else 'colour'} picture; ignored")
        return as_rgb, "ignored"
    if grey:
        if grey_is_srgb(icc):
            return as_rgb, "srgb"
        return (as_rgb, "native") if keep_profile else (grey_to_srgb(values[..., 0], icc), "converted")
    if is_srgb(icc):
        return as_rgb, "srgb"
    if keep_profile:
        return as_rgb, "native"
    return to_srgb(values, icc, exact_8bit=dec.bit_depth == 8), "converted"


def _decode(path: Path, data: bytes, max_pixels: int) -> tuple[Image.Image | None, Decoded, int]:
    """Open and decode with Pillow (tifffile for TIFFs Pillow refuses). Returns the image, pixels, orientation."""
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if not is_tiff(data):
            raise
        dec, orientation = tifffile_pixels(data, max_pixels)
        return None, dec, orientation
    check_size(im.size, max_pixels)
    dec_deep = deep_pixels(im, data, max_pixels)  # before anything loads `im`: it needs the undecoded tiles
    orientation = read_orientation(im.getexif())
    if dec_deep is not None:
        dec = dec_deep
    else:
        try:
            im.load()
        except OSError:
            if not is_tiff(data):
                raise
            dec, orientation = tifffile_pixels(data, max_pixels)  # e.g. a compression this libtiff lacks
            return im, dec, orientation
        dec = pillow_pixels(im, profile_space(im.info.get("icc_profile") or None), im.info.get("icc_profile"))
        dec.orientation_dropped = ORIENTATION_TAG not in im.getexif()
    # Pillow applies TIFF orientation itself while loading, then drops the tag; other formats are left to us.
    if orientation == 1 or not dec.orientation_dropped:
        dec.orientation_dropped = False
    return im, dec, orientation


@contextmanager
def _library_warnings(warnings: list[str]) -> Iterator[None]:
    """Turn the decoders' Python warnings into our own words instead of letting them reach the terminal.

    Pillow warns (UserWarning "Corrupt EXIF data", "Truncated File Read", ...) when a camera wrote broken tags,
    then keeps the tags it could read: the user hears that once, in plain words. Other warnings say nothing a
    user can act on; they go to the debug log. Runs under :func:`pillow_limits`' lock, since the warnings
    filters are process-wide.
    """
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        pywarnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        yield
    for w in caught:
        text = str(w.message)
        if _METADATA_WARNING.search(text) or w.filename.endswith("TiffImagePlugin.py"):
            if METADATA_PARTLY_UNREADABLE not in warnings:
                warnings.append(METADATA_PARTLY_UNREADABLE)
            log.debug("metadata warning: %s", text)
        else:
            log.debug("decoder warning: %s (%s)", text, w.category.__name__)


#: What a header or a decode can show that makes a file no photo this app reads (see :func:`_not_readable`).
_NOT_READABLE = (TooManyPixels, Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError)


def _not_readable(path: Path, exc: BaseException, max_pixels: int) -> PhotoError:
    """The reason for one of :data:`_NOT_READABLE`, the same whether the header or the decode found it."""
    if isinstance(exc, TooManyPixels):
        w, h = exc.size
        return PhotoError(
            path, f"{w} x {h} is more than the limit of {exc.limit:,} pixels (a decompression bomb, or too big)"
        )
    if isinstance(exc, UnidentifiedImageError):
        if path.suffix.lower() in HEIF_EXTENSIONS and not HAVE_HEIF:
            return PhotoError(path, "HEIC/HEIF/AVIF needs the optional extra: pip install 'desktop-sr[heif]'")
        return PhotoError(path, "not an image this app can read (unknown or damaged format)")
    return PhotoError(path, f"more pixels than the limit of {max_pixels:,} (a decompression bomb?)")


@dataclass(frozen=True)
class Header:
    """What a photo's header says: its upright size and its number of frames (an animated GIF, a multi-page TIFF)."""

    width: int
    height: int
    frames: int = 1

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def read_header(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header | None:
    """The photo's upright size from its header, without decoding the pixels; None for camera RAW (known once
    developed). Raises :class:`PhotoError` for what the header already shows (empty, not an image, a decompression
    bomb, unreadable), so a batch or a command can refuse such a file before a model loads. Pillow's warnings about
    damaged tags are kept out of the terminal (:func:`read_photo` reports them once, in its notes).
    """
    path = Path(path)
    _check_path(path)
    if is_raw_path(path):
        return None
    try:
        with pillow_limits(max_pixels), _library_warnings([]), Image.open(path) as im:
            w, h = im.size
            check_size((w, h), max_pixels)
            turned = read_orientation(im.getexif()) in (5, 6, 7, 8)
            frames = int(getattr(im, "n_frames", 1) or 1)
    except PhotoError:
        raise
    except _NOT_READABLE as exc:
        raise _not_readable(path, exc, max_pixels) from exc
    except PermissionError as exc:
        raise PhotoError(path, "cannot be read (permission denied)") from exc
    except Exception as exc:  # noqa: BLE001 - a header damaged in any way means the same to the user
        raise PhotoError(path, f"damaged image header ({str(exc) or type(exc).__name__})") from exc
    return Header(h, w, frames) if turned else Header(w, h, frames)


def read_photo(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_profile: bool = False) -> Photo:
    """Read a photo upright, in sRGB (unless ``keep_profile``), with its metadata. Camera RAW and DNG files are
    developed to 16-bit sRGB through LibRaw (:mod:`.raw`; ``keep_profile`` does not apply to them).

    ``max_pixels`` refuses larger images before decoding them (decompression bombs). Raises :class:`PhotoError`
    for every problem, with the path and a reason a user can act on.
    """
    path = Path(path)
    data = _read_bytes(path)
    if is_raw_path(path):  # camera RAW and DNG: developed by LibRaw (Pillow would give a DNG's small preview)
        from .raw import read_raw

        return read_raw(path, data, max_pixels)
    warnings: list[str] = []
    try:
        with pillow_limits(max_pixels), _library_warnings(warnings):
            im, dec, orientation = _decode(path, data, max_pixels)
            fmt = (im.format if im is not None else None) or "TIFF"
            icc = (im.info.get("icc_profile") if im is not None else _tiff_icc(data)) or None
            turned = orientation in (5, 6, 7, 8)
            exif = xmp = dpi = None
            if im is not None:
                exif = portable_exif(im.getexif(), swap_resolution=turned)
                xmp = read_xmp(im)
                dpi = read_dpi(im, swap=turned)
            mode = im.mode if im is not None else "tifffile"
            frames = int(getattr(im, "n_frames", 1) or 1) if im is not None else 1
    except PhotoError:
        raise
    except _NOT_READABLE as exc:
        raise _not_readable(path, exc, max_pixels) from exc
    except MemoryError as exc:
        raise PhotoError(path, "too large to decode in the memory available") from exc
    except ProfileError as exc:
        raise PhotoError(path, f"its colour profile cannot be applied ({exc})") from exc
    except Exception as exc:  # decoders fail in many ways on damaged data; all mean the same to the user
        detail = str(exc) or type(exc).__name__
        raise PhotoError(path, f"damaged or truncated image ({detail})") from exc

    try:
        rgb, colour = _to_srgb(dec, icc, keep_profile, warnings)
    except ProfileError as exc:
        raise PhotoError(path, f"its colour profile ({profile_name(icc)}) cannot be applied ({exc})") from exc
    alpha = dec.alpha
    if not dec.orientation_dropped and orientation != 1:
        rgb = apply_orientation(rgb, orientation)
        alpha = apply_orientation(alpha, orientation) if alpha is not None else None
    if im is None:
        warnings.append("read with a fallback TIFF decoder; its EXIF could not be kept")
    if frames > 1:  # an animated GIF/WebP/APNG or a multi-page TIFF: the editor and the models take one picture
        warnings.append(f"it has {frames} frames (animated or multi-page): only the first is upscaled")
    return Photo(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        source=path,
        format=fmt,
        bit_depth=dec.bit_depth,
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        icc_profile=icc,
        exif=exif,
        xmp=xmp,
        dpi=dpi,
        colour=colour,
        grey=dec.space == "L",
        warnings=warnings,
        info={"orientation": orientation, "mode": mode},
    )


def _tiff_icc(data: bytes) -> bytes | None:
    """The ICC profile of a TIFF that only tifffile could decode."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            tag = tf.pages[0].tags.get(34675)
            return bytes(tag.value) if tag is not None else None
    except Exception:  # noqa: BLE001 - the pixels are what matter; a missing profile means sRGB
        return None
