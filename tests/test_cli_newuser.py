"""What a new user meets on the command line: Ctrl-C, grey photos, damaged EXIF (issue 16).

Ctrl-C is tested the way a user does it: a real process, a real SIGINT while it works.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from device_target import TARGET
from PIL import Image

from desktop_sr.cli import ExitCode
from desktop_sr.engine.backends.bundled import bundled_spec
from desktop_sr.imaging import read_photo, write_photo
from desktop_sr.imaging.read import METADATA_PARTLY_UNREADABLE

DATA = Path(__file__).parent / "data"
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")


def damaged_exif_jpeg(path: Path, *, grey: bool = False, size: int = 64) -> None:
    """A JPEG whose EXIF has a tag pointing past the end of its segment (what some cameras write)."""
    im = Image.open(DATA / "astronaut_64.png").convert("L" if grey else "RGB").resize((size, size))
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make: short, stored inline, survives
    exif[0x0110] = "Canon EOS 5D Mark II"  # Model: stored at an offset, which we break
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    at = data.find(b"\x01\x10\x00\x02")  # Model tag, ASCII, big-endian (Pillow writes "MM")
    assert at > 0
    data[at + 8 : at + 12] = (0x00FF0000).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def fringed(rgb: np.ndarray) -> np.ndarray:
    """What a model gives for a grey photo: nearly grey, with faint colour fringes."""
    return np.clip(rgb + np.array([0.02, -0.01, 0.0], np.float32), 0, 1)


# --- grey in, grey out ---------------------------------------------------------------------------------------


@pytest.fixture
def grey_sources(tmp_path) -> dict[str, Path]:
    g8 = np.asarray(Image.open(DATA / "astronaut_64.png").convert("L"))
    g16 = g8.astype(np.uint16) * 257 + 7  # values no 8-bit file can hold
    paths = {"jpeg8": tmp_path / "g8.jpg", "png16": tmp_path / "g16.png", "tiff16": tmp_path / "g16.tif"}
    Image.fromarray(g8).save(paths["jpeg8"], quality=95)
    Image.fromarray(g16).save(paths["png16"])
    tifffile.imwrite(paths["tiff16"], g16, photometric="minisblack")
    return paths


@pytest.mark.parametrize(
    ("source", "suffix", "mode"),
    [("jpeg8", ".png", "L"), ("jpeg8", ".jpg", "L"), ("png16", ".png", "I;16"), ("tiff16", ".tif", "I;16"),
     ("png16", ".tif", "I;16"), ("tiff16", ".jpg", "L")],
)  # fmt: skip
def test_grey_photos_are_written_grey_at_their_depth(tmp_path, grey_sources, source, suffix, mode):
    photo = read_photo(grey_sources[source])
    assert photo.grey
    model_output = fringed(photo.rgb)
    out = write_photo(tmp_path / f"out{suffix}", model_output, like=photo)
    assert Image.open(out).mode.startswith(mode)
    back = read_photo(out)
    assert back.grey and back.bit_depth == (16 if mode == "I;16" else 8)
    # the tone is the channels' mean: the fringes cancel out, the picture is kept
    error = np.abs(back.rgb[..., 0] - model_output.mean(axis=2))
    if suffix == ".jpg":  # lossy: on average within a level or two
        assert error.mean() < 0.01
    else:
        assert error.max() < 0.004


def test_a_16_bit_grey_photo_keeps_its_16_bit_levels(tmp_path, grey_sources):
    photo = read_photo(grey_sources["png16"])
    write_photo(tmp_path / "o.png", photo.rgb, like=photo)
    original = np.asarray(Image.open(grey_sources["png16"]))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), original)


def test_grey_with_transparency_stays_grey_with_alpha(tmp_path):
    g = np.asarray(Image.open(DATA / "astronaut_64.png").convert("L"))
    a = np.full_like(g, 255)
    a[:20] = 0
    Image.fromarray(np.dstack([g, a]), "LA").save(tmp_path / "la.png")
    photo = read_photo(tmp_path / "la.png")
    write_photo(tmp_path / "o.png", fringed(photo.rgb), like=photo)
    assert Image.open(tmp_path / "o.png").mode == "LA"


def test_colour_photos_stay_colour(tmp_path):
    photo = read_photo(DATA / "astronaut_64.png")
    write_photo(tmp_path / "o.png", photo.rgb, like=photo)
    assert Image.open(tmp_path / "o.png").mode == "RGB"


# --- damaged EXIF --------------------------------------------------------------------------------------------


def test_damaged_exif_is_one_note_of_ours_and_the_readable_tags_are_kept(tmp_path):
    damaged_exif_jpeg(tmp_path / "canon.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may escape, from any path that opens the photo
        from desktop_sr.batch.plan import header_problem
        from desktop_sr.cli.strength_maps import photo_size

        assert header_problem(tmp_path / "canon.jpg") is None and photo_size(tmp_path / "canon.jpg") is not None
        photo = read_photo(tmp_path / "canon.jpg")
        write_photo(tmp_path / "o.png", photo.rgb, like=photo)
        write_photo(tmp_path / "o.tif", photo.rgb, like=photo)
    assert photo.warnings == [METADATA_PARTLY_UNREADABLE]
    with Image.open(tmp_path / "o.png") as out:
        assert out.getexif().get(0x010F) == "Canon"


def test_a_clean_photo_has_no_notes(tmp_path):
    assert read_photo(DATA / "astronaut_512.jpg").warnings == []


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "desktop_sr", *args]


def test_cli_grey_jpeg_with_damaged_exif_and_an_ignored_colour_fix(tmp_path):
    """The bundled model on a grey Canon-like JPEG: a grey PNG and plain notes, no Python warning; the colour fix
    it cannot apply is named as ignored, like realism and prompt."""
    damaged_exif_jpeg(tmp_path / "canon.jpg", grey=True, size=16)
    proc = subprocess.run(
        _cli("upscale", "canon.jpg", "-o", "out.png", "--quiet", "--device", TARGET.device, "--color-fix", "wavelet"),
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "Warning" not in proc.stderr
    assert proc.stderr.count(METADATA_PARTLY_UNREADABLE) == 1
    assert "--color-fix wavelet is ignored: the colour fix is off for the bundled model" in proc.stderr
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "L" and out.size == (64, 64)


# --- Ctrl-C ----------------------------------------------------------------------------------------------------


class Child:
    """A CLI process whose stderr is collected in the background, so the test can wait for a word in it."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(args, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.err = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(4096):
            self.err += chunk

    def wait_for(self, word: bytes, timeout: float = 900) -> None:
        end = time.monotonic() + timeout
        while word not in self.err:
            if self.proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"{word!r} never appeared: {self.err.decode(errors='replace')}")
            time.sleep(0.05)

    def interrupt(self) -> None:
        os.kill(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.err.decode(errors="replace")


@POSIX_ONLY
def test_ctrl_c_during_upscale_is_one_line_and_leaves_no_file(tmp_path):
    # large enough that the render is still running when Ctrl-C comes (64 px could finish first on an idle machine)
    Image.open(DATA / "astronaut_512.jpg").convert("RGB").resize((256, 256)).save(tmp_path / "in.png")
    child = Child(_cli("upscale", "in.png", "-o", "out/in_x4.png", "--device", TARGET.device), tmp_path)
    child.wait_for(b"in.png")  # the tile bar is up: the model is loaded and the photo is being read or rendered
    time.sleep(0.5)
    child.interrupt()
    pressed = time.monotonic()
    code, err = child.finish()
    assert time.monotonic() - pressed < 30  # not after the tile: the model call runs off the main thread
    assert code == ExitCode.INTERRUPTED
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "desktop-sr: interrupted" in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


@POSIX_ONLY
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_batch_cancels_then_aborts_cleanly(tmp_path, presses):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a", "b"):
        Image.open(DATA / "astronaut_128.png").save(src / f"{name}.png")
    child = Child(_cli("batch", "photos", "-o", "out", "--device", TARGET.device), tmp_path)
    child.wait_for(b"a.png")
    time.sleep(0.5)
    child.interrupt()
    if presses == 2:
        child.wait_for(b"Ctrl-C again")
        child.interrupt()
    code, err = child.finish()
    assert code == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert ("cancelled" in err) if presses == 1 else ("desktop-sr: interrupted" in err)
    images = [p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png" or ".part" in p.name]
    assert images == []


# --- upscale's output options ----------------------------------------------------------------------------------


def test_an_existing_output_fails_before_the_model_loads(tmp_path):
    """With a model that cannot load, reaching the load would exit 3: the existing output must stop it first."""
    Image.open(DATA / "astronaut_64.png").save(tmp_path / "in.png")
    (tmp_path / "existing.png").write_bytes(b"keep me")
    proc = subprocess.run(
        _cli("upscale", "in.png", "-o", "existing.png", "--model", "missing_sd", "--lora", "missing.pkl"),
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "exists (use --overwrite)" in proc.stderr and "cannot load" not in proc.stderr
    assert (tmp_path / "existing.png").read_bytes() == b"keep me"


@pytest.mark.parametrize("args", [["--quality", "0"], ["--bit-depth", "12"], ["--format", "gif"]])
def test_bad_output_options_are_usage_errors(tmp_path, args):
    proc = subprocess.run(_cli("upscale", "x.png", "-o", "y.png", *args), capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "error" in proc.stderr


@pytest.mark.slow  # ~17 s; the options' checks before the model loads are in tests/test_preflight.py
def test_upscale_has_batchs_output_options(tmp_path, tiny_model):
    """JPEG at a chosen quality, metadata stripped, and a note that the transparency was flattened."""
    rgba = Image.open(DATA / "astronaut_64.png").convert("RGBA").crop((0, 0, 32, 24))
    alpha = np.full((24, 32), 255, np.uint8)
    alpha[:, :8] = 0
    rgba.putalpha(Image.fromarray(alpha))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    rgba.save(tmp_path / "in.png", exif=exif.tobytes())
    model = ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]
    runs = {}
    for quality in (30, 95):
        out = f"q{quality}.jpg"
        proc = subprocess.run(
            _cli("upscale", "in.png", "-o", out, "--scale", "2", "--quality", str(quality), "--strip-metadata", *model),
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )  # fmt: skip
        assert proc.returncode == ExitCode.OK, proc.stderr
        assert proc.stderr.count("cannot hold transparency: it is flattened onto white") == 1
        with Image.open(tmp_path / out) as im:
            assert im.format == "JPEG" and im.size == (64, 48) and not im.getexif()
            assert np.asarray(im)[:, :12].min() > 200  # flattened onto white, as the note says
        runs[quality] = (tmp_path / out).stat().st_size
    assert runs[30] < runs[95]


# --- models verify and the help texts ----------------------------------------------------------------------------


def test_models_verify_reports_a_flipped_byte_in_the_bundled_model(tmp_path):
    from desktop_sr.engine.backends.bundled.files import weights_available

    if not weights_available(tmp_path):
        pytest.skip("the bundled model's weights are not installed on this platform")
    from desktop_sr.engine.backends.bundled.weights import converted_path, load_weights

    load_weights(root=tmp_path)  # what the first start does: convert the packaged weights into the models folder
    converted = converted_path(tmp_path)
    verify = _cli("models", "--dir", str(tmp_path), "verify", "--quiet")
    intact = subprocess.run(verify, capture_output=True, text=True, timeout=300)
    assert intact.returncode == 0 and "bundled: all 3 files" in intact.stdout, intact.stderr
    data = bytearray(converted.read_bytes())
    data[len(data) // 2] ^= 0x01
    converted.write_bytes(bytes(data))
    damaged = subprocess.run(verify, capture_output=True, text=True, timeout=300)
    assert damaged.returncode == 1
    assert str(converted) in damaged.stderr and "damaged" in damaged.stderr
    assert converted.read_bytes() == bytes(data)  # reported, not silently repaired


def test_help_texts_are_plain_text_and_every_action_is_described():
    commands = [[], ["upscale"], ["batch"], ["models"]]
    commands += [["models", action] for action in ("list", "import", "verify", "remove", "default", "download")]
    for command in commands:
        proc = subprocess.run(_cli(*command, "--help"), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "``" not in proc.stdout and ":mod:" not in proc.stdout, command
        description = proc.stdout.split("\n\n")[1]
        assert not description.startswith(("positional arguments", "options")), command


def test_models_list_has_headers_and_the_name_the_app_shows(tmp_path):

    proc = subprocess.run(_cli("models", "--dir", str(tmp_path), "list"), capture_output=True, text=True, timeout=300)
    header = next(line for line in proc.stdout.splitlines() if "STATUS" in line)
    assert header.split()[:4] == ["ID", "STATUS", "SIZE", "KIND"]
    if "bundled" in proc.stdout:
        assert bundled_spec().name in proc.stdout


# --- time estimates ----------------------------------------------------------------------------------------------


def test_render_clock_gives_a_rate_and_eta_from_the_first_tile():
    from desktop_sr.timing import RenderClock

    now = [100.0]
    clock = RenderClock(clock=lambda: now[0])
    clock.update(0, 10, "upscale")
    assert clock.eta() is None  # nothing measured yet: no made-up rate
    now[0] += 6.0
    clock.update(1, 10, "upscale")
    assert clock.seconds_per_tile() == pytest.approx(6.0)
    assert clock.eta() == pytest.approx(54.0)
    now[0] += 6.0
    clock.update(2, 10, "upscale")
    assert clock.eta() == pytest.approx(48.0)


def test_cost_book_remembers_per_model_and_device(tmp_path):
    from desktop_sr.timing import CostBook

    book = CostBook(tmp_path / "cost.json")
    assert book.estimate("m", "cpu", 10.0) is None
    book.record("m", "cpu", 2.0, 20.0)  # 10 s per megapixel of work
    book.record("m", "cpu", 4.0, 40.0)
    found = CostBook(tmp_path / "cost.json").estimate("m", "cpu", 3.0)
    assert found is not None and found.low < 30.0 < found.high and found.seconds == pytest.approx(30.0)
    assert book.estimate("m", "cuda:0", 1.0) is None and book.estimate("other", "cpu", 1.0) is None


def test_confirm_long_job_asks_on_a_terminal_and_not_elsewhere(monkeypatch, capsys):
    from desktop_sr.cli.common import confirm_long_job
    from desktop_sr.render_cost import Estimate

    assert confirm_long_job(Estimate(100.0, 140.0), "x", assume_yes=False)  # short: no question, no warning
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    hour = Estimate(3000.0, 4200.0)
    assert not confirm_long_job(hour, "x", assume_yes=False)
    assert "will take 50 min 00 s to 1 h 10 min" in capsys.readouterr().err
    assert confirm_long_job(hour, "x", assume_yes=True)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert confirm_long_job(hour, "x", assume_yes=False)  # a script: warned, not stuck


@pytest.mark.slow  # ~18 s (two CLI runs); estimates and their question: tests/test_render_cost.py, test_ui_newuser
def test_cli_warns_before_a_render_measured_as_long(tmp_path, tiny_model):
    """The first run measures this machine; a later one whose estimate is long warns before it starts."""
    import json

    Image.open(DATA / "astronaut_64.png").crop((0, 0, 32, 24)).save(tmp_path / "in.png")
    model = ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]
    env = {**os.environ, "DESKTOP_SR_CACHE_DIR": str(tmp_path / "cache")}
    run = _cli("upscale", "in.png", "-o", "out.png", "--scale", "2", "--overwrite", *model)
    first = subprocess.run(
        run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, stdin=subprocess.DEVNULL
    )
    assert first.returncode == ExitCode.OK and "will take about" not in first.stderr, first.stderr
    book = tmp_path / "cache" / "render-cost.json"
    records = json.loads(book.read_text())
    assert list(records) == ["pisa_tiny @ cpu"]
    slow = {k: {"samples": [[w, s * 1e6] for w, s in v["samples"]]} for k, v in records.items()}
    book.write_text(json.dumps(slow))  # as if this machine were very slow
    second = subprocess.run(
        run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, stdin=subprocess.DEVNULL
    )
    assert second.returncode == ExitCode.OK  # stdin is no terminal: warned, not stuck
    assert "in.png (64 x 48) will take" in second.stderr


def test_the_bundled_model_has_one_name(tmp_path):
    from desktop_sr.engine.backends.bundled.files import BUNDLED_NAME
    from desktop_sr.models import ModelStore

    [row] = [r for r in ModelStore(tmp_path).rows() if r.id == "bundled"]
    assert row.name == BUNDLED_NAME == bundled_spec().name


# --- getting PiSA-SR ---------------------------------------------------------------------------------------------


def test_get_pisa_offline_says_which_two_things_to_copy_where(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(_cli("models", "--dir", str(tmp_path), "get-pisa"), capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 1
    assert str(tmp_path / "get-pisa" / "stable-diffusion-2-1-base") in proc.stderr
    assert str(tmp_path / "get-pisa" / "pisa_sr.pkl") in proc.stderr
    assert "huggingface.co/stabilityai/stable-diffusion-2-1-base" in proc.stderr
    assert "drive.google.com" in proc.stderr  # where the authors publish the adapter


def test_get_pisa_imports_the_saved_adapter_and_records_its_sha256(tmp_path, tiny_model):
    import hashlib
    import shutil

    from desktop_sr.models.registry import ModelStore

    # offline, with the two parts copied where the instructions said: the same command finishes the job
    stage = tmp_path / "models" / "get-pisa"
    shutil.copytree(tiny_model["base"], stage / "stable-diffusion-2-1-base")
    shutil.copy(tiny_model["pkl"], stage / "pisa_sr.pkl")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = _cli("models", "--dir", str(tmp_path / "models"), "get-pisa", "--quiet", "--default")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    sha = hashlib.sha256((stage / "pisa_sr.pkl").read_bytes()).hexdigest()
    assert f"sha256 {sha}" in proc.stdout
    entry = ModelStore(tmp_path / "models").entries()[0]
    assert entry.name == "PiSA-SR" and sha in {f.sha256 for f in entry.files}


def test_get_pisa_refuses_a_file_that_is_not_a_pisa_adapter(tmp_path, tiny_model):
    bad = tmp_path / "pisa_sr.pkl"
    bad.write_bytes(b"\x80\x04not really a checkpoint")
    cmd = _cli("models", "--dir", str(tmp_path / "models"), "get-pisa", "--quiet", "--base", str(tiny_model["base"]),
               "--adapter", str(bad))  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr


# --- the batch lock ----------------------------------------------------------------------------------------------


def test_the_batch_lock_leaves_no_file_behind_and_still_excludes_a_second_batch(tmp_path):
    from desktop_sr.batch.manifest import LOCK_NAME, Manifest, ManifestError

    first = Manifest(tmp_path / "out")
    first.open()
    assert (tmp_path / "out" / LOCK_NAME).exists()
    with pytest.raises(ManifestError, match="another batch"):
        Manifest(tmp_path / "out").open()
    first.close()
    assert not (tmp_path / "out" / LOCK_NAME).exists()  # no 0-byte file left in the user's folder
    again = Manifest(tmp_path / "out")
    again.open()  # and the folder can be used again
    again.close()
    assert not (tmp_path / "out" / LOCK_NAME).exists()
