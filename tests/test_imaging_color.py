"""Colour management: non-sRGB photos are converted for the model and restored on export, never dropped."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from desktop_sr.imaging import SaveOptions, is_srgb, read_photo, srgb_bytes, write_photo
from desktop_sr.imaging.color import from_srgb, to_srgb

D50 = (0.9642, 1.0, 0.8249)
SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
ADOBE_COLORANTS = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256))


def _desc(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 79


def _icc(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A genuine ICC v2 display profile (what LittleCMS and every viewer parse), built by hand."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + space
    header += b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 40 + _s15(D50[0]) + _s15(D50[1]) + _s15(D50[2])
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def rgb_profile(gamma: float, colorants=SRGB_COLORANTS, name: str = "Test RGB") -> bytes:
    c = _curve(gamma)
    r, g, b = colorants
    return _icc(
        b"RGB ",
        [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"rXYZ", _xyz(*r)), (b"gXYZ", _xyz(*g)), (b"bXYZ", _xyz(*b)),
         (b"rTRC", c), (b"gTRC", c), (b"bTRC", c)],
    )  # fmt: skip


def grey_profile(gamma: float) -> bytes:
    return _icc(b"GRAY", [(b"desc", _desc(f"Grey gamma {gamma}")), (b"wtpt", _xyz(*D50)), (b"kTRC", _curve(gamma))])


LINEAR = rgb_profile(1.0, name="Linear RGB")
ADOBE_LIKE = rgb_profile(563 / 256, ADOBE_COLORANTS, name="Adobe-like RGB")


def test_srgb_is_recognised_by_behaviour_not_name():
    assert is_srgb(None) and is_srgb(srgb_bytes())
    assert not is_srgb(LINEAR) and not is_srgb(ADOBE_LIKE)
    # a wide-gamut profile that merely calls itself sRGB must still be converted
    assert not is_srgb(rgb_profile(2.2, ADOBE_COLORANTS, name="sRGB IEC61966-2.1"))
    assert is_srgb(b"not a profile")  # unreadable: cannot be applied, the bytes are kept as they were


def test_linear_profile_is_converted_for_the_model_and_restored_on_export(tmp_path):
    src = tmp_path / "linear.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(src, icc_profile=LINEAR)
    photo = read_photo(src)
    assert photo.converted_from_icc and photo.colour == "converted"
    assert photo.rgb.mean() == pytest.approx(0.735, abs=0.01)  # linear 0.5 is sRGB 0.735: brighter for the model
    assert photo.icc_profile == LINEAR  # the original bytes travel with the photo
    out = write_photo(tmp_path / "out.png", photo.rgb, like=photo)
    back = Image.open(out)
    assert back.info["icc_profile"] == LINEAR
    assert abs(np.asarray(back, np.float32).mean() - 128) <= 1  # the file looks as it did


def test_keep_profile_and_keep_srgb(tmp_path):
    src = tmp_path / "adobe.jpg"
    Image.fromarray(np.full((8, 8, 3), (200, 60, 40), np.uint8)).save(src, icc_profile=ADOBE_LIKE, quality=100)
    kept = read_photo(src, keep_profile=True)
    assert kept.colour == "native" and not kept.converted_from_icc
    write_photo(tmp_path / "native.png", kept.rgb, like=kept)
    assert Image.open(tmp_path / "native.png").info["icc_profile"] == ADOBE_LIKE  # pixels untouched, same tag
    assert np.abs(np.asarray(Image.open(tmp_path / "native.png"), np.float32) - (200, 60, 40)).max() <= 2

    photo = read_photo(src)
    write_photo(tmp_path / "srgb.png", photo.rgb, like=photo, options=SaveOptions(keep_srgb=True))
    srgb_file = Image.open(tmp_path / "srgb.png")
    assert srgb_file.info["icc_profile"] == srgb_bytes()  # converted pixels are tagged as what they are
    assert np.abs(np.asarray(srgb_file, np.float32) / 255 - photo.rgb).max() <= 1 / 255


def test_profile_is_kept_even_when_metadata_is_stripped(tmp_path):
    src = tmp_path / "adobe.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(src, icc_profile=ADOBE_LIKE, dpi=(300, 300))
    photo = read_photo(src)
    out = write_photo(tmp_path / "bare.png", photo.rgb, like=photo, options=SaveOptions(keep_metadata=False))
    back = Image.open(out)
    assert back.info["icc_profile"] == ADOBE_LIKE  # colours need it
    assert "dpi" not in back.info


def test_16_bit_conversion_is_smooth_and_round_trips():
    ramp = np.linspace(0.0, 1.0, 4096, dtype=np.float32)
    grey_ramp = np.stack([ramp] * 3, axis=-1)[None]
    out = to_srgb(grey_ramp, LINEAR)
    assert np.all(np.diff(out[0, :, 0]) >= -1e-6)  # monotone: no banding reversals
    assert len(np.unique(np.round(out * 65535))) > 1000  # far more than 256 levels survive
    # export direction: any sRGB colour fits in the wider gamut, so sRGB -> Adobe-like -> sRGB gives it back
    # (LittleCMS in Pillow is 8-bit, so channels near 0 of saturated colours carry 8-bit error; mid-tones do not)
    srgb = 0.2 + 0.6 * np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
    back = to_srgb(from_srgb(srgb, ADOBE_LIKE), ADOBE_LIKE)
    assert np.abs(back - srgb).max() < 6 / 255 and np.abs(back - srgb).mean() < 0.5 / 255


def test_grey_profile_photo(tmp_path):
    src = tmp_path / "grey.png"
    Image.fromarray(np.full((4, 6), 128, np.uint8), "L").save(src, icc_profile=grey_profile(1.0))
    photo = read_photo(src)
    assert photo.grey and photo.rgb.shape == (4, 6, 3) and photo.colour == "converted"
    assert photo.rgb.mean() == pytest.approx(0.735, abs=0.01)
    out = write_photo(tmp_path / "out.png", photo.rgb, like=photo)
    back = Image.open(out)
    # Grey in, grey out: converted back into the photo's own grey profile, which tags it again.
    assert back.mode == "L" and back.info["icc_profile"] == grey_profile(1.0)
    assert abs(np.asarray(back, np.float32).mean() - 128) <= 2


def test_mismatched_profile_is_reported_not_fatal(tmp_path):
    src = tmp_path / "odd.png"
    Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(src, icc_profile=grey_profile(2.2))
    photo = read_photo(src)
    assert photo.colour == "ignored" and photo.warnings
    assert photo.rgb.mean() == pytest.approx(100 / 255, abs=1e-6)


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    src = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(src)  # pure red ink mix
    photo = read_photo(src)
    assert photo.rgb.shape == (8, 8, 3)
    r, g, b = photo.rgb.reshape(-1, 3).mean(axis=0)
    assert r > 0.9 and g < 0.1 and b < 0.1


def test_srgb_profile_is_not_reconverted(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "s.png"
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(src, icc_profile=srgb)
    photo = read_photo(src)
    assert photo.colour == "srgb"
    assert np.array_equal(np.round(photo.rgb * 255).astype(np.uint8), pixels)  # bit exact
