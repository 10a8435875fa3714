"""Shared fixtures: tiny random SD models built once per test session (no downloads), Qt offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# measured render times go to a throw-away cache, never the user's (subprocess tests inherit it)
os.environ.setdefault("DESKTOP_SR_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="desktop-sr-test-cache-"))
# strength masks painted in tests never land in the user's data folder (subprocess tests inherit it)
os.environ.setdefault("DESKTOP_SR_MASKS_DIR", __import__("tempfile").mkdtemp(prefix="desktop-sr-test-masks-"))
# the commands' and the app's log file too (desktop_sr.logfile)
os.environ.setdefault("DESKTOP_SR_LOG_DIR", __import__("tempfile").mkdtemp(prefix="desktop-sr-test-log-"))

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from device_target import TARGET, Target  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cpu_deterministic: compares results bit for bit, which only the CPU's kernels guarantee"
    )
    config.addinivalue_line(
        "markers", "precision_pass: run a second time in the GPU's precision (tests/test_precision_pass.py)"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"desktop-sr engine tests on {TARGET.device}, precision {TARGET.precision.value}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TARGET.deterministic:
        return
    skip = pytest.mark.skip(reason=f"bit-for-bit comparison: not guaranteed on {TARGET.device}")
    for item in items:
        if "cpu_deterministic" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def target() -> Target:
    """The device and precision engine tests run in (tests/device_target.py: DESKTOP_SR_TEST_DEVICE/PRECISION)."""
    return TARGET


@pytest.fixture(autouse=True)
def _own_render_cost_book(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test measures render times into its own cache: a slow render in one test (a loaded machine) must not
    make the next one's render "long", which would open the GUI's question and wait for an answer."""
    monkeypatch.setenv("DESKTOP_SR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random SD-2.1 look-alike in diffusers layout plus a random PiSA-SR LoRA in both checkpoint formats.

    Returns paths: ``base`` (the diffusers folder), ``pkl`` (official layout), ``safetensors`` (app format).
    """
    from desktop_sr.engine.backends.pisa.checkpoint import convert_pkl_to_app
    from desktop_sr.engine.backends.pisa.model import load_unet
    from desktop_sr.engine.backends.pisa.synthetic import build_random_sd, random_lora, write_official_pkl

    root = tmp_path_factory.mktemp("tiny_sd")
    base = build_random_sd(root / "sd")
    ckpt = random_lora(load_unet(base), seed=1)
    pkl = write_official_pkl(ckpt, root / "lora" / "pisa_tiny.pkl")
    st = convert_pkl_to_app(pkl, root / "lora" / "pisa_tiny.safetensors")
    return {"base": base, "pkl": pkl, "safetensors": st}


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo (scikit-image's astronaut, public domain) cropped small: 48 x 64 x 3 float32 in [0, 1]."""
    from PIL import Image

    path = Path(__file__).parent / "data" / "astronaut_64.png"
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)[:48] / 255.0


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    """A small real photo (48 x 40 crop of the astronaut) in a file, for the GUI tests."""
    from PIL import Image

    p = tmp_path / "astronaut.png"
    Image.open(Path(__file__).parent / "data" / "astronaut_64.png").crop((0, 0, 48, 40)).save(p)
    return p


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The main window with no model loaded, shown. ``window.errors`` records every error dialog as (title, text,
    whether the busy bar was visible, the badge text): what was on screen while the dialog was up."""
    from PySide6.QtWidgets import QMessageBox

    from desktop_sr.ui.main_window import MainWindow

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    errors: list[tuple[str, str, bool, str]] = []

    def critical(parent, title, text, *a):  # type: ignore[no-untyped-def]
        errors.append((title, text, w.status.progress.isVisible(), w.status.lbl_badge.text()))

    monkeypatch.setattr(QMessageBox, "critical", critical)
    w = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    w.errors = errors  # type: ignore[attr-defined]
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
