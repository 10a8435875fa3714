"""Photo I/O round trips keep what a photographer cares about; hostile files give one clear error."""

from __future__ import annotations

import builtins
import io
import os
import stat
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from desktop_sr.imaging import (
    SUPPORTED_READ_EXTENSIONS,
    PhotoError,
    SaveOptions,
    is_probably_image,
    read_photo,
    upscale_alpha,
    write_photo,
)

MAKE, MODEL, DATETIME, ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
EXIF_IFD, GPS_IFD, DATETIME_ORIGINAL, EXPOSURE, PIXEL_X, PIXEL_Y = 0x8769, 0x8825, 0x9003, 0x829A, 0xA002, 0xA003
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description rating="5"/></rdf:RDF></x:xmpmeta>'


def photo_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "TestCam"
    exif[MODEL] = "Model 7"
    exif[DATETIME] = "2024:05:06 07:08:09"
    exif[ORIENTATION] = orientation
    sub = exif.get_ifd(EXIF_IFD)
    sub[DATETIME_ORIGINAL] = "2024:05:06 07:08:00"
    sub[EXPOSURE] = (1, 250)
    exif.get_ifd(GPS_IFD)[1] = "N"
    return exif


def gradient(w: int = 48, h: int = 32) -> np.ndarray:
    x = np.linspace(0, 1, w, dtype=np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    return np.dstack([np.tile(x, (h, 1)), np.tile(y, (1, w)), np.full((h, w), 0.3, np.float32)])


def marked(w: int = 48, h: int = 32) -> np.ndarray:
    """A picture whose orientation is obvious: black, with a white top-left corner block."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 4, : w // 4] = 255
    return a


def upright_corner(rgb: np.ndarray) -> tuple[int, int]:
    """Where the white block ended up: (row half, column half), 0 = top/left."""
    ys, xs = np.nonzero(rgb[..., 0] > 0.5)
    return int(ys.mean() > rgb.shape[0] / 2), int(xs.mean() > rgb.shape[1] / 2)


# -- orientation, EXIF, XMP, DPI -------------------------------------------------------------------------------------
# Where the stored top-left block appears once the photo is shown upright, for each EXIF orientation.
EXPECTED_CORNER = {1: (0, 0), 2: (0, 1), 3: (1, 1), 4: (1, 0), 5: (0, 0), 6: (0, 1), 7: (1, 1), 8: (1, 0)}


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_applied_once(tmp_path, ext, orientation):
    src = tmp_path / f"o{orientation}{ext}"
    kwargs = {"quality": 95} if ext == ".jpg" else {"lossless": True} if ext == ".webp" else {}
    Image.fromarray(marked()).save(src, exif=photo_exif(orientation), **kwargs)
    photo = read_photo(src)
    turned = orientation >= 5
    assert (photo.width, photo.height) == ((32, 48) if turned else (48, 32))
    assert upright_corner(photo.rgb) == EXPECTED_CORNER[orientation]
    out = write_photo(tmp_path / f"out{ext}", photo.rgb, like=photo)
    back = Image.open(out)
    assert back.getexif().get(ORIENTATION, 1) == 1  # the saved pixels are upright, and the file says so
    assert upright_corner(read_photo(out).rgb) == EXPECTED_CORNER[orientation]  # not turned a second time


def test_jpeg_exif_icc_dpi_survive_an_upscale(tmp_path):
    src = tmp_path / "portrait.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(marked()).save(src, quality=95, exif=photo_exif(6), icc_profile=srgb, dpi=(300, 200), xmp=XMP)
    photo = read_photo(src)
    assert photo.dpi == (200, 300)  # turned 90 degrees: the axes swap too
    assert photo.xmp == XMP
    up = np.repeat(np.repeat(photo.rgb, 2, axis=0), 2, axis=1)
    out = write_photo(tmp_path / "out.jpg", up, like=photo, scale=2)
    back = Image.open(out)
    exif = back.getexif()
    assert back.size == (64, 96)
    assert (exif[MAKE], exif[MODEL], exif[DATETIME]) == ("TestCam", "Model 7", "2024:05:06 07:08:09")
    sub = exif.get_ifd(EXIF_IFD)
    assert sub[DATETIME_ORIGINAL] == "2024:05:06 07:08:00" and EXPOSURE in sub
    assert (sub[PIXEL_X], sub[PIXEL_Y]) == (64, 96)
    assert exif.get_ifd(GPS_IFD)[1] == "N"
    assert back.info["icc_profile"] == srgb
    assert back.info["dpi"] == pytest.approx((400, 600), abs=1)  # same print size, twice the pixels
    assert back.info["xmp"] == XMP


@pytest.mark.parametrize(
    "fmt,ext,sub_ifds",
    [("jpeg", ".jpg", True), ("png", ".png", True), ("webp", ".webp", True), ("tiff", ".tif", False)],
)
def test_every_format_keeps_exif_and_xmp(tmp_path, fmt, ext, sub_ifds):
    src = tmp_path / "src.jpg"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=photo_exif(), xmp=XMP)
    photo = read_photo(src)
    out = write_photo(tmp_path / f"out{ext}", photo.rgb, like=photo, options=SaveOptions(format=fmt, quality=90))
    back = Image.open(out)
    assert back.size == (48, 32)
    exif = back.getexif()
    assert (exif.get(MAKE), exif.get(MODEL), exif.get(DATETIME)) == ("TestCam", "Model 7", "2024:05:06 07:08:09")
    if sub_ifds:
        assert exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) == "2024:05:06 07:08:00"
    assert XMP in (read_photo(out).xmp or b"")


def test_uncompressed_tiff_keeps_the_exif_sub_ifd(tmp_path):
    src = tmp_path / "src.jpg"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=photo_exif())
    photo = read_photo(src)
    out = write_photo(tmp_path / "out.tif", photo.rgb, like=photo, options=SaveOptions(compression="none"))
    assert Image.open(out).getexif().get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) == "2024:05:06 07:08:00"


def test_tiff_storage_tags_do_not_leak_into_other_formats(tmp_path):
    src = tmp_path / "scan.tif"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=photo_exif(), compression="tiff_lzw")
    photo = read_photo(src)
    out = write_photo(tmp_path / "scan.jpg", photo.rgb, like=photo, scale=4)
    exif = Image.open(out).getexif()
    assert exif[MAKE] == "TestCam"
    assert not {256, 257, 259, 273, 279} & set(exif)  # the TIFF's width, compression, strip offsets stay behind


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


def test_oversized_exif_is_trimmed_to_fit_a_jpeg(tmp_path):
    src = tmp_path / "maker.png"  # PNG has no 64 KB limit, so a camera maker note this big can arrive this way
    exif = photo_exif()
    exif.get_ifd(EXIF_IFD)[0x927C] = b"\x01" * 70_000
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=exif)
    photo = read_photo(src)
    out = write_photo(tmp_path / "out.jpg", photo.rgb, like=photo)
    back = Image.open(out).getexif()
    assert back[MAKE] == "TestCam" and 0x927C not in back.get_ifd(EXIF_IFD)


# -- pixels: alpha, palettes, greys, formats -------------------------------------------------------------------------
def test_alpha_is_upscaled_separately_and_recombined(tmp_path):
    src = tmp_path / "logo.png"
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[4:12, 4:12, 3] = 255
    Image.fromarray(rgba, "RGBA").save(src)
    photo = read_photo(src)
    assert photo.alpha is not None and photo.alpha.max() == 1.0 and photo.alpha.min() == 0.0
    out = write_photo(tmp_path / "logo_x2.png", np.repeat(np.repeat(photo.rgb, 2, 0), 2, 1), like=photo, scale=2)
    back = np.asarray(Image.open(out))
    assert back.shape == (32, 32, 4)
    assert back[16, 16, 3] == 255 and back[1, 1, 3] == 0
    assert 0 < back[8, 16, 3] < 255 or back[7, 16, 3] != back[8, 16, 3]  # bicubic: an edge, not a copy
    webp = write_photo(tmp_path / "logo.webp", photo.rgb, like=photo, options=SaveOptions(lossless=True))
    assert np.array_equal(np.asarray(Image.open(webp))[..., 3], rgba[..., 3])


def test_alpha_to_jpeg_is_flattened_on_white(tmp_path):
    rgb = np.zeros((8, 8, 3), np.float32)  # black under fully transparent pixels
    alpha = np.zeros((8, 8), np.float32)
    alpha[:, 4:] = 1.0
    out = np.asarray(Image.open(write_photo(tmp_path / "flat.jpg", rgb, alpha=alpha)), np.float32)
    assert out[:, :2].mean() > 245 and out[:, 6:].mean() < 10


def test_upscale_alpha_bicubic_and_clipped():
    alpha = np.zeros((4, 4), np.float32)
    alpha[1:3, 1:3] = 1.0
    big = upscale_alpha(alpha, (16, 12))
    assert big.shape == (12, 16) and big.dtype == np.float32
    assert big.min() >= 0.0 and big.max() <= 1.0 and len(np.unique(big)) > 2


def test_palette_grey_webp_bmp_and_transparent_palette(tmp_path):
    base = Image.fromarray((gradient() * 255).astype(np.uint8))
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    base.convert("L").save(tmp_path / "g.png")
    base.convert("1").save(tmp_path / "bw.png")
    base.save(tmp_path / "w.webp", lossless=True)
    base.save(tmp_path / "b.bmp")
    for name in ("p.png", "g.png", "bw.png", "w.webp", "b.bmp"):
        photo = read_photo(tmp_path / name)
        assert photo.rgb.shape == (32, 48, 3) and photo.rgb.dtype == np.float32
        assert photo.rgb.min() >= 0.0 and photo.rgb.max() <= 1.0
    assert read_photo(tmp_path / "g.png").grey
    assert np.abs(read_photo(tmp_path / "w.webp").rgb - np.asarray(base) / 255).max() < 1e-6
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "t.png", transparency=0)
    photo = read_photo(tmp_path / "t.png")
    assert photo.alpha is not None and photo.alpha[0, 0] == 0 and photo.alpha[4, 4] == 1


def test_write_accepts_integer_arrays_and_grey(tmp_path):
    u8 = (gradient() * 255).astype(np.uint8)
    back = np.asarray(Image.open(write_photo(tmp_path / "u8.png", u8)))
    assert np.array_equal(back, u8)  # an accidental uint8 array is saved as the picture, not as white
    grey = write_photo(tmp_path / "grey.png", gradient()[..., 0])
    assert Image.open(grey).size == (48, 32)


def test_content_hash_follows_pixels_not_files(tmp_path):
    pixels = (gradient() * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "b.png", exif=photo_exif())
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(tmp_path / "c.png")
    a, b, c = (read_photo(tmp_path / n).content_hash() for n in ("a.png", "b.png", "c.png"))
    assert a == b != c
    assert read_photo(tmp_path / "a.png").content_hash() == a  # stable across reads


def test_supported_extensions_and_cheap_filter(tmp_path):
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"} <= SUPPORTED_READ_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in SUPPORTED_READ_EXTENSIONS)
    try:
        import pillow_heif  # noqa: F401

        assert {".heic", ".avif"} <= SUPPORTED_READ_EXTENSIONS
    except ImportError:
        assert ".heic" not in SUPPORTED_READ_EXTENSIONS
    assert is_probably_image(tmp_path / "IMG_1.JPG") and is_probably_image("x.tiff")
    assert not is_probably_image("notes.txt") and not is_probably_image(".IMG_1.jpg.part")


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


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge picture: the decompression-bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", _jpeg_bytes()[:300], "damaged|truncated"),
        ("cut.png", _png_bytes()[:6000], "damaged|truncated"),
        ("notes.png", b"just some text, not a picture\n" * 20, "not an image"),
        ("garbage.tif", b"II*\x00" + bytes(range(256)) * 4, "damaged|not an image"),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100, "not an image|HEIC"),
        ("bomb.png", _png_header_only(100_000, 100_000), "limit"),
    ],
)
def test_hostile_files_raise_one_clear_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PhotoError, match=reason) as info:
        read_photo(path)
    assert str(info.value).startswith(str(path)) and info.value.path == path


def test_wrong_extension_is_read_by_content(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(_png_bytes())
    assert read_photo(path).format == "PNG"


def test_decompression_bomb_limit_is_ours_not_pillows(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (40, 40)).save(path)
    with pytest.raises(PhotoError, match="limit of 1,000 pixels"):
        read_photo(path, max_pixels=1000)
    # A 150-megapixel photo is fine under the default limit even though Pillow's own default would refuse it:
    # simulate by shrinking Pillow's limit far below this picture.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_photo(path).width == 40
    assert Image.MAX_IMAGE_PIXELS == 100  # restored afterwards


def test_folder_missing_unreadable_and_pipe(tmp_path):
    with pytest.raises(PhotoError, match="folder"):
        read_photo(tmp_path)
    with pytest.raises(PhotoError, match="not found"):
        read_photo(tmp_path / "nope.jpg")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.jpg"
        os.mkfifo(fifo)
        with pytest.raises(PhotoError, match="not a regular file"):
            read_photo(fifo)  # must not block waiting for a writer
    locked = tmp_path / "locked.png"
    locked.write_bytes(_png_bytes())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # running as root: permissions do not stop us
            pytest.skip("cannot make a file unreadable for this user")
        with pytest.raises(PhotoError, match="permission"):
            read_photo(locked)
    finally:
        locked.chmod(0o644)


def test_truncated_images_stay_errors():
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in this layer loosens Pillow's checks


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


def test_encoder_error_and_interrupt_leave_nothing(tmp_path, monkeypatch):
    import desktop_sr.imaging.write as w

    def refuse(*a, **k):
        raise ValueError("encoder says no")

    monkeypatch.setattr(w, "encode_png16", refuse)
    with pytest.raises(PhotoError, match="cannot encode as PNG.*encoder says no"):
        write_photo(tmp_path / "x.png", gradient(), options=SaveOptions(bit_depth=16))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "encode_png16", boom)
    with pytest.raises(KeyboardInterrupt):
        write_photo(tmp_path / "x.png", gradient(), options=SaveOptions(bit_depth=16))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_written_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    out = write_photo(tmp_path / "shared.png", gradient())
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # readable by others, unlike a mkstemp file
    out.chmod(0o640)
    write_photo(out, 1 - gradient())
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # an overwritten file keeps its mode


def test_source_is_never_opened_for_writing(tmp_path, monkeypatch):
    src = tmp_path / "src.jpg"
    Image.fromarray((gradient() * 255).astype(np.uint8)).save(src, exif=photo_exif(6))
    before = src.read_bytes()
    writes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *args, **kwargs):
        if os.fspath(file) == os.fspath(src) and any(m in mode for m in "wax+"):
            writes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(file, flags, *args, **kwargs):
        if os.fspath(file) == os.fspath(src) and flags & (os.O_WRONLY | os.O_RDWR):
            writes.append(str(flags))
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    photo = read_photo(src)
    write_photo(tmp_path / "out.jpg", photo.rgb, like=photo)
    with pytest.raises(PhotoError, match="source"):
        write_photo(src, photo.rgb, like=photo)
    assert writes == [] and src.read_bytes() == before


def test_missing_output_folder_and_folder_target(tmp_path):
    with pytest.raises(PhotoError, match="does not exist"):
        write_photo(tmp_path / "no" / "such" / "dir.png", gradient())
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(PhotoError, match="folder"):
        write_photo(tmp_path / "taken.png", gradient())


def test_bad_pixels_are_a_clear_error(tmp_path):
    with pytest.raises(PhotoError, match="H x W x 3"):
        write_photo(tmp_path / "x.png", np.zeros((4, 4, 2), np.float32))
    nan = gradient()
    nan[0, 0] = np.nan
    assert np.asarray(Image.open(write_photo(tmp_path / "nan.png", nan)))[0, 0].tolist() == [0, 0, 0]
