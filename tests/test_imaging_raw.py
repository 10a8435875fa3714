"""Camera RAW and DNG: real DNG files (made with pidng from real photos) develop to the photo's tone, keep their
EXIF, upscale through the CLI and the batch, and a RAW LibRaw rejects gets a clear message.

Tone threshold: the DNG holds the photo's own linear light (mosaiced, white balance undone by a sensor gain), so a
correct development gives the photo back except where demosaicing guesses the two missing colours per pixel. On
4 x 4 block means (tone and colour, not fine detail) a correct development measures 38.5 dB on coffee_128; the
mistakes the development must not make score far lower: BT.709's curve instead of sRGB's 27.8 dB, daylight instead
of the camera's white balance 19.3 dB, a linear (undeveloped) picture 15.3 dB. 35 dB separates them with margin.
Full-resolution PSNR (detail included) measures 29.5 dB; 27 dB is required.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("rawpy")
pytest.importorskip("pidng")

from device_target import TARGET
from dng_maker import linear_to_srgb, make_dng, srgb_to_linear  # noqa: E402

from desktop_sr.batch import BatchSettings, make_plan  # noqa: E402
from desktop_sr.cli import ExitCode, main  # noqa: E402
from desktop_sr.imaging import PhotoError, SaveOptions, read_photo, write_photo  # noqa: E402

DATA = Path(__file__).parent / "data"
EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def source(name: str = "coffee_128.png") -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"), np.float64) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, block: int = 1) -> float:
    if block > 1:
        h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block

        def means(x: np.ndarray) -> np.ndarray:
            return x[:h, :w].reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))

        a, b = means(a), means(b)
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture
def dng(tmp_path: Path) -> Path:
    return make_dng(tmp_path / "IMG_0001.dng", source())


def test_dng_develops_to_the_photos_tone_with_the_camera_white_balance(dng):
    photo = read_photo(dng)
    src = source()
    assert photo.size == (128, 128) and photo.bit_depth == 16 and photo.format == "DNG"
    assert photo.rgb.dtype == np.float32 and photo.info["raw"] is True
    assert psnr(photo.rgb, src, block=4) > 35.0
    assert psnr(photo.rgb, src) > 27.0
    # 16 bits really: far more distinct levels than an 8-bit picture can hold
    assert len(np.unique(np.round(photo.rgb[..., 1] * 65535))) > 256


def test_an_underexposed_raw_stays_dark(tmp_path):
    """No automatic brightening: two stops under develops to the photo at a quarter of its light."""
    src = source()
    photo = read_photo(make_dng(tmp_path / "dark.dng", src, exposure=0.25))
    expected = linear_to_srgb(srgb_to_linear(src) * 0.25)
    assert psnr(photo.rgb, expected, block=4) > 35.0
    assert photo.rgb.mean() < src.mean() - 0.1


def test_orientation_is_applied(tmp_path):
    src = source("astronaut_128.png")[:, :96]  # not square, so a turn shows in the size
    photo = read_photo(make_dng(tmp_path / "turned.dng", src, orientation=6))
    assert photo.size == (128, 96)
    upright = np.rot90(src, k=-1)  # orientation 6: turn 90 degrees clockwise to view
    assert psnr(photo.rgb, upright, block=4) > 33.0


def _exif(img: Image.Image) -> tuple[dict, dict, dict]:
    e = img.getexif()
    return dict(e), dict(e.get_ifd(EXIF_IFD)), dict(e.get_ifd(GPS_IFD))


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.tif"])  # PNG and TIFF at 16 bits, JPEG at 8
def test_the_camera_exif_travels_to_the_result(dng, tmp_path, name):
    photo = read_photo(dng)
    out = write_photo(tmp_path / name, photo.rgb, like=photo, scale=1)
    with Image.open(out) as img:
        ifd0, exif, gps = _exif(img)
    assert ifd0[0x010F] == "Testmaker" and ifd0[0x0110] == "TM-1"
    assert ifd0.get(0x0112, 1) == 1
    assert not {0xC612, 0xC621, 0x828E, 0xC628} & set(ifd0)  # DNG version, colour matrix, CFA, as-shot neutral
    assert exif[0xA434] == "Testlens 50mm F1.8"
    assert float(exif[0x829A]) == pytest.approx(1 / 250) and float(exif[0x829D]) == pytest.approx(5.6)
    assert exif[0x8827] == 400 and exif[0x9003] == "2024:05:06 07:08:09"
    assert gps[1] == "N" and tuple(float(v) for v in gps[2]) == (48.0, 51.0, 24.0)


def test_raw_results_default_to_16_bit(dng, tmp_path):
    photo = read_photo(dng)
    for name in ("a.png", "a.tif"):
        out = write_photo(tmp_path / name, photo.rgb, like=photo, scale=1)
        assert read_photo(out).bit_depth == 16
    eight = write_photo(tmp_path / "b.png", photo.rgb, like=photo, options=SaveOptions(bit_depth=8))
    assert read_photo(eight).bit_depth == 8


def test_a_raw_libraw_rejects_gets_a_clear_message(tmp_path):
    fake = tmp_path / "DSC_0001.NEF"
    fake.write_bytes(b"this is not a Nikon file" * 200)
    with pytest.raises(PhotoError, match=r"DSC_0001\.NEF: not a RAW format LibRaw [\d.]+ can read"):
        read_photo(fake)


def test_a_truncated_dng_gets_a_clear_message(dng, tmp_path):
    cut = tmp_path / "cut.dng"
    cut.write_bytes(dng.read_bytes()[:3000])
    with pytest.raises(PhotoError, match=r"cut\.dng: "):
        read_photo(cut)


def test_without_rawpy_the_message_says_what_to_install(dng, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy now raises ImportError
    with pytest.raises(PhotoError, match=r"pip install 'desktop-sr\[raw\]'"):
        read_photo(dng)


def test_the_batch_planner_picks_up_raw_files(dng, tmp_path):
    folder = dng.parent
    (folder / "IMG_0002.CR2").write_bytes(b"x")
    (folder / "IMG_0003.nef").write_bytes(b"x")
    (folder / "notes.txt").write_text("not a photo")
    plan = make_plan([folder], BatchSettings(output_dir=tmp_path / "out"))
    assert sorted(i.source.name for i in plan.items) == ["IMG_0001.dng", "IMG_0002.CR2", "IMG_0003.nef"]
    assert all(i.target.suffix == ".png" for i in plan.items)


def test_cli_upscales_a_dng_to_a_16_bit_png_with_its_exif(dng, tmp_path, tiny_model):
    out = tmp_path / "out"
    args = ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]
    assert main(["upscale", str(dng), "-o", str(out), "--scale", "2", *args]) == ExitCode.OK
    result = out / "IMG_0001_x2.png"
    back = read_photo(result)
    assert back.size == (256, 256) and back.bit_depth == 16
    with Image.open(result) as img:
        ifd0, exif, gps = _exif(img)
    assert (ifd0[0x010F], ifd0[0x0110], exif[0xA434]) == ("Testmaker", "TM-1", "Testlens 50mm F1.8")
    assert (exif[0xA002], exif[0xA003]) == (256, 256) and gps[1] == "N"


def _tiff_exif() -> tuple[bytes, bytes, bytes]:
    """IFD0 (make, model + EXIF and GPS pointers), an EXIF block and a GPS block, as TIFF structures."""
    e = Image.Exif()
    e[0x010F], e[0x0110] = "Othermaker", "OM-5"
    e.get_ifd(EXIF_IFD).update({0xA434: "Otherlens 12-40mm", 0x9003: "2023:01:02 03:04:05"})
    e.get_ifd(GPS_IFD).update({1: "S"})
    full = e.tobytes()[6:]  # without the "Exif\0\0" of a JPEG segment: a TIFF structure
    exif_only, gps_only = Image.Exif(), Image.Exif()
    exif_only.update({0xA434: "Otherlens 12-40mm", 0x9003: "2023:01:02 03:04:05"})
    gps_only.update({1: "S"})
    return full, exif_only.tobytes()[6:], gps_only.tobytes()[6:]


def _little_endian(tiff: bytes) -> bytes:
    """The same tags as a little-endian TIFF structure (as Panasonic writes)."""
    from PIL import TiffImagePlugin

    src = Image.Exif()
    src.load(b"Exif\x00\x00" + tiff)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(b"II*\x00\x08\x00\x00\x00")
    for tag, value in src.items():
        if tag not in (EXIF_IFD, GPS_IFD):
            ifd[tag] = value
    ifd[EXIF_IFD] = dict(src.get_ifd(EXIF_IFD))
    ifd[GPS_IFD] = dict(src.get_ifd(GPS_IFD))
    return b"II*\x00\x08\x00\x00\x00" + ifd.tobytes(8)


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _container(kind: str) -> bytes:
    full, exif_block, gps_block = _tiff_exif()
    if kind == "orf":  # Olympus: a TIFF with "OR" for its magic number (big-endian here, as Pillow writes)
        return b"MMOR" + full[4:]
    if kind == "rw2":  # Panasonic: little-endian TIFF with "U\0" for its magic number
        return b"IIU\x00" + _little_endian(full)[4:]
    if kind == "raf":  # Fujifilm: a header pointing at a JPEG that carries the EXIF
        jpeg = io.BytesIO()
        Image.new("RGB", (8, 8)).save(jpeg, "JPEG", exif=b"Exif\x00\x00" + full)
        head = bytearray(b"FUJIFILMCCD-RAW 0201FF383501".ljust(100, b"\0"))
        head[84:92] = len(head).to_bytes(4, "big") + len(jpeg.getvalue()).to_bytes(4, "big")
        return bytes(head) + jpeg.getvalue()
    # Canon CR3: ISO media; moov/uuid(Canon) holds CMT1 (IFD0), CMT2 (EXIF) and CMT4 (GPS) as TIFF blocks
    ifd0 = Image.Exif()
    ifd0[0x010F], ifd0[0x0110] = "Othermaker", "OM-5"
    canon = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    inner = _box(b"CMT1", ifd0.tobytes()[6:]) + _box(b"CMT2", exif_block) + _box(b"CMT4", gps_block)
    return _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + _box(b"moov", _box(b"uuid", canon + inner))


@pytest.mark.parametrize("kind", ["orf", "rw2", "raf", "cr3"])
def test_exif_is_found_in_every_raw_container(kind):
    """The containers that are not plain TIFF (LibRaw develops them; their EXIF is found where each keeps it)."""
    from desktop_sr.imaging.raw_exif import raw_exif

    warnings: list[str] = []
    data = raw_exif(_container(kind), {"iso": 800.0, "exposure": 0.01}, warnings)
    e = Image.Exif()
    e.load(data)
    exif, gps = e.get_ifd(EXIF_IFD), e.get_ifd(GPS_IFD)
    assert (e[0x010F], e[0x0110], exif[0xA434]) == ("Othermaker", "OM-5", "Otherlens 12-40mm")
    assert exif[0x9003] == "2023:01:02 03:04:05" and gps[1] == "S" and not warnings
    assert exif[0x8827] == 800 and float(exif[0x829A]) == pytest.approx(0.01)  # gaps filled from LibRaw's facts
