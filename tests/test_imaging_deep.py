"""16-bit photos: every sample survives reading and writing, whatever the encoder, filter or byte order."""

from __future__ import annotations

import io
import struct

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from desktop_sr.imaging import PhotoError, SaveOptions, read_photo, write_photo
from desktop_sr.imaging.png16 import encode_png16


def deep_values(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A smooth 16-bit gradient plus noise: exercises every PNG filter and has values far beyond 255."""
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 65535 // max(1, w - 1) + y * 997)[..., None] + np.arange(c) * 4099
    noise = np.random.default_rng(seed).integers(0, 64, (h, w, c))
    return ((base + noise) % 65536).astype(np.uint16)


def as_u16(a: np.ndarray) -> np.ndarray:
    return np.round(a * 65535).astype(np.uint16)


def lzw_literals(data: bytes) -> bytes:
    """TIFF LZW that only emits literal codes (9 bits, a Clear code every 250): valid, just not small."""
    codes, bits, out = [], 0, bytearray()
    for i in range(0, len(data), 250):
        codes.append(256)
        codes.extend(data[i : i + 250])
    codes.append(257)
    acc = 0
    for code in codes:
        acc = (acc << 9) | code
        bits += 9
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def lzw_tiff(values: np.ndarray, orientation: int = 1) -> bytes:
    """A 16-bit RGB LZW TIFF as Photoshop/Lightroom write them, built by hand (no imagecodecs needed)."""
    h, w, _ = values.shape
    strip = lzw_literals(values.astype("<u2").tobytes())
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, None), (259, 3, 1, 5), (262, 3, 1, 2),
               (273, 4, 1, None), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 4, 1, h),
               (279, 4, 1, len(strip)), (284, 3, 1, 1)]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    bps_at = 8 + ifd_size
    strip_at = bps_at + 6
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = bps_at if tag == 258 else strip_at if tag == 273 else value
        field = struct.pack("<H", value) + b"\0\0" if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + field
    out += struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + strip
    return bytes(out)


@pytest.mark.parametrize("channels", [3, 4])
def test_png16_encoder_round_trips_exactly(channels):
    values = deep_values(37, 53, channels)
    data = encode_png16(values)
    w, h, rows, info = png.Reader(bytes=data).asDirect()  # an independent decoder agrees
    assert info["bitdepth"] == 16
    assert np.array_equal(np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, channels), values)


@pytest.mark.parametrize("fmt,ext", [("png", ".png"), ("tiff", ".tif")])
@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_rgb_and_alpha_survive_a_round_trip(tmp_path, fmt, ext, channels):
    values = deep_values(24, 40, channels)
    src = write_photo(tmp_path / f"deep{ext}", values, options=SaveOptions(bit_depth=16))
    photo = read_photo(src)
    assert photo.bit_depth == 16 and photo.format == fmt.upper()
    assert np.array_equal(as_u16(photo.rgb), values[..., :3])  # values beyond 255 survive, all of them
    if channels == 4:
        assert np.array_equal(as_u16(photo.alpha), values[..., 3])
    again = write_photo(tmp_path / f"again{ext}", photo.rgb, like=photo)  # the source's depth by default
    assert np.array_equal(as_u16(read_photo(again).rgb), values[..., :3])


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_16_bit_tiff_from_other_writers(tmp_path, byteorder, compression):
    values = deep_values(20, 30, 3)
    src = tmp_path / "other.tif"
    tifffile.imwrite(src, values, photometric="rgb", byteorder=byteorder, compression=compression,
                     predictor=compression is not None)  # fmt: skip
    assert np.array_equal(as_u16(read_photo(src).rgb), values)


def test_16_bit_lzw_tiff_with_orientation(tmp_path):
    values = deep_values(12, 20, 3)
    src = tmp_path / "lightroom.tif"
    src.write_bytes(lzw_tiff(values, orientation=6))
    photo = read_photo(src)
    assert photo.bit_depth == 16 and photo.rgb.shape == (20, 12, 3)  # upright: turned 90 degrees clockwise
    assert np.array_equal(as_u16(photo.rgb), np.rot90(values, -1))


def test_16_bit_png_interlaced_and_grey_alpha(tmp_path):
    values = deep_values(17, 23, 3)
    buf = io.BytesIO()
    png.Writer(23, 17, greyscale=False, bitdepth=16, interlace=True).write(buf, values.reshape(17, -1))
    (tmp_path / "adam7.png").write_bytes(buf.getvalue())
    assert np.array_equal(as_u16(read_photo(tmp_path / "adam7.png").rgb), values)

    la = deep_values(9, 11, 2)
    buf = io.BytesIO()
    png.Writer(11, 9, greyscale=True, alpha=True, bitdepth=16).write(buf, la.reshape(9, -1))
    (tmp_path / "la.png").write_bytes(buf.getvalue())
    photo = read_photo(tmp_path / "la.png")
    assert photo.grey and np.array_equal(as_u16(photo.rgb[..., 0]), la[..., 0])
    assert np.array_equal(as_u16(photo.alpha), la[..., 1])


def test_16_bit_grey_png(tmp_path):
    src = tmp_path / "grey16.png"
    Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)).save(src)
    photo = read_photo(src)
    assert photo.bit_depth == 16 and photo.grey and photo.rgb.shape == (8, 8, 3)
    assert photo.rgb[-1, -1, 0] == pytest.approx(63000 / 65535, abs=1e-6)


def test_float_and_planar_tiffs_use_the_fallback_decoder(tmp_path):
    ramp = np.linspace(0, 1, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    tifffile.imwrite(tmp_path / "float.tif", ramp, photometric="rgb")
    photo = read_photo(tmp_path / "float.tif")
    assert photo.bit_depth == 16 and np.allclose(photo.rgb, ramp, atol=1e-6)
    values = deep_values(6, 8, 3)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(values, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(as_u16(read_photo(tmp_path / "planar.tif").rgb), values)


def test_truncated_16_bit_files(tmp_path):
    data = encode_png16(deep_values(64, 64, 3, seed=3))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(PhotoError, match="damaged|truncated"):
        read_photo(tmp_path / "cut.png")
    tiff = lzw_tiff(deep_values(32, 32, 3))
    (tmp_path / "cut.tif").write_bytes(tiff[: len(tiff) // 2])
    with pytest.raises(PhotoError, match="damaged|truncated|not an image"):
        read_photo(tmp_path / "cut.tif")


def test_deep_export_to_8_bit_formats(tmp_path):
    values = deep_values(10, 12, 3)
    photo = read_photo(write_photo(tmp_path / "d.png", values, options=SaveOptions(bit_depth=16)))
    out = write_photo(tmp_path / "d.jpg", photo.rgb, like=photo)  # JPEG is 8-bit, whatever the source
    assert Image.open(out).mode == "RGB"
    out8 = write_photo(tmp_path / "d8.png", photo.rgb, like=photo, options=SaveOptions(bit_depth=8))
    assert read_photo(out8).bit_depth == 8
