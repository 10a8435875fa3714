"""Photo I/O round trips keep what a photographer cares about; hostile files give one clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from desktop_sr.imaging import PhotoError, SaveOptions, read_photo, write_photo
from desktop_sr.imaging.orientation import ORIENTATION_TAG

MAKE, MODEL, DATETIME, EXIF_IFD, DATETIME_ORIGINAL = 0x010F, 0x0110, 0x0132, 0x8769, 0x9003


def wide_gamut_profile() -> bytes:
    """A genuine non-sRGB profile built by hand: ICC v2 matrix/TRC with D50 primaries and a linear (gamma 1) curve."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", 256)  # gamma 1.0
    desc_text = b"Linear RGB test profile\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 12 + b"\0" * 67
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        while len(data) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 16 + s15(0.9642) + s15(1.0) + s15(0.8249)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def photo_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "TestCam"
    exif[MODEL] = "Model 7"
    exif[DATETIME] = "2024:05:06 07:08:09"
    exif[ORIENTATION_TAG] = orientation
    return exif


def gradient(w: int = 48, h: int = 32) -> np.ndarray:
    x = np.linspace(0, 1, w, dtype=np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    return np.dstack([np.tile(x, (h, 1)), np.tile(y, (1, w)), np.full((h, w), 0.3, np.float32)])


def test_jpeg_orientation_exif_and_icc_survive(tmp_path):
    src = tmp_path / "portrait.jpg"
    pixels = (gradient() * 255).astype(np.uint8)  # stored 48 wide x 32 high, displayed rotated (orientation 6)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(src, quality=95, exif=photo_exif(6), icc_profile=srgb, dpi=(300, 300))
    photo = read_photo(src)
    assert (photo.width, photo.height) == (32, 48)  # upright
    assert photo.rgb[0, -1, 0] < 0.1 and photo.rgb[-1, -1, 0] > 0.9  # rotated 90 degrees clockwise
    out = tmp_path / "out.jpg"
    up = np.repeat(np.repeat(photo.rgb, 2, axis=0), 2, axis=1)
    write_photo(out, up, like=photo, scale=2)
    back = Image.open(out)
    assert back.size == (64, 96)
    exif = back.getexif()
    assert exif[MAKE] == "TestCam" and exif[MODEL] == "Model 7" and exif[DATETIME] == "2024:05:06 07:08:09"
    assert exif.get(ORIENTATION_TAG, 1) == 1
    assert back.info["icc_profile"] == srgb
    assert back.info["dpi"] == pytest.approx((600, 600), abs=1)
    assert exif.get_ifd(EXIF_IFD).get(0xA002) == 64


def test_other_icc_profile_is_converted_and_restored(tmp_path):
    icc = wide_gamut_profile()
    src = tmp_path / "linear.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(src, icc_profile=icc)
    photo = read_photo(src)
    assert photo.converted_from_icc
    assert photo.rgb.mean() > 0.7  # linear 0.5 is much brighter in sRGB (about 0.73)
    out = tmp_path / "out.png"
    write_photo(out, photo.rgb, like=photo)
    back = Image.open(out)
    assert back.info["icc_profile"] == icc
    assert abs(np.asarray(back, np.float32).mean() - 128) <= 2
    kept = read_photo(src, keep_profile=True)
    assert not kept.converted_from_icc and abs(kept.rgb.mean() - 128 / 255) < 1e-3


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16_bit_survives(tmp_path, fmt):
    values = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 97 % 65536).astype(np.uint16)
    src = tmp_path / f"deep.{'png' if fmt == 'png' else 'tif'}"
    write_photo(src, values.astype(np.float32) / 65535, options=SaveOptions(format=fmt, bit_depth=16))
    photo = read_photo(src)
    assert photo.bit_depth == 16
    assert np.array_equal(np.round(photo.rgb * 65535).astype(np.uint16), values)  # values beyond 255 survive
    out = tmp_path / f"again.{'png' if fmt == 'png' else 'tif'}"
    write_photo(out, photo.rgb, like=photo)  # the source's depth by default
    assert read_photo(out).bit_depth == 16


def test_16_bit_grey_png(tmp_path):
    src = tmp_path / "grey16.png"
    Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)).save(src)
    photo = read_photo(src)
    assert photo.bit_depth == 16 and photo.rgb.shape == (8, 8, 3)
    assert photo.rgb[-1, -1, 0] == pytest.approx(63000 / 65535, abs=1e-5)


def test_alpha_is_upscaled_and_recombined(tmp_path):
    src = tmp_path / "logo.png"
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[4:12, 4:12, 3] = 255
    Image.fromarray(rgba, "RGBA").save(src)
    photo = read_photo(src)
    assert photo.alpha is not None and photo.alpha.max() == 1.0 and photo.alpha.min() == 0.0
    out = tmp_path / "logo_x2.png"
    write_photo(out, np.repeat(np.repeat(photo.rgb, 2, 0), 2, 1), like=photo, scale=2)
    back = np.asarray(Image.open(out))
    assert back.shape == (32, 32, 4)
    assert back[16, 16, 3] == 255 and back[1, 1, 3] == 0


def test_palette_grey_webp_bmp_read(tmp_path):
    base = Image.fromarray((gradient() * 255).astype(np.uint8))
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    base.convert("L").save(tmp_path / "g.png")
    base.save(tmp_path / "w.webp", lossless=True)
    base.save(tmp_path / "b.bmp")
    for name in ("p.png", "g.png", "w.webp", "b.bmp"):
        photo = read_photo(tmp_path / name)
        assert photo.rgb.shape == (32, 48, 3) and photo.rgb.dtype == np.float32
        assert photo.rgb.min() >= 0.0 and photo.rgb.max() <= 1.0


@pytest.mark.parametrize("fmt,ext", [("jpeg", ".jpg"), ("webp", ".webp"), ("tiff", ".tif"), ("png", ".png")])
def test_every_format_writes_with_exif(tmp_path, fmt, ext):
    src = tmp_path / "src.jpg"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=photo_exif())
    photo = read_photo(src)
    out = write_photo(tmp_path / f"out{ext}", photo.rgb, like=photo, options=SaveOptions(format=fmt, quality=90))
    back = Image.open(out)
    assert back.size == (48, 32)
    assert back.getexif().get(MAKE) == "TestCam"


def test_each_output_keeps_its_own_exif(tmp_path):
    photos = []
    for i in range(2):
        p = tmp_path / f"p{i}.jpg"
        exif = photo_exif()
        exif[MODEL] = f"Body {i}"
        Image.fromarray((gradient() * 255).astype(np.uint8)).save(p, exif=exif)
        photos.append(read_photo(p))
    for i, photo in enumerate(photos):
        write_photo(tmp_path / f"o{i}.png", photo.rgb, like=photo)
    assert [Image.open(tmp_path / f"o{i}.png").getexif()[MODEL] for i in range(2)] == ["Body 0", "Body 1"]


# -- hostile input ---------------------------------------------------------------------------------------------------
def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((gradient(64, 64) * 255).astype(np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # does not compress away
    Image.fromarray(noise).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", _jpeg_bytes()[:300], "damaged|truncated"),
        ("cut.png", _png_bytes()[:6000], "damaged|truncated"),
        ("notes.png", b"just some text, not a picture\n" * 20, "not an image"),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100, "not an image|HEIC"),
    ],
)
def test_hostile_files_raise_one_clear_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PhotoError, match=reason) as info:
        read_photo(path)
    assert str(info.value).startswith(str(path))


def test_wrong_extension_is_read_by_content(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(_png_bytes())
    assert read_photo(path).format == "PNG"


def test_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (4000, 4000)).save(path)
    with pytest.raises(PhotoError, match="limit"):
        read_photo(path, max_pixels=1_000_000)


def test_folder_missing_and_unreadable(tmp_path):
    with pytest.raises(PhotoError, match="folder"):
        read_photo(tmp_path)
    with pytest.raises(PhotoError, match="not found"):
        read_photo(tmp_path / "nope.jpg")
    locked = tmp_path / "locked.png"
    locked.write_bytes(_png_bytes())
    locked.chmod(0)
    try:
        import os

        if os.access(locked, os.R_OK):  # running as root: permissions do not stop us
            pytest.skip("cannot make a file unreadable for this user")
        with pytest.raises(PhotoError, match="permission"):
            read_photo(locked)
    finally:
        locked.chmod(0o644)


# -- atomic writes ---------------------------------------------------------------------------------------------------
def test_interrupted_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "result.png"
    write_photo(target, gradient())
    before = target.read_bytes()

    def explode(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(PhotoError, match="disk is full"):
        write_photo(target, 1 - gradient())
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]  # no temp file left behind


def test_interrupt_in_16_bit_path_leaves_nothing(tmp_path, monkeypatch):
    import desktop_sr.imaging.write as w

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "_write_png16", boom)
    with pytest.raises(KeyboardInterrupt):
        write_photo(tmp_path / "x.png", gradient(), options=SaveOptions(bit_depth=16))
    assert list(tmp_path.iterdir()) == []


def test_source_is_never_overwritten(tmp_path):
    src = tmp_path / "src.png"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src)
    before = src.read_bytes()
    photo = read_photo(src)
    with pytest.raises(PhotoError, match="source"):
        write_photo(src, photo.rgb, like=photo)
    assert src.read_bytes() == before


def test_missing_output_folder(tmp_path):
    with pytest.raises(PhotoError, match="does not exist"):
        write_photo(tmp_path / "no" / "such" / "dir.png", gradient())
