"""Decoding pixels: Pillow for everything, at full 16-bit depth where Pillow itself would cut to 8 bits.

Pillow opens 16-bit RGB(A) PNG and TIFF as 8-bit "RGB": its C decoder unfilters/decompresses the full data and
only the final unpack keeps the high byte. Decoding twice with a big- and a little-endian unpacker yields both
bytes of every sample, so 16-bit photos are read exactly and fast (50 ms for 3 MP instead of seconds in pure
Python), including LZW and deflate TIFFs through libtiff. When a file is stored in a way that trick does not
cover, pypng (PNG) and tifffile (TIFF) decode it instead.

Pillow's decompression-bomb limit is process-wide; :func:`open_image` sets it to the caller's ``max_pixels``
for the duration of one decode (under a lock) so a 150-megapixel photo is not refused by Pillow's default.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

_PILLOW_LIMIT_LOCK = threading.Lock()
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class TooManyPixels(Exception):
    """The header announces more pixels than allowed (raised before any pixel is decoded)."""

    def __init__(self, size: tuple[int, int], limit: int) -> None:
        super().__init__(f"{size[0]} x {size[1]} exceeds {limit:,} pixels")
        self.size, self.limit = size, limit


@contextlib.contextmanager
def pillow_limits(max_pixels: int) -> Iterator[None]:
    """Let Pillow accept images up to ``max_pixels`` (we enforce the limit ourselves) while the block runs.

    Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we set it to ``max_pixels`` and mute the
    warning, because :func:`check_size` already refused anything larger. The lock keeps concurrent reads from
    restoring each other's values half-way.
    """
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max(int(max_pixels), 1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def check_size(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"the header says {size[0]} x {size[1]} pixels")
    if size[0] * size[1] > max_pixels:
        raise TooManyPixels(size, max_pixels)


@dataclass
class Decoded:
    """Pixels as decoded: ``values`` float32 H x W x C (C = 1 grey, 3 RGB) in [0, 1], plus alpha and depth.

    ``space`` is the colour space the values are in: "L", "RGB", or "sRGB" when decoding already converted
    them (CMYK and Lab photos, which only make sense through their profile).
    """

    values: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    space: str
    orientation_dropped: bool = False  # Pillow applied EXIF orientation while decoding and removed the tag (TIFF)


def _split_channels(f: np.ndarray, space: str, depth: int) -> Decoded:
    """Float H x W x {1,2,3,4} -> values (grey or RGB) and alpha."""
    if f.ndim == 2:
        f = f[..., None]
    channels = f.shape[2]
    if channels in (1, 2):
        values, alpha = f[..., :1], (f[..., 1] if channels == 2 else None)
        space = "L"
    else:
        values, alpha = f[..., :3], (f[..., 3] if channels >= 4 else None)
    return Decoded(
        np.ascontiguousarray(values, dtype=np.float32),
        None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        depth,
        space,
    )


# -- 16-bit through Pillow's own decoders ----------------------------------------------------------------------------
def _deep_rawmode(im: Image.Image) -> str | None:
    """The 16-bit rawmode ("RGB;16B", "RGBA;16N", ...) when every tile unpacks one, else None."""
    rawmodes = set()
    for tile in im.tile:
        args = tile.args
        raw = args[0] if isinstance(args, tuple) and args else args
        if not isinstance(raw, str):
            return None
        rawmodes.add(raw)
    if len(rawmodes) != 1:
        return None
    raw = rawmodes.pop()
    base, _, order = raw.partition(";")
    return raw if base in ("RGB", "RGBA") and order in ("16B", "16L", "16N") and im.mode == base else None


def _decode_with(data: bytes, rawmode: str) -> tuple[np.ndarray, bool]:
    """Decode with another unpacker; also says whether Pillow dropped the orientation tag (it applies it for TIFF).

    Nothing may touch EXIF before the load: for PNG that would load the image with the original unpacker.
    """
    im = Image.open(io.BytesIO(data))
    tiles = []
    for tile in im.tile:
        args = tile.args
        tiles.append(tile._replace(args=(rawmode, *args[1:]) if isinstance(args, tuple) else rawmode))
    im.tile = tiles
    im.load()
    return np.asarray(im), 0x0112 not in im.getexif()


def _pillow_deep(data: bytes, rawmode: str) -> tuple[np.ndarray, bool]:
    """Decode a 16-bit RGB(A) file exactly: uint16 H x W x C from two 8-bit decodes (high and low bytes).

    Also returns whether Pillow dropped the orientation tag, having applied it."""
    base, _, order = rawmode.partition(";")
    big_endian = order == "16B" or (order == "16N" and sys.byteorder == "big")
    via_b, dropped = _decode_with(data, f"{base};16B")  # takes byte 0 of each sample
    via_l, _ = _decode_with(data, f"{base};16L")  # takes byte 1
    hi, lo = (via_b, via_l) if big_endian else (via_l, via_b)
    return (hi.astype(np.uint16) << 8) | lo, dropped


def _pypng_deep(data: bytes) -> np.ndarray:
    """16-bit PNG through pypng (grey+alpha, and anything Pillow's unpackers do not cover). Slow but exact."""
    import png

    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
    return arr


def tifffile_pixels(data: bytes, max_pixels: int) -> tuple[Decoded, int]:
    """A TIFF Pillow cannot decode (planar 16-bit, float, associated alpha) through tifffile.

    Returns the pixels and the stored EXIF orientation, which tifffile does not apply.
    """
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        page = tf.pages[0]
        shape = page.shape
        h, w = (shape[1], shape[2]) if page.planarconfig == 2 and len(shape) == 3 else (shape[0], shape[1])
        check_size((int(w), int(h)), max_pixels)
        arr = page.asarray()
        orient_tag = page.tags.get(274)
        orientation = int(orient_tag.value) if orient_tag is not None else 1
        extra = tuple(getattr(page, "extrasamples", ()) or ())
        photometric = int(page.photometric)
        planar = page.planarconfig == 2
    if photometric not in (1, 2):  # MINISBLACK, RGB
        raise ValueError(f"TIFF colour model {photometric} is not supported")
    if planar and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype.kind == "f":
        f, depth = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0), 16
    elif arr.dtype in (np.uint8, np.uint16):
        depth = 8 if arr.dtype == np.uint8 else 16
        f = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        raise ValueError(f"TIFF sample type {arr.dtype} is not supported")
    dec = _split_channels(f, "RGB", depth)
    if dec.alpha is not None and extra[:1] == (1,):  # associated (premultiplied) alpha -> straight
        a = dec.alpha[..., None]
        dec.values = np.where(a > 0, np.clip(dec.values / np.maximum(a, 1e-6), 0.0, 1.0), 0.0).astype(np.float32)
    return dec, (orientation if 1 <= orientation <= 8 else 1)


def is_tiff(data: bytes) -> bool:
    return data[:4] in _TIFF_MAGIC


def deep_pixels(im: Image.Image, data: bytes, max_pixels: int) -> Decoded | None:
    """Full-depth pixels for 16-bit RGB(A) PNG/TIFF (``im`` opened, not yet loaded), or None for other files."""
    rawmode = _deep_rawmode(im)
    if rawmode is not None:
        try:
            arr, dropped = _pillow_deep(data, rawmode)
            dec = _split_channels(arr.astype(np.float32) / 65535.0, "RGB", 16)
            dec.orientation_dropped = dropped
            return dec
        except (OSError, ValueError, KeyError):  # an unpacker this Pillow lacks: fall through to pypng/tifffile
            pass
    if data[:8] == _PNG_MAGIC and len(data) > 25 and data[24] == 16 and im.mode not in ("I;16", "I;16B", "I"):
        return _split_channels(_pypng_deep(data).astype(np.float32) / 65535.0, "RGB", 16)
    if is_tiff(data) and im.mode in ("RGB", "RGBA") and _tiff_bits(im) > 8:
        return tifffile_pixels(data, max_pixels)[0]  # e.g. planar 16-bit, which Pillow reads as scrambled bytes
    return None


def _tiff_bits(im: Image.Image) -> int:
    bits = getattr(im, "tag_v2", {}).get(258, 8)
    try:
        return max(bits) if isinstance(bits, tuple) else int(bits)
    except (TypeError, ValueError):
        return 8


def pillow_pixels(im: Image.Image, icc_space: str | None, icc: bytes | None) -> Decoded:
    """Pixels of a loaded Pillow image in any mode, keeping grey as one channel and 16-bit grey at 16 bits.

    CMYK and Lab are converted to sRGB here, through their embedded profile when there is one, since no part
    of the app can work in those spaces.
    """
    from .color import image_to_srgb

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im).astype(np.uint16)
        dec = _split_channels(a.astype(np.float32) / 65535.0, "L", 16)
        trns = im.info.get("transparency")
        if isinstance(trns, int):
            dec.alpha = (a != trns).astype(np.float32)
        return dec
    if mode in ("I", "F"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        top = 1.0 if mode == "F" and a.max(initial=0) <= 1.0 else (65535.0 if a.max(initial=0) > 255 else 255.0)
        return _split_channels(np.clip(a, 0, top) / top, "L", 8 if top == 255.0 else 16)
    if mode in ("CMYK", "LAB"):
        if icc and icc_space == ("CMYK" if mode == "CMYK" else "LAB"):
            rgb = image_to_srgb(im, icc)
        elif mode == "LAB":
            from PIL import ImageCms

            rgb = ImageCms.applyTransform(
                im, ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
            )
        else:
            rgb = im.convert("RGB")
        return _split_channels(np.asarray(rgb, dtype=np.float32) / 255.0, "sRGB", 8)
    if mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("PA", "RGBa", "La", "RGBX", "YCbCr", "HSV"):
        im = im.convert("RGBA" if mode in ("PA", "RGBa") else ("LA" if mode == "La" else "RGB"))
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in mode else "RGB")
    return _split_channels(np.asarray(im, dtype=np.float32) / 255.0, "RGB", 8)
