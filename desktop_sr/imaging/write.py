"""Writing photos: PNG (8/16), JPEG, WebP, TIFF (8/16) with ICC profile, EXIF, XMP and DPI, always atomically.

Pixels arrive as sRGB floats. When the source photo had another profile they are converted back to it (unless
the caller keeps sRGB) and that profile is embedded, so the file opens with the colours it had. EXIF comes from
the source with orientation reset (pixels are upright), pixel dimensions updated and DPI multiplied by the scale.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import atomic_write
from .color import from_srgb, srgb_bytes
from .errors import PhotoError
from .orientation import ORIENTATION_TAG
from .photo import Photo

FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".webp": "webp", ".tif": "tiff",
              ".tiff": "tiff"}  # fmt: skip
_EXIF_IFD, _PIXEL_X, _PIXEL_Y, _X_RES, _Y_RES = 0x8769, 0xA002, 0xA003, 0x011A, 0x011B


@dataclass(frozen=True)
class SaveOptions:
    """How to encode. ``format`` None = from the file extension; ``bit_depth`` None = the source's (PNG/TIFF)."""

    format: str | None = None  # png, jpeg, webp, tiff
    bit_depth: int | None = None  # 8 or 16 (PNG and TIFF only)
    quality: int = 95  # JPEG and lossy WebP
    subsampling: str = "4:4:4"  # JPEG chroma subsampling: 4:4:4, 4:2:2, 4:2:0
    lossless: bool = False  # WebP
    compression: str = "deflate"  # TIFF: none, deflate, lzw
    keep_srgb: bool = False  # do not convert back to the source's profile; embed sRGB instead
    keep_metadata: bool = True

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.bit_depth not in (None, 8, 16):
            raise ValueError("bit depth must be 8 or 16")
        if not 1 <= self.quality <= 100:
            raise ValueError("quality must be between 1 and 100")
        if self.subsampling not in ("4:4:4", "4:2:2", "4:2:0"):
            raise ValueError("subsampling must be 4:4:4, 4:2:2 or 4:2:0")
        if self.compression not in ("none", "deflate", "lzw"):
            raise ValueError("TIFF compression must be none, deflate or lzw")


def format_for(path: Path, options: SaveOptions) -> str:
    if options.format:
        return options.format
    return _BY_SUFFIX.get(path.suffix.lower(), "png")


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upscale of an alpha plane to (width, height), clipped to [0, 1]."""
    img = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32), mode="F")
    return np.clip(np.asarray(img.resize(size, Image.Resampling.BICUBIC), dtype=np.float32), 0.0, 1.0)


def to_uint8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _updated_exif(exif: bytes, size: tuple[int, int], scale: float) -> bytes:
    """Source EXIF with orientation 1, the new pixel dimensions and the DPI scaled by ``scale``."""
    e = Image.Exif()
    e.load(exif)
    e[ORIENTATION_TAG] = 1
    for tag in (_X_RES, _Y_RES):
        if tag in e:
            try:
                e[tag] = float(e[tag]) * scale
            except (TypeError, ValueError, ZeroDivisionError):
                del e[tag]
    sub = e.get_ifd(_EXIF_IFD)
    sub[_PIXEL_X], sub[_PIXEL_Y] = size
    return e.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _write_png16(tmp: Path, arr: np.ndarray, icc: bytes | None, exif: bytes | None, xmp: bytes | None,
                 dpi: tuple[float, float] | None) -> None:  # fmt: skip
    """16-bit PNG via pypng (Pillow has no 16-bit RGB), then the metadata chunks inserted after IHDR."""
    import png

    h, w, c = arr.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16, compression=6).write(buf, arr.reshape(h, w * c))
    data = buf.getvalue()
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    if xmp:
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    ihdr_end = 8 + 8 + 13 + 4
    tmp.write_bytes(data[:ihdr_end] + extra + data[ihdr_end:])


def _tiff_text_tags(exif: bytes | None) -> dict[int, str]:
    """The EXIF fields TIFF keeps in its first IFD (make, model, date, artist, copyright, title).

    TIFF writers cannot carry a full EXIF sub-IFD from another file, so these are what a TIFF export keeps.
    """
    if not exif:
        return {}
    e = Image.Exif()
    e.load(exif)
    tags = (0x010F, 0x0110, 0x0132, 0x013B, 0x8298, 0x010E)
    return {t: e[t] for t in tags if isinstance(e.get(t), str) and e[t]}


def _write_tiff16(tmp: Path, arr: np.ndarray, icc: bytes | None, exif: bytes | None,
                  dpi: tuple[float, float] | None, compression: str) -> None:  # fmt: skip
    """16-bit TIFF via tifffile, with the ICC profile, resolution and the main EXIF text tags in IFD0."""
    import tifffile

    extratags = [(tag, "s", 0, value, True) for tag, value in _tiff_text_tags(exif).items()]
    kwargs: dict[str, object] = {}
    if dpi:
        kwargs.update(resolution=(dpi[0], dpi[1]), resolutionunit="INCH")
    if icc:
        kwargs["iccprofile"] = icc
    comp = {"none": None, "deflate": "zlib", "lzw": "lzw"}[compression]
    if comp == "lzw":
        try:
            import imagecodecs  # noqa: F401  (tifffile needs it for LZW)
        except ImportError:
            comp = "zlib"
    tifffile.imwrite(tmp, arr, photometric="rgb", compression=comp, extratags=extratags,
                     extrasamples=("unassalpha",) if arr.shape[2] == 4 else None, **kwargs)  # fmt: skip


def write_photo(
    path: str | Path,
    rgb: np.ndarray,
    *,
    like: Photo | None = None,
    scale: float = 1.0,
    options: SaveOptions | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write ``rgb`` (sRGB float32 H x W x 3 in [0, 1]) to ``path`` atomically, with ``like``'s metadata."""
    path = Path(path)
    options = options or SaveOptions()
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PhotoError(path, f"expected H x W x 3 pixels, got {rgb.shape}")
    if like is not None and path.exists() and path.resolve() == like.source.resolve():
        raise PhotoError(path, "refusing to overwrite the source photo; choose another name")
    fmt = format_for(path, options)
    h, w = rgb.shape[:2]
    if alpha is None and like is not None and like.alpha is not None:
        alpha = upscale_alpha(like.alpha, (w, h))
    depth = options.bit_depth or (like.bit_depth if like is not None else 8)
    depth = depth if fmt in ("png", "tiff") else 8

    icc: bytes | None = None
    if like is not None and like.icc_profile:
        if like.converted_from_icc and not options.keep_srgb:
            try:
                rgb = from_srgb(rgb, like.icc_profile, exact_8bit=depth == 8)
            except Exception as exc:  # noqa: BLE001 - keep the photo, embed sRGB, say so
                raise PhotoError(path, f"cannot convert back to the photo's colour profile ({exc})") from exc
            icc = like.icc_profile
        elif like.converted_from_icc:
            icc = srgb_bytes()
        else:
            icc = like.icc_profile
    meta = options.keep_metadata and like is not None
    exif = _updated_exif(like.exif, (w, h), scale) if meta and like.exif else None  # type: ignore[union-attr]
    xmp = like.xmp if meta else None  # type: ignore[union-attr]
    dpi = (like.dpi[0] * scale, like.dpi[1] * scale) if meta and like.dpi else None  # type: ignore[union-attr]
    if not options.keep_metadata:
        icc = icc if (like is not None and like.converted_from_icc and not options.keep_srgb) else None

    has_alpha = alpha is not None and fmt != "jpeg"
    pixels = np.dstack([rgb, alpha]) if has_alpha else rgb

    def write(tmp: Path) -> None:
        if depth == 16 and fmt == "png":
            _write_png16(tmp, to_uint16(pixels), icc, exif, xmp, dpi)
            return
        if depth == 16 and fmt == "tiff":
            _write_tiff16(tmp, to_uint16(pixels), icc, exif, dpi, options.compression)
            return
        img = Image.fromarray(to_uint8(pixels), "RGBA" if has_alpha else "RGB")
        kw: dict[str, object] = {}
        if icc:
            kw["icc_profile"] = icc
        if exif and fmt != "tiff":
            kw["exif"] = exif
        if dpi:
            kw["dpi"] = dpi
        if fmt == "png":
            if xmp:
                info = PngImagePlugin.PngInfo()
                info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
                kw["pnginfo"] = info
            img.save(tmp, "PNG", compress_level=6, **kw)
        elif fmt == "jpeg":
            sub = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[options.subsampling]
            img.save(tmp, "JPEG", quality=options.quality, subsampling=sub, optimize=True,
                     **({"xmp": xmp} if xmp else {}), **kw)  # fmt: skip
        elif fmt == "webp":
            img.save(tmp, "WEBP", quality=options.quality, lossless=options.lossless, method=4,
                     **({"xmp": xmp} if xmp else {}), **kw)  # fmt: skip
        else:
            comp = {"none": None, "deflate": "tiff_deflate", "lzw": "tiff_lzw"}[options.compression]
            img.save(tmp, "TIFF", compression=comp, tiffinfo=_tiff_text_tags(exif), **kw)

    return atomic_write(path, write)
