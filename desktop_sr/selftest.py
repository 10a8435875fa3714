"""The Qt-free half of ``desktop-sr --selftest``: load the default model, upscale the bundled sample photo, check
the result, and report timings.

Why a self-test: a frozen (PyInstaller) app can import fine on the build machine and still fail on a user's
workstation because a shared library, a Qt plugin or a model file was left out of the bundle. ``--selftest`` runs
the same code path a person would (the app's window, the default model, a real photo) without a display and turns
the outcome into an exit code and one line of text, so a build script, a CI job or a support person can tell in
seconds whether an installation works. The Qt half (creating the application and the main window) lives in
:mod:`desktop_sr.ui.selftest`, which drives this module; nothing here imports Qt.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import nullcontext

import numpy as np

from . import __version__
from .exit_codes import ExitCode
from .selftest_report import SelftestFailure, SelftestReport, process_age  # noqa: F401 - the checks' vocabulary

#: The self-test upscales a centre crop of the sample photo no larger than this (in input pixels). Real-ESRGAN x4plus
#: runs at about 0.15 s per 1000 input pixels on two CPU cores, so the whole 256 x 170 sample would take ~10 s; a
#: 128 x 96 crop runs every layer of the network just the same in ~2 s, which keeps the check quick enough to run after
#: every install and in the test suite.
CROP = (128, 96)  # (width, height)
SCALE = 4

# Plausibility thresholds, in terms a reviewer can check against the numbers in the report. A working x4 model on
# a clean photo stays close to bicubic (it sharpens edges and texture; it does not move or recolour things): PSNR
# against bicubic is typically 25-35 dB, and the result shrunk back by 4 matches the input. Broken weights (random,
# wrong channel order, wrong value range) fail at least one of these by a wide margin.
MIN_STD = 0.02  # a constant (or nearly constant) image means the network produced nothing
MIN_DIFF_FROM_BICUBIC = 1e-3  # mean absolute difference: identical to bicubic means the model never ran
MIN_PSNR_VS_BICUBIC = 18.0  # dB: far from bicubic means garbage (noise, wrong colours, shifted content)
MIN_CORRELATION = 0.9  # Pearson correlation with bicubic: same picture, not a different one
MIN_PSNR_CONSISTENCY = 22.0  # dB: the result box-downscaled by 4 against the input photo


def environment_facts() -> dict[str, str]:
    """Version, whether frozen, and the Python that runs: the first things a support person asks."""
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    return {"version": __version__, "build": f"{frozen}, Python {sys.version.split()[0]}"}


def load_sample(crop: tuple[int, int] | None = CROP) -> np.ndarray:
    """The bundled sample photo through the app's own reader (so the imaging code is exercised too), centre-cropped
    to ``crop`` (width, height); None keeps the whole photo."""
    from .imaging import read_photo
    from .resources import sample_photo_path

    try:
        path = sample_photo_path()
    except FileNotFoundError as exc:
        raise SelftestFailure(str(exc)) from exc
    rgb = read_photo(path).rgb
    if crop is not None:
        w, h = min(crop[0], rgb.shape[1]), min(crop[1], rgb.shape[0])
        y0, x0 = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        rgb = rgb[y0 : y0 + h, x0 : x0 + w]
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def box_downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: the simplest model of how the result should shrink back to the input."""
    h, w = rgb.shape[0] // factor * factor, rgb.shape[1] // factor * factor
    blocks = rgb[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3))


def check_upscale(lq: np.ndarray, out: np.ndarray, bicubic: np.ndarray, scale: int = SCALE) -> dict[str, float]:
    """Check that ``out`` is a plausible ``scale``x super-resolution of ``lq``; returns the measured numbers.

    Raises :class:`SelftestFailure` naming the first check that failed and the number that failed it.
    """
    want = (lq.shape[0] * scale, lq.shape[1] * scale, 3)
    out = np.asarray(out)
    if out.shape != want:
        raise SelftestFailure(f"the result is {out.shape}, expected {want} ({scale}x the {lq.shape[:2]} input)")
    if np.asarray(bicubic).shape != want:
        raise SelftestFailure(f"the bicubic reference is {np.asarray(bicubic).shape}, expected {want}")
    if not np.isfinite(out).all():
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise SelftestFailure(f"the result has {bad} NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise SelftestFailure(f"the result's values span [{lo:.3f}, {hi:.3f}], outside [0, 1]")
    std = float(out.std())
    if std < MIN_STD:
        raise SelftestFailure(f"the result is (nearly) constant: standard deviation {std:.4f} < {MIN_STD}")
    diff = float(np.abs(out - bicubic).mean())
    if diff < MIN_DIFF_FROM_BICUBIC:
        raise SelftestFailure(f"the result equals bicubic (mean difference {diff:.5f}): the model did not run")
    psnr = _psnr(out, bicubic)
    if psnr < MIN_PSNR_VS_BICUBIC:
        raise SelftestFailure(f"the result is implausibly far from bicubic: PSNR {psnr:.1f} dB < {MIN_PSNR_VS_BICUBIC}")
    corr = float(np.corrcoef(out.ravel(), np.asarray(bicubic).ravel())[0, 1])
    if corr < MIN_CORRELATION:
        raise SelftestFailure(f"the result does not look like the photo: correlation {corr:.3f} < {MIN_CORRELATION}")
    consistency = _psnr(box_downscale(out, scale), box_downscale(np.asarray(bicubic), scale))
    consistency_lq = _psnr(box_downscale(out, scale), lq)
    if consistency_lq < MIN_PSNR_CONSISTENCY:
        raise SelftestFailure(
            f"the result shrunk back by {scale} does not match the input: PSNR {consistency_lq:.1f} dB "
            f"< {MIN_PSNR_CONSISTENCY}"
        )
    return {
        "std": std,
        "diff": diff,
        "psnr_vs_bicubic": psnr,
        "correlation": corr,
        "psnr_down_vs_input": consistency_lq,
        "psnr_down_vs_bicubic_down": consistency,
    }


def no_model_reason() -> str:
    """Why there is no default model, in words that say what to install or do."""
    try:
        bundled = importlib.util.find_spec("desktop_sr.engine.backends.bundled") is not None
    except (ImportError, ValueError):
        bundled = False
    if not bundled:
        return (
            "no default model: the bundled upscaler (desktop_sr.engine.backends.bundled) is not part of this "
            "installation and no model is registered (see 'desktop-sr models --help')"
        )
    return "no default model was found"


def run_engine_check(spec: object, report: SelftestReport, *, device: str = "auto") -> dict[str, float]:
    """Load ``spec`` (a :class:`~desktop_sr.engine.loader.ModelSpec`, or None when there is no default model),
    upscale the sample photo at 4x and check the result. Fills ``report`` as it goes."""
    if spec is None:
        raise SelftestFailure(no_model_reason(), exit_code=ExitCode.MODEL)
    from .engine.api import RenderParams
    from .engine.errors import ModelError
    from .engine.loader import ModelSpec, open_session
    from .models import models_dir

    assert isinstance(spec, ModelSpec)
    report.facts["model"] = spec.describe()
    with report.step("sample"):
        lq = load_sample()
    try:
        with report.step("model"):
            session = open_session(spec, device=device, models_dir=models_dir())
    except (ModelError, ImportError, OSError, RuntimeError, ValueError) as exc:
        raise SelftestFailure(f"the default model could not be loaded: {exc}", exit_code=ExitCode.MODEL) from exc
    try:
        info = session.info
        report.facts["model"] = f"{info.name} on {info.device} {info.dtype}"
        with report.step("upscale"):
            session.set_photo(lq)
            out = session.render(RenderParams(scale=SCALE))
        bicubic = session.bicubic(SCALE)
    finally:
        session.close()
    report.facts["size"] = f"{lq.shape[1]}x{lq.shape[0]} -> {out.shape[1]}x{out.shape[0]}"
    metrics = check_upscale(lq, out, bicubic)
    report.facts["check"] = (
        f"PSNR vs bicubic {metrics['psnr_vs_bicubic']:.1f} dB, shrunk back vs input "
        f"{metrics['psnr_down_vs_input']:.1f} dB"
    )
    return metrics


def run_selftest(*, device: str = "auto") -> int:
    """Run the whole self-test and print one report line; returns the process exit code (0 = passed).

    Order matters and mirrors the app's start-up: torch first (its native libraries must load before Qt's, or they
    clash on Windows and some Linux distributions), then Qt offscreen and the main window, then the model. The
    model is the one the app picks when nothing was chosen before (``default_model_spec``): what a new user gets.
    """
    # Offscreen: no display needed, and never a window popping up on one. DESKTOP_SR_SELFTEST_PLATFORM=xcb (or
    # wayland) checks the real platform plugin and its system libraries instead, e.g. under Xvfb.
    os.environ["QT_QPA_PLATFORM"] = os.environ.get("DESKTOP_SR_SELFTEST_PLATFORM") or "offscreen"
    report = SelftestReport(facts=environment_facts())
    try:
        already = "torch" in sys.modules  # the command line's parser usually imported it already
        with report.step("torch") if not already else nullcontext():
            try:
                import torch
            except ImportError as exc:
                raise SelftestFailure(f"torch cannot be loaded: {exc}") from exc
        report.facts["torch"] = torch.__version__
        with report.step("qt+window"):
            try:
                from .ui.selftest import check_gui
            except ImportError as exc:
                raise SelftestFailure(f"Qt cannot be loaded: {exc}") from exc
            spec = check_gui(report)
        run_engine_check(spec, report, device=device)
    except SelftestFailure as exc:
        print(report.line(False, str(exc)), file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - any crash must still end in a report line and a non-zero code
        import traceback

        traceback.print_exc()
        print(report.line(False, f"unexpected {type(exc).__name__}: {exc}"), file=sys.stderr, flush=True)
        return ExitCode.FAILED
    print(report.line(True), flush=True)
    return ExitCode.OK
