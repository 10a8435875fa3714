"""Colour fix: the result keeps the photo's colours (per-channel mean and spread of the bicubic input)."""

from __future__ import annotations

import numpy as np

from desktop_sr.engine.kernels.processing import adain_fix, color_fix


def test_adain_matches_the_reference_statistics_and_the_plain_formula():
    rng = np.random.default_rng(0)
    out = (rng.random((40, 30, 3)) * 0.5 + 0.3).astype(np.float32)  # a colour cast the model introduced
    ref = rng.random((40, 30, 3)).astype(np.float32) * np.array([0.6, 0.4, 0.8], np.float32)
    fixed = adain_fix(out, ref)
    plain = np.clip((out - out.mean((0, 1))) / (out.std((0, 1)) + 1e-5) * ref.std((0, 1)) + ref.mean((0, 1)), 0, 1)
    assert fixed.dtype == np.float32 and fixed.shape == out.shape
    assert np.abs(fixed - plain).max() < 1e-5
    assert np.allclose(fixed.mean((0, 1)), ref.mean((0, 1)), atol=2e-3)
    assert out.mean() > 0.3  # the input was not modified in place
    assert color_fix(out, ref, "none") is out
