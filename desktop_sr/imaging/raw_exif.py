"""The camera's EXIF from a RAW file, for the exported picture: make, model, lens, exposure, dates, GPS.

LibRaw exposes only a handful of shooting facts, so the tags are read from the file. Most RAW formats are TIFF
structures (DNG, CR2, NEF, ARW, PEF, SRW) and Pillow parses them; ORF and RW2 are TIFF with their own magic number;
RAF carries a JPEG whose EXIF describes the shot; CR3 is an ISO media file with the TIFF blocks in ``CMT`` boxes.

Only what describes the photo travels. Tags that describe the RAW data (CFA pattern, black and white levels, colour
matrices, DNG private data, strip offsets) mean nothing in an RGB file, and maker notes are dropped because their
offsets point into the RAW file (Canon's) and they are mostly development data. Facts LibRaw knows but the tags lack
(a lens model stored only in a maker note, say) fill the gaps.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import struct
from fractions import Fraction

from PIL import Image, TiffImagePlugin

from .metadata import EXIF_IFD, GPS_IFD, MAKER_NOTE, ORIENTATION_TAG

log = logging.getLogger(__name__)

# IFD0 tags that describe the photo (the rest of a RAW's IFD0 describes its sensor data or preview).
_IFD0_KEEP = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)  # description, make, model, software,
# date, artist, copyright
# EXIF-IFD tags some RAW formats (TIFF-EP, many DNGs) keep in IFD0; they move to the EXIF IFD of the output.
_EXIF_IN_IFD0 = frozenset(
    {0x829A, 0x829D, 0x8822, 0x8827, 0x8830, 0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9201, 0x9202, 0x9204, 0x9205,
     0x9206, 0x9207, 0x9208, 0x9209, 0x920A, 0x9291, 0x9292, 0xA405, 0xA431, 0xA432, 0xA433, 0xA434, 0xA435}
)  # fmt: skip
# EXIF-IFD tags that are offsets into the source file, or that the writer sets for the new picture.
_EXIF_DROP = frozenset({MAKER_NOTE, 0xA005, 0xA002, 0xA003})
EXPOSURE_TIME, F_NUMBER, ISO, DATE_ORIGINAL, FOCAL_LENGTH, LENS_MAKE, LENS_MODEL = (
    0x829A, 0x829D, 0x8827, 0x9003, 0x920A, 0xA433, 0xA434
)  # fmt: skip
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


def _load(block: bytes) -> Image.Exif:
    e = Image.Exif()
    e.load(block)
    return e


def _tiff_block(data: bytes) -> bytes | None:
    """The file as a TIFF structure Pillow can parse, for TIFF-based RAW formats (patching ORF/RW2 magic)."""
    head = data[:4]
    if head in (b"II*\x00", b"MM\x00*"):
        return data
    if head in (b"IIRO", b"IIRS", b"IIU\x00"):  # Olympus ORF, Panasonic RW2: little-endian TIFF, other magic
        return b"II*\x00" + data[4:]
    if head == b"MMOR":
        return b"MM\x00*" + data[4:]
    return None


def _raf_jpeg(data: bytes) -> bytes | None:
    """The JPEG inside a Fujifilm RAF (its offset and length are big-endian at bytes 84 and 88)."""
    if not data.startswith(b"FUJIFILMCCD-RAW") or len(data) < 92:
        return None
    offset, length = struct.unpack(">II", data[84:92])
    jpeg = data[offset : offset + length]
    return jpeg if jpeg[:2] == b"\xff\xd8" else None


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """ISO media boxes between ``start`` and ``end``: type -> (payload start, payload end); the first of each."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        if kind == b"uuid":
            kind = b"uuid" + data[pos + header : pos + header + 16]
            header += 16
        found.setdefault(kind, (pos + header, pos + size))
        pos += size
    return found


def _cr3_blocks(data: bytes) -> dict[str, bytes]:
    """Canon CR3: the TIFF blocks CMT1 (IFD0), CMT2 (EXIF) and CMT4 (GPS) from moov/uuid(Canon)."""
    if data[4:12] != b"ftypcrx ":
        return {}
    top = _boxes(data, 0, len(data))
    if b"moov" not in top:
        return {}
    canon = _boxes(data, *top[b"moov"]).get(b"uuid" + _CANON_UUID)
    if canon is None:
        return {}
    inner = _boxes(data, *canon)
    blocks = {}
    for name in ("CMT1", "CMT2", "CMT4"):
        if (span := inner.get(name.encode())) is not None:
            blocks[name] = data[span[0] : span[1]]
    return blocks


def _file_tags(data: bytes) -> tuple[dict[int, object], dict[int, object], dict[int, object]]:
    """(IFD0, EXIF IFD, GPS IFD) of the RAW file, each a tag -> value dict; empty where the format hides them."""
    block = _tiff_block(data)
    if block is None and (jpeg := _raf_jpeg(data)) is not None:
        exif = Image.open(io.BytesIO(jpeg)).getexif()
        return dict(exif), dict(exif.get_ifd(EXIF_IFD)), dict(exif.get_ifd(GPS_IFD))
    if block is not None:
        e = _load(block)
        return dict(e), dict(e.get_ifd(EXIF_IFD)), dict(e.get_ifd(GPS_IFD))
    cr3 = _cr3_blocks(data)
    if cr3:
        ifd0 = dict(_load(cr3["CMT1"])) if "CMT1" in cr3 else {}
        exif = dict(_load(cr3["CMT2"])) if "CMT2" in cr3 else {}
        gps = dict(_load(cr3["CMT4"])) if "CMT4" in cr3 else {}
        return ifd0, exif, gps
    return {}, {}, {}


def _rational(value: float, *, max_denominator: int = 10000) -> TiffImagePlugin.IFDRational:
    f = Fraction(value).limit_denominator(max_denominator)
    return TiffImagePlugin.IFDRational(f.numerator, f.denominator)


def _fill_from_libraw(exif: dict[int, object], ifd0: dict[int, object], facts: dict[str, object]) -> None:
    """Add the shooting facts LibRaw decoded (often from maker notes) where the EXIF tags are missing."""

    def put(tag: int, value: object) -> None:
        if tag not in exif and value:
            exif[tag] = value

    exposure = float(facts.get("exposure") or 0)  # type: ignore[arg-type]
    if exposure > 0:
        put(EXPOSURE_TIME, _rational(exposure, max_denominator=100000))
    aperture = float(facts.get("aperture") or 0)  # type: ignore[arg-type]
    if aperture > 0:
        put(F_NUMBER, _rational(round(aperture, 1)))
    iso = float(facts.get("iso") or 0)  # type: ignore[arg-type]
    if iso > 0:
        put(ISO, min(int(round(iso)), 65535))
    focal = float(facts.get("focal_length") or 0)  # type: ignore[arg-type]
    if focal > 0:
        put(FOCAL_LENGTH, _rational(round(focal, 1)))
    stamp = facts.get("timestamp")
    if isinstance(stamp, _dt.datetime) and stamp.year > 1970:
        put(DATE_ORIGINAL, stamp.strftime("%Y:%m:%d %H:%M:%S"))
    put(LENS_MODEL, str(facts.get("lens_model") or "").strip())
    put(LENS_MAKE, str(facts.get("lens_make") or "").strip())
    artist = str(facts.get("artist") or "").strip()
    if artist and 0x013B not in ifd0:
        ifd0[0x013B] = artist


def raw_exif(data: bytes, facts: dict[str, object], warnings: list[str]) -> bytes | None:
    """Portable EXIF bytes for the developed photo (orientation 1: LibRaw turned the pixels), or None.

    ``facts`` are LibRaw's own readings (see ``raw._libraw_facts``). A file whose tags cannot be parsed still gets
    LibRaw's facts, with a warning for the user.
    """
    try:
        ifd0, exif, gps = _file_tags(data)
    except Exception as exc:  # noqa: BLE001 - damaged tags must not stop a photo LibRaw could develop
        log.info("RAW EXIF unreadable: %s", exc)
        warnings.append("its EXIF could not be read from the RAW file; only what LibRaw reports is kept")
        ifd0, exif, gps = {}, {}, {}
    out = Image.Exif()
    kept0 = {t: v for t, v in ifd0.items() if t in _IFD0_KEEP and v not in (None, "", b"")}
    sub = {t: v for t, v in exif.items() if t not in _EXIF_DROP}
    for tag, value in ifd0.items():
        if tag in _EXIF_IN_IFD0 and tag not in sub:
            sub[tag] = value
    _fill_from_libraw(sub, kept0, facts)
    for tag, value in kept0.items():
        out[tag] = value
    out[ORIENTATION_TAG] = 1
    if sub:
        out.get_ifd(EXIF_IFD).update(sub)
    if gps:
        out.get_ifd(GPS_IFD).update(gps)
    try:
        return out.tobytes()
    except Exception as exc:  # noqa: BLE001 - an odd value type Pillow cannot encode: keep the essentials
        log.info("RAW EXIF not encodable (%s); keeping make, model and date only", exc)
        warnings.append("some of its EXIF could not be carried over")
        plain = Image.Exif()
        for tag, value in kept0.items():
            if isinstance(value, str):
                plain[tag] = value
        plain[ORIENTATION_TAG] = 1
        return plain.tobytes()
