"""Does a colour fix help the bundled Real-ESRGAN? Colour drift and detail with none / AdaIN / wavelet (issue 16).

Renders small crops of real photos (tests/data, scikit-image samples) once with the bundled model at x4, then
applies each fix against the bicubic upscale of the input, and prints per photo:
- drift: the largest per-channel mean difference from the input, in 8-bit levels (what a user sees as a cast);
- detail: high-frequency energy of the result relative to no fix (1.00 = unchanged; below 1 = softened).
Run: python bench/colour_fix_bundled.py [SIZE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled.session import load_bundled_session
from desktop_sr.engine.kernels.processing import adain_fix, bicubic_upscale, wavelet_fix

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def photos(size: int) -> dict[str, np.ndarray]:
    out = {}
    for name in ("astronaut_512.jpg", "coffee_128.png", "astronaut_128.png"):
        im = Image.open(DATA / name).convert("RGB")
        w, h = im.size
        crop = im.crop(((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size))
        out[name] = np.asarray(crop, np.float32) / 255
    try:
        from skimage import data

        for name in ("chelsea", "rocket"):
            a = getattr(data, name)()
            h, w = a.shape[:2]
            out[name] = a[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size] / 255
            out[name] = out[name].astype(np.float32)
    except ImportError:
        pass
    return out


def high_freq(rgb: np.ndarray) -> float:
    g = rgb.mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 48
    session = load_bundled_session(device="cpu")
    print(f"{'photo':<18} {'fix':<8} {'drift (levels)':>14} {'detail':>7}")
    for name, rgb in photos(size).items():
        session.set_photo(rgb)
        out = session.render(RenderParams(color_fix="none"))
        ref = bicubic_upscale(rgb, 4)
        base_hf = high_freq(out)
        for fix, y in (("none", out), ("adain", adain_fix(out, ref)), ("wavelet", wavelet_fix(out, ref))):
            drift = float(np.abs(y.reshape(-1, 3).mean(0) - rgb.reshape(-1, 3).mean(0)).max() * 255)
            print(f"{name:<18} {fix:<8} {drift:>14.2f} {high_freq(y) / base_hf:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
