"""``desktop-sr --version`` and ``--selftest`` from source: the version in one place, the output checks, the clear
failure without a model, and the whole self-test in a fresh interpreter as an installed app would run it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr import __version__
from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.resources import DATA_PATTERNS, RESOURCES_DIR, icon_path, sample_photo_path
from desktop_sr.selftest import (
    CROP,
    SelftestFailure,
    SelftestReport,
    box_downscale,
    check_upscale,
    load_sample,
    no_model_reason,
    process_age,
    run_engine_check,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
HAVE_BUNDLED = importlib.util.find_spec("desktop_sr.engine.backends.bundled") is not None


def source_env(tmp_path: Path) -> dict[str, str]:
    """A first start from source: empty models and settings folders, no display, no network."""
    env = dict(os.environ)
    env.update(
        DESKTOP_SR_MODELS_DIR=str(tmp_path / "models"),
        DESKTOP_SR_CONFIG_DIR=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        HF_HUB_OFFLINE="1",
    )
    env.pop("DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must choose offscreen by itself
    return env


# -- version -----------------------------------------------------------------------------------------------------------
def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"desktop-sr {__version__}"


def test_version_flag_in_a_fresh_interpreter():
    proc = subprocess.run([sys.executable, "-m", "desktop_sr", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"desktop-sr {__version__}"


def test_the_version_lives_in_one_place():
    """pyproject reads it from desktop_sr.__version__; no other file of the package spells a version number."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "desktop_sr.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", __version__)
    spelled = [
        p.relative_to(ROOT)
        for p in (ROOT / "desktop_sr").rglob("*.py")
        if p.name != "__init__.py" and re.search(rf"['\"]{re.escape(__version__)}['\"]", p.read_text())
    ]
    assert not spelled, f"version literal outside desktop_sr/__init__.py: {spelled}"


def test_about_box_shows_the_version_and_licences(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from desktop_sr.ui.main_window import MainWindow

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window = MainWindow(tmp_path, load_model=False)
    qtbot.addWidget(window)
    try:
        window.menus.act_about.trigger()
    finally:
        window.shutdown_worker()
    assert shown and f"desktop-sr {__version__}" in shown[0]
    assert "Apache-2.0" in shown[0] and "LGPL" in shown[0]


# -- resources ---------------------------------------------------------------------------------------------------------
def test_sample_photo_and_icon_are_shipped_with_the_package():
    sample = Image.open(sample_photo_path())
    assert sample.size[0] == 256 and 150 <= sample.size[1] <= 256 and sample.mode == "RGB"
    assert Image.open(icon_path()).size == (256, 256)
    ico = Image.open(RESOURCES_DIR / "desktop-sr.ico")
    assert (16, 16) in ico.info["sizes"] and (256, 256) in ico.info["sizes"]
    readme = (RESOURCES_DIR / "README.md").read_text()
    assert "sample_chelsea.png" in readme and "CC0" in readme  # source and licence are recorded
    # pip installs get every file the self-test and the window need.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(project["tool"]["setuptools"]["package-data"]["desktop_sr.resources"]) == sorted(DATA_PATTERNS)
    shipped = {p.name for pattern in DATA_PATTERNS for p in RESOURCES_DIR.glob(pattern)}
    assert {"sample_chelsea.png", "desktop-sr.png", "desktop-sr.ico", "desktop-sr.icns"} <= shipped


def test_load_sample_centre_crop():
    full = load_sample(None)
    crop = load_sample()
    assert full.shape == (170, 256, 3) and full.dtype == np.float32
    assert crop.shape == (CROP[1], CROP[0], 3)
    y0, x0 = (170 - CROP[1]) // 2, (256 - CROP[0]) // 2
    np.testing.assert_array_equal(crop, full[y0 : y0 + CROP[1], x0 : x0 + CROP[0]])


# -- output checks ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lq_and_bicubic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample crop, its bicubic x4, and a plausible 'super-resolution': bicubic with an unsharp mask."""
    lq = load_sample()
    h, w = lq.shape[:2]
    img = Image.fromarray((lq * 255).round().astype(np.uint8))
    bicubic = np.asarray(img.resize((w * 4, h * 4), Image.Resampling.BICUBIC), np.float32) / 255
    blurred = np.asarray(
        Image.fromarray((bicubic * 255).round().astype(np.uint8)).resize((w, h), Image.Resampling.BOX)
        .resize((w * 4, h * 4), Image.Resampling.BILINEAR), np.float32,
    ) / 255  # fmt: skip
    sharp = np.clip(bicubic + 0.6 * (bicubic - blurred), 0, 1)
    return lq, bicubic, sharp


def test_a_plausible_upscale_passes(lq_and_bicubic):
    lq, bicubic, sharp = lq_and_bicubic
    m = check_upscale(lq, sharp, bicubic)
    assert m["psnr_vs_bicubic"] > 18 and m["correlation"] > 0.9 and m["psnr_down_vs_input"] > 22


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("wrong size", lambda lq, b, s: s[:-4], "expected"),
        ("NaN", lambda lq, b, s: np.where(np.arange(s.size).reshape(s.shape) == 7, np.nan, s), "NaN"),
        ("out of range", lambda lq, b, s: s * 2.0, "outside [0, 1]"),
        ("constant", lambda lq, b, s: np.full_like(s, 0.5), "constant"),
        ("just bicubic", lambda lq, b, s: b.copy(), "model did not run"),
        ("noise", lambda lq, b, s: np.random.default_rng(0).random(s.shape, dtype=np.float32), "far from bicubic"),
        ("mirrored", lambda lq, b, s: s[:, ::-1].copy(), "far from bicubic"),
        ("colours swapped", lambda lq, b, s: s[..., ::-1].copy(), ""),
    ],
)
def test_broken_outputs_fail_with_a_reason(lq_and_bicubic, name, make, words):
    lq, bicubic, sharp = lq_and_bicubic
    with pytest.raises(SelftestFailure) as exc:
        check_upscale(lq, make(lq, bicubic, sharp), bicubic)
    assert words in str(exc.value)
    assert exc.value.exit_code == ExitCode.FAILED


def test_box_downscale_averages_blocks():
    x = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    np.testing.assert_array_equal(box_downscale(x, 2)[..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_report_line_has_verdict_facts_and_timings():
    report = SelftestReport(facts={"model": "m on cpu fp32"})
    with report.step("upscale"):
        pass
    line = report.line(False, "broken")
    assert line.startswith("desktop-sr selftest FAILED: broken | model m on cpu fp32 | timings: upscale 0.00s")
    assert "\n" not in line
    age = process_age()
    assert age is None or 0 < age < 24 * 3600


# -- failures without a model ----------------------------------------------------------------------------------------
def test_no_model_is_a_clear_model_failure(monkeypatch):
    with pytest.raises(SelftestFailure) as exc:
        run_engine_check(None, SelftestReport())
    assert exc.value.exit_code == ExitCode.MODEL and "no default model" in str(exc.value)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    reason = no_model_reason()
    assert "desktop_sr.engine.backends.bundled" in reason and "not part of this installation" in reason


def test_a_model_that_cannot_load_is_a_model_failure(tmp_path):

    spec = pisa_spec(tmp_path / "no-base", tmp_path / "no-lora.pkl", name="missing")
    with pytest.raises(SelftestFailure) as exc:
        run_engine_check(spec, SelftestReport())
    assert exc.value.exit_code == ExitCode.MODEL and "could not be loaded" in str(exc.value)


def test_selftest_in_process_without_a_default_model(qapp, monkeypatch, capsys):
    """The Qt half runs for real (window built, painted, closed); the missing model then fails with exit code 3."""
    import desktop_sr.ui.selftest as ui_selftest
    from desktop_sr.selftest import run_selftest

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(ui_selftest, "default_model_spec", lambda: None)
    assert run_selftest() == ExitCode.MODEL
    err = capsys.readouterr().err
    assert "desktop-sr selftest FAILED: no default model" in err
    assert "qt Qt 6" in err and "qt+window" in err  # the window step ran and was timed


def test_selftest_with_the_tiny_pisa_model(qapp, monkeypatch, capsys, tiny_model):
    """The whole pipeline with a real (tiny, random) model: the checks run and reject its meaningless output,
    saying which check failed, instead of passing anything the model returns."""
    import desktop_sr.ui.selftest as ui_selftest
    from desktop_sr.selftest import run_selftest

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    spec = pisa_spec(tiny_model["base"], tiny_model["pkl"], name="tiny")
    monkeypatch.setattr(ui_selftest, "default_model_spec", lambda: spec)
    code = run_selftest(device=TARGET.device)
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED, err
    assert "FAILED: the result" in err and "model pisa_tiny on cpu fp32" in err and "upscale" in err


# -- the real thing --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_BUNDLED, reason="the bundled default model is not installed")
def test_selftest_from_source_passes(tmp_path):
    """``python -m desktop_sr --selftest`` as a new user's first start: the bundled model is converted into the empty
    models folder, the sample photo upscaled and checked; exit 0 and one report line."""
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_sr", "--selftest"],
        capture_output=True,
        text=True,
        env=source_env(tmp_path),
        cwd=tmp_path,  # not the repository: the installed package must find its own resources
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("desktop-sr selftest ok"), proc.stdout
    assert f"version {__version__}" in lines[0] and "-> " in lines[0] and "upscale" in lines[0]
    assert not (tmp_path / "config" / "settings.json").exists()  # a person's saved settings are never touched
