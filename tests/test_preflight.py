"""Output checks before minutes of work: a bad target is refused in a second, before any model loads (issue 30).

Each case runs the real command in-process with the model loader replaced by one that fails the test: reaching
it would mean the check came after the work it should have saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from desktop_sr.cli import main
from desktop_sr.imaging import PhotoError, read_header
from desktop_sr.imaging.preflight import OutputProblem, OutputSize, check_folder, check_output

DATA = Path(__file__).parent / "data"


@pytest.fixture
def photo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    Image.open(DATA / "astronaut_64.png").convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    monkeypatch.chdir(tmp_path)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("desktop_sr.cli.upscale.session_from_args", no_model)
    monkeypatch.setattr("desktop_sr.engine.loader.open_session", no_model)
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_file_where_the_output_folder_should_be_is_named_before_any_work(photo_dir, capsys):
    (photo_dir / "iamafile").write_bytes(b"x")
    code, err = _run(capsys, "upscale", "photo.jpg", "photo.jpg", "-o", "iamafile/")
    assert code == 1
    assert err.count("iamafile is a file, not a folder") == 2, err
    assert "Errno" not in err and (photo_dir / "iamafile").read_bytes() == b"x"


def test_a_name_the_app_cannot_write_is_a_usage_error_not_png_bytes_under_bmp(photo_dir, capsys):
    code, err = _run(capsys, "upscale", "photo.jpg", "-o", "x.bmp")
    assert code == 2 and "cannot write a .bmp file" in err and ".png" in err, err
    code, err = _run(capsys, "upscale", "photo.jpg", "-o", "x.jpg", "--format", "png")
    assert code == 2 and "the name says JPEG but the format asked for is PNG" in err, err
    assert not (photo_dir / "x.bmp").exists() and not (photo_dir / "x.jpg").exists()


def test_a_target_the_models_cannot_reach_is_a_usage_error_before_the_model_loads(photo_dir, capsys):
    code, err = _run(capsys, "upscale", "photo.jpg", "-o", "out/", "--long-edge", "100000")
    assert code == 2 and "Choose a smaller target" in err, err


def test_an_existing_output_is_refused_before_the_model_loads(photo_dir, capsys):
    (photo_dir / "out.png").write_bytes(b"keep me")
    code, err = _run(capsys, "upscale", "photo.jpg", "-o", "out.png")
    assert code == 1 and "exists (use --overwrite)" in err
    assert (photo_dir / "out.png").read_bytes() == b"keep me"


def test_a_read_only_folder_is_refused_before_any_work(tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True
    ).returncode == 0  # fmt: skip
    if not mounted:
        ro.chmod(0o555)
        if os.access(ro, os.W_OK):  # root without mount rights: permissions do not stop it
            pytest.skip("cannot make a read-only folder here (root without mount)")
    try:
        with pytest.raises(OutputProblem, match=r"cannot write in .*ro: (the disk is read-only|you do not have)"):
            check_output(ro / "sub" / "out.png", overwrite=False)
        assert not (ro / "sub").exists()
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)


def test_too_little_space_names_the_folder_and_the_space_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 5 * 10**6, 5 * 10**6))
    with pytest.raises(OutputProblem) as err:
        check_folder(tmp_path / "new", OutputSize(8000, 6000, bit_depth=16).worst_bytes("png"))
    text = str(err.value)
    assert str(tmp_path) in text and "needs about 288 MB" in text and "5 MB is free" in text, text


def test_a_batch_whose_only_work_is_broken_files_reports_them_without_loading_the_model(photo_dir, capsys):
    src = photo_dir / "in"
    src.mkdir()
    (src / "zero.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("not a photo")
    code = main(["batch", "in", "-o", "out", "--dry-run"])
    said = capsys.readouterr()
    assert code == 1 and "2 cannot be read" in said.err
    assert said.out.count("\tcannot read (") == 2 and "\twrite" not in said.out  # not listed as "write"
    code, err = _run(capsys, "batch", "in", "-o", "out", "--quiet")
    assert code == 1, err
    assert "empty (0 bytes)" in err and "not an image this app can read" in err, err


def test_the_header_check_reads_sizes_upright_and_refuses_bombs_without_decoding(tmp_path: Path):
    im = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the upright photo is 20 x 40
    im.save(tmp_path / "turned.jpg", exif=exif)
    assert read_header(tmp_path / "turned.jpg").size == (20, 40)
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))
    with pytest.raises(PhotoError) as bomb:
        read_header(tmp_path / "bomb.png", max_pixels=10**8)
    assert str(bomb.value).count("bomb.png") == 1 and "limit of 100,000,000" in str(bomb.value)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` in its header (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_an_animated_gif_says_only_its_first_frame_is_upscaled(tmp_path: Path):
    from desktop_sr.imaging import read_photo

    frames = [Image.new("RGB", (16, 16), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert any("3 frames" in w and "only the first" in w for w in read_photo(tmp_path / "a.gif").warnings)
    assert read_header(tmp_path / "a.gif").frames == 3


def test_the_output_check_imports_neither_torch_nor_qt():
    code = "import sys, desktop_sr.imaging.preflight; sys.exit(any(m in sys.modules for m in ('torch', 'PySide6')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
