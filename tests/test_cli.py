"""The headless CLI end to end on the tiny model: a correct PNG out, clean failures with clear messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr.cli import ExitCode, main

DATA = Path(__file__).parent / "data"


def model_args(tiny_model) -> list[str]:
    return ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]


def test_upscale_writes_a_correct_png(tmp_path, tiny_model):
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(src)
    out = tmp_path / "out.png"
    code = main(["upscale", str(src), "-o", str(out), "--pix", "0.8", "--sem", "1.2", *model_args(tiny_model)])
    assert code == ExitCode.OK
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (160, 128) and img.mode == "RGB"
    # Same pixels as the engine gives for those parameters.
    from desktop_sr.engine.api import RenderParams
    from desktop_sr.engine.backends.pisa.session import load_pisa_session

    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    session.set_photo(np.asarray(Image.open(src).convert("RGB"), np.float32) / 255)
    expected = np.round(session.render(RenderParams(pix=0.8, sem=1.2)) * 255)
    assert np.abs(np.asarray(img, np.float32) - expected).max() <= 1


def test_upscale_into_a_folder_at_x2(tmp_path, tiny_model):
    src = tmp_path / "photo.jpg"
    Image.open(DATA / "astronaut_64.png").convert("RGB").save(src, quality=90)
    out_dir = tmp_path / "results"
    assert main(["upscale", str(src), "-o", str(out_dir), "--scale", "2", *model_args(tiny_model)]) == ExitCode.OK
    assert Image.open(out_dir / "photo_x2.png").size == (128, 128)


def test_missing_input_fails_cleanly(tmp_path, tiny_model, capsys):
    code = main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png"), *model_args(tiny_model)])
    assert code == ExitCode.FAILED
    assert "nope.png: file not found" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_corrupt_input_fails_cleanly_and_others_still_run(tmp_path, tiny_model, capsys):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 32, 32)).save(good)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    code = main(["upscale", str(bad), str(good), "-o", str(out), *model_args(tiny_model)])
    assert code == ExitCode.FAILED
    assert "bad.png" in capsys.readouterr().err
    assert (out / "good_x4.png").is_file() and not (out / "bad_x4.png").exists()


def test_model_is_required_until_a_default_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "no-models"))
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").save(src)
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.png"), "--lora", str(tmp_path / "x.pkl")])
    assert code == ExitCode.MODEL
    assert "--model" in capsys.readouterr().err


def test_bad_lora_file_is_named(tmp_path, tiny_model, capsys):
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").save(src)
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"nonsense" * 50)
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.png"), "--model", str(tiny_model["base"]),
                 "--lora", str(bad), "--quiet"])  # fmt: skip
    assert code == ExitCode.MODEL
    assert str(bad) in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--pix", "3"], ["--realism", "1000"], ["--scale", "5"]])
def test_bad_options_are_usage_errors(tmp_path, args):
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_sr", "upscale", "x.png", "-o", "y.png", *args],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "error" in proc.stderr


def test_version(capsys):
    from desktop_sr import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out
