"""Writing photos: PNG (8/16), JPEG, WebP, TIFF (8/16) with ICC profile, EXIF, XMP and DPI, always atomically.

Pixels arrive as sRGB floats. When the source photo had another profile they are converted back to it (unless
the caller keeps sRGB) and that profile is embedded, so the file opens with the colours it had. EXIF comes from
the source with orientation reset (pixels are upright) and pixel dimensions updated; the DPI follows the save options'
policy: multiplied by the scale (the print keeps its size) or kept (the print grows), or set to the DPI asked for.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import atomic_write
from .color import ProfileError, from_srgb, grey_to_srgb, profile_space, srgb_bytes, srgb_to_grey
from .errors import PhotoError
from .formats import ALPHA_FORMATS, DEEP_FORMATS, FORMATS, format_for
from .metadata import EXIF_IFD, GPS_IFD, XMP_TAG, load_exif, output_exif, tiff_text_tags
from .photo import Photo
from .pixels import as_float, flatten, resample, to_uint8, to_uint16, upscale_alpha
from .png16 import encode_png16

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "SaveOptions", "format_for", "write_photo"]

DPI_POLICIES = ("keep-print-size", "keep-dpi")
_JPEG_MARKER_LIMIT = 65533  # one APP segment
_JPEG_XMP_LIMIT = _JPEG_MARKER_LIMIT - 29


@dataclass(frozen=True)
class SaveOptions:
    """How to encode. ``format`` None = from the file extension; ``bit_depth`` None = the source's (PNG/TIFF)."""

    format: str | None = None  # png, jpeg, webp, tiff
    bit_depth: int | None = None  # 8 or 16 (PNG and TIFF only; other formats are always 8)
    quality: int = 95  # JPEG and lossy WebP
    subsampling: str = "4:4:4"  # JPEG chroma subsampling: 4:4:4, 4:2:2, 4:2:0
    lossless: bool = False  # WebP
    compression: str = "deflate"  # TIFF: none, deflate, lzw (16-bit LZW needs imagecodecs, else deflate)
    keep_srgb: bool = False  # do not convert back to the source's profile; embed sRGB instead
    keep_metadata: bool = True  # EXIF, XMP, DPI (the colour profile is kept whenever the colours need it)
    #: keep-print-size: the DPI grows with the picture, so it prints at the source's size (sharper);
    #: keep-dpi: the source's DPI is kept, so it prints larger.
    dpi_policy: str = "keep-print-size"
    dpi: float | None = None  # write this DPI whatever the source had (a print target; sensors have none)
    size: tuple[int, int] | None = None  # write exactly this (width, height): Lanczos-resampled in float if needed
    keep_grey: bool = True  # a grey source gives a grey file (at its bit depth), not RGB with colour fringes

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
        if self.dpi_policy not in DPI_POLICIES:
            raise ValueError(f"DPI policy must be one of {', '.join(DPI_POLICIES)}")
        if self.dpi is not None and not 1 <= self.dpi <= 100000:
            raise ValueError("DPI must be between 1 and 100000")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError("the output size must be two positive numbers of pixels")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _colour_out(
    rgb: np.ndarray, like: Photo | None, options: SaveOptions, depth: int
) -> tuple[np.ndarray, bytes | None]:
    """The pixels to encode and the profile to embed, from sRGB ``rgb`` and the source photo's colour state."""
    if like is None or not like.icc_profile:
        return rgb, None
    icc = like.icc_profile
    space = profile_space(icc)
    if like.colour == "converted":
        if space == "RGB" and not options.keep_srgb:
            return from_srgb(rgb, icc, exact_8bit=depth == 8), icc
        return rgb, srgb_bytes()  # CMYK/Lab/grey sources: an RGB file cannot carry that profile; say sRGB
    if like.colour == "native" and space == "GRAY":
        # keep_profile on a grey photo: the grey tone curve maps each channel to sRGB (exact for grey pixels)
        out = np.stack([grey_to_srgb(rgb[..., c], icc)[..., c] for c in range(3)], axis=-1)
        return out, srgb_bytes()
    if space in ("RGB", None):  # sRGB-like, native RGB, or unreadable (kept byte for byte, never dropped)
        return rgb, icc
    log.warning("%s: its %s profile does not fit an RGB file; not embedded", like.source, space)
    return rgb, None


def _grey_out(rgb: np.ndarray, like: Photo) -> tuple[np.ndarray, bytes | None]:
    """One grey channel (H x W) from the model's RGB, in the source's grey encoding, and the profile to embed.

    Models work in RGB and give a grey photo faint colour fringes; the channel mean removes them and keeps the
    tone. Pixels in sRGB go back through the grey profile's tone curve when the source was converted from it.
    """
    grey = rgb.mean(axis=2, dtype=np.float32)
    icc = like.icc_profile or None
    space = profile_space(icc)
    if icc and space == "GRAY" and like.colour == "converted":
        return srgb_to_grey(grey, icc), icc
    if icc and space not in ("GRAY", None):  # an RGB/CMYK profile wrongly attached to grey pixels: not carried
        return grey, None
    return grey, icc


def _check_pixels(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = as_float(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise PhotoError(path, f"expected H x W x 3 pixels, got {rgb.shape}")
    if rgb.shape[2] == 4:
        rgb, alpha = rgb[..., :3], (rgb[..., 3] if alpha is None else alpha)
    if alpha is not None:
        alpha = as_float(alpha)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[..., 0]
        if alpha.ndim != 2:
            raise PhotoError(path, f"expected H x W alpha, got {alpha.shape}")
        if alpha.shape != rgb.shape[:2]:
            alpha = upscale_alpha(alpha, (rgb.shape[1], rgb.shape[0]))
    return rgb, alpha


def write_photo(
    path: str | Path,
    rgb: np.ndarray,
    *,
    like: Photo | None = None,
    scale: float = 1.0,
    options: SaveOptions | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write ``rgb`` (sRGB float32 H x W x 3 in [0, 1]) to ``path`` atomically, with ``like``'s metadata.

    ``like`` is the source photo: its profile, EXIF, XMP, DPI, bit depth and alpha (resized to the output when
    ``alpha`` is None) carry over. ``scale`` is output pixels per source pixel: the DPI (in the file and its EXIF)
    is multiplied by it under the ``keep-print-size`` policy and kept under ``keep-dpi``; ``options.dpi`` overrides
    both (and is written even without the source's metadata, since the user asked for it). ``options.size`` has
    the picture resampled to exactly that size first (the DPI then follows that size). Formats without alpha
    get the picture flattened on white. Raises :class:`PhotoError`; on any failure an existing file at ``path`` is
    left as it was.
    """
    path = Path(path)
    options = options or SaveOptions()
    rgb, alpha = _check_pixels(path, rgb, alpha)
    if options.size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(options.size):
        rgb = resample(rgb, options.size)  # a target size: the render was at the next model scale up
        alpha = upscale_alpha(alpha, options.size) if alpha is not None else None
        if like is not None:  # the DPI follows the size actually written
            scale = max(options.size) / max(like.width, like.height)
    if like is not None and _same_file(path, like.source):
        raise PhotoError(path, "refusing to overwrite the source photo; choose another name")
    fmt = format_for(path, options)
    h, w = rgb.shape[:2]
    if alpha is None and like is not None and like.alpha is not None:
        alpha = upscale_alpha(like.alpha, (w, h))
    depth = options.bit_depth or (like.bit_depth if like is not None else 8)
    depth = depth if fmt in DEEP_FORMATS else 8
    if alpha is not None and fmt not in ALPHA_FORMATS:
        rgb, alpha = flatten(rgb, alpha), None

    try:
        if like is not None and like.grey and options.keep_grey:
            grey, icc = _grey_out(rgb, like)
            # WebP has no grey mode: neutral RGB (equal channels) is the nearest
            rgb = np.repeat(grey[..., None], 3, axis=2) if fmt == "webp" else grey[..., None]
        else:
            rgb, icc = _colour_out(rgb, like, options, depth)
    except ProfileError as exc:
        raise PhotoError(path, f"cannot convert back to the photo's colour profile ({exc})") from exc
    meta = like if options.keep_metadata and like is not None else None
    exif = xmp = None
    factor = scale if options.dpi_policy == "keep-print-size" else 1.0
    dpi = (float(options.dpi), float(options.dpi)) if options.dpi else None
    if meta is not None:
        if meta.exif:
            limit = _JPEG_MARKER_LIMIT if fmt == "jpeg" else None
            exif = output_exif(meta.exif, (w, h), factor, max_bytes=limit, dpi=options.dpi)
        xmp = meta.xmp
        if xmp and fmt == "jpeg" and len(xmp) > _JPEG_XMP_LIMIT:
            log.warning("%s: XMP of %d bytes does not fit in a JPEG segment; not written", path, len(xmp))
            xmp = None
        if dpi is None and meta.dpi:
            dpi = (meta.dpi[0] * factor, meta.dpi[1] * factor)
    pixels = rgb if alpha is None else np.dstack([rgb, alpha])

    def write(tmp: Path) -> None:
        if depth == 16 and fmt == "png":
            tmp.write_bytes(encode_png16(to_uint16(pixels), icc=icc, dpi=dpi, exif=exif, xmp=xmp))
        elif fmt == "tiff":  # 8 and 16 bits alike: one writer keeps the EXIF and GPS sub-IFDs with any compression
            _write_tiff(tmp, to_uint16(pixels) if depth == 16 else to_uint8(pixels), icc, exif, xmp, dpi,
                        options.compression)  # fmt: skip
        else:
            _write_pillow(tmp, fmt, to_uint8(pixels), icc, exif, xmp, dpi, options)

    raw = pixels.shape[0] * pixels.shape[1] * (pixels.shape[2] if pixels.ndim == 3 else 1) * depth // 8
    try:  # the size hint for a full disk's message: lossless formats at about half their raw size, lossy at 1/10
        return atomic_write(path, write, size_hint=raw // 2 if fmt in ("png", "tiff") else raw // 10)
    except PhotoError:
        raise
    except MemoryError as exc:
        raise PhotoError(path, f"not enough memory to encode {w} x {h} as {fmt.upper()}") from exc
    except Exception as exc:  # an encoder refusing these pixels or this metadata: one clear error, no half file
        raise PhotoError(path, f"cannot encode as {fmt.upper()} ({exc or type(exc).__name__})") from exc


def _write_pillow(tmp: Path, fmt: str, pixels: np.ndarray, icc: bytes | None, exif: bytes | None,
                  xmp: bytes | None, dpi: tuple[float, float] | None, options: SaveOptions) -> None:  # fmt: skip
    img = Image.fromarray(
        pixels if pixels.shape[2] > 1 else pixels[..., 0], {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    )
    kw: dict[str, object] = {}
    if icc:
        kw["icc_profile"] = icc
    if dpi:
        kw["dpi"] = dpi
    if fmt == "png":
        if exif:
            kw["exif"] = exif
        if xmp:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
            kw["pnginfo"] = info
        img.save(tmp, "PNG", compress_level=6, **kw)
    elif fmt == "jpeg":
        sub = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[options.subsampling]
        img.save(tmp, "JPEG", quality=options.quality, subsampling=sub, optimize=True,
                 **({"exif": exif} if exif else {}), **({"xmp": xmp} if xmp else {}), **kw)  # fmt: skip
    elif fmt == "webp":
        img.save(tmp, "WEBP", quality=options.quality, lossless=options.lossless, method=4,
                 **({"exif": exif} if exif else {}), **({"xmp": xmp} if xmp else {}), **kw)  # fmt: skip
    else:
        raise ValueError(f"no Pillow writer for {fmt}")  # TIFF goes through _write_tiff


def _write_tiff(tmp: Path, arr: np.ndarray, icc: bytes | None, exif: bytes | None, xmp: bytes | None,
                  dpi: tuple[float, float] | None, compression: str) -> None:  # fmt: skip
    """8- or 16-bit TIFF via tifffile, with the ICC profile, resolution, XMP, the EXIF text tags in IFD0, and the EXIF
    and GPS sub-IFDs (exposure, lens, dates, position) appended after the picture by :func:`_append_sub_ifds`.

    Pillow's compressed TIFF goes through libtiff, which refuses sub-IFDs, so a deflate TIFF from a JPEG kept only
    IFD0 (make, model, date) and dropped the exposure, ISO and original date; one writer for every depth keeps them.
    """
    import tifffile

    extratags: list[tuple[int, str, int, object, bool]] = [
        (tag, "s", 0, value, True) for tag, value in tiff_text_tags(exif).items()
    ]
    subs = _sub_ifds(exif)
    extratags += [(_PLACEHOLDER[tag], "I", 1, 0, True) for tag in subs]  # see _append_sub_ifds
    if xmp:
        extratags.append((XMP_TAG, "B", len(xmp), xmp, True))
    kwargs: dict[str, object] = {}
    if dpi:
        kwargs.update(resolution=(dpi[0], dpi[1]), resolutionunit="INCH")
    if icc:
        kwargs["iccprofile"] = icc
    comp = {"none": None, "deflate": "zlib", "lzw": "lzw"}[compression]
    if comp == "lzw":
        try:
            import imagecodecs  # noqa: F401  (tifffile needs it to write LZW)
        except ImportError:
            comp = "zlib"
    colour = arr.shape[2] >= 3
    tifffile.imwrite(tmp, arr, photometric="rgb" if colour else "minisblack", compression=comp,
                     predictor=comp is not None, extratags=extratags,
                     extrasamples=("unassalpha",) if arr.shape[2] in (2, 4) else None, byteorder="<",
                     **kwargs)  # fmt: skip
    if subs:
        _append_sub_ifds(tmp, subs)


# tifffile refuses to write the EXIF and GPS pointer tags, so each is written under the tag number just below it
# (nothing lies in between, so IFD0 stays sorted) and renumbered afterwards.
_PLACEHOLDER = {EXIF_IFD: EXIF_IFD - 1, GPS_IFD: GPS_IFD - 1}


def _sub_ifds(exif: bytes | None) -> dict[int, dict[int, object]]:
    """The non-empty EXIF and GPS sub-IFDs of ``exif``, by pointer tag."""
    if not exif:
        return {}
    e = load_exif(exif)
    return {tag: dict(sub) for tag in (EXIF_IFD, GPS_IFD) if (sub := e.get_ifd(tag))}


def _append_sub_ifds(tmp: Path, subs: dict[int, dict[int, object]]) -> None:
    """Append the EXIF/GPS IFDs to a little-endian TIFF written by tifffile and point IFD0's placeholders at them.

    tifffile cannot write sub-IFDs; Pillow's IFD encoder lays one out for a given file offset, so each is encoded
    for the end of the file, and the placeholder entry in IFD0 gets the pointer's tag number and that offset.
    """
    import struct

    import tifffile
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    with tifffile.TiffFile(tmp) as tf:
        if tf.is_bigtiff:
            log.warning("%s: a BigTIFF cannot take the EXIF sub-IFDs here; only IFD0's EXIF text is kept", tmp)
            return
        entries = {tag: tf.pages[0].tags[_PLACEHOLDER[tag]].offset for tag in subs}
    with open(tmp, "r+b") as fh:
        offset = fh.seek(0, os.SEEK_END)
        for tag, values in subs.items():
            offset += fh.write(b"\0" * ((-offset) % 4))
            ifd = ImageFileDirectory_v2(b"II*\x00\x00\x00\x00\x00", group=tag)
            for key, value in values.items():
                ifd[key] = value
            blob = ifd.tobytes(offset)
            if offset + len(blob) >= 1 << 32:
                log.warning("%s: too large for the EXIF sub-IFDs; only IFD0's EXIF text is kept", tmp)
                return
            fh.seek(entries[tag])  # entry: tag (2 bytes), type (2), count (4), value (4)
            fh.write(struct.pack("<HHII", tag, 4, 1, offset))
            fh.seek(offset)
            offset += fh.write(blob)
