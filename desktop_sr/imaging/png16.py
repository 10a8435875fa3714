"""A small 16-bit PNG encoder in numpy: Pillow cannot write 16-bit RGB(A), and pypng writes unfiltered rows.

Rows are filtered the way libpng does it (each row takes whichever of None/Sub/Up/Paeth gives the smallest sum of
absolute signed bytes), which all vectorise because the encoder knows every raw byte up front. That makes
16-bit exports both fast and about as small as other tools' files. Metadata chunks (iCCP, pHYs, eXIf, iTXt XMP)
go before the image data, where readers look for them.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _filtered(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Filter type byte + filtered bytes per row (H x (1 + rowbytes)), adaptive like libpng's default."""
    x = raw.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]  # left
    b = np.zeros_like(x)
    b[1:] = x[:-1]  # up
    c = np.zeros_like(x)
    c[1:, bpp:] = x[:-1, :-bpp]  # up-left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - paeth]) & 0xFF  # None, Sub, Up, Paeth (Average left out)
    signed = np.where(candidates > 127, 256 - candidates, candidates)
    best = signed.sum(axis=2, dtype=np.int64).argmin(axis=0)
    choice = np.array([0, 1, 2, 4], dtype=np.uint8)[best]
    rows = np.take_along_axis(candidates, best[None, :, None], axis=0)[0].astype(np.uint8)
    return np.concatenate([choice[:, None], rows], axis=1)


def encode_png16(
    pixels: np.ndarray,
    *,
    icc: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    level: int = 6,
) -> bytes:
    """``pixels`` uint16 H x W x C (C = 1..4) -> PNG file bytes at 16 bits per sample, with metadata chunks."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w, c = pixels.shape
    raw = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    body = [_SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _COLOUR_TYPE[c], 0, 0, 0))]
    if icc:
        body.append(chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        body.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        body.append(chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if xmp:
        body.append(chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    compressor = zlib.compressobj(level)
    idat = []
    step = max(1, (1 << 22) // max(1, raw.shape[1]))  # about 4 MB of rows at a time bounds the memory used
    for start in range(0, h, step):
        block = raw[max(0, start - 1) : start + step]  # one row of context for Up/Paeth
        rows = _filtered(block, 2 * c)[1:] if start else _filtered(block, 2 * c)
        idat.append(compressor.compress(rows.tobytes()))
    idat.append(compressor.flush())
    body.append(chunk(b"IDAT", b"".join(idat)))
    body.append(chunk(b"IEND", b""))
    return b"".join(body)
