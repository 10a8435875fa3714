"""What a brush stroke costs (issue 19): a mask change against a global strength change, same run, as ratios.

On SD-2.1-base-shaped random weights (as bench/engine.py; no download), per output size, once both UNet branches
and the corner images are cached (the editor prepares them after the first render):

  global exact   - a semantic strength change: latent arithmetic + VAE decode (the baseline)
  first mask     - the first painted mask of a photo: as "mask exact", plus the plain decodes at the anchor
                   strengths that are not corners (engine/backends/pisa/local.py: anchor_levels), once per range
  mask exact     - a new painted mask: per-pixel latent arithmetic + the decode with local GroupNorm statistics
                   and the local colour fix (no UNet pass: counted)
  global preview - the editor's instant corner blend for a strength change (CornerBlend.blend)
  mask preview   - the same blend with the mask, plus turning the painted grid into StrengthMaps (what every
                   mouse move of a stroke costs), and the stroke's own arithmetic

    python bench/strength_map.py                   # 512 px, 3 repeats, best device
    python bench/strength_map.py --sizes 512 1024 --repeats 1 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from engine import OUT, photo, sd21_model  # noqa: E402  (bench/engine.py: the same weights and photos)

from desktop_sr.editor.mask import Brush, Stroke, as_maps, mask_grid, neutral  # noqa: E402
from desktop_sr.editor.preview import CornerBlend  # noqa: E402
from desktop_sr.engine.api import RenderParams  # noqa: E402
from desktop_sr.engine.backends.pisa.model import PisaModel  # noqa: E402
from desktop_sr.engine.backends.pisa.session import PisaSession  # noqa: E402


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def painted(grid: tuple[int, int], out: tuple[int, int], seed: int) -> np.ndarray:
    """A stroke across the middle, as a person paints it (less invention, 1/10 of the width wide)."""
    rng = np.random.default_rng(seed)
    w, h = out
    s = Stroke(neutral(grid), Brush("less", size=w / 10, feather=0.5), out)
    y = h * (0.3 + 0.4 * rng.random())
    for x in np.linspace(0.1 * w, 0.9 * w, 20):
        s.add(float(x), float(y + rng.normal(0, h / 50)))
    return s.values()


def bench_size(model: PisaModel, size: int, repeats: int) -> dict[str, float]:
    session = PisaSession(model)
    session.set_photo(photo(size // 4, seed=size))
    base = RenderParams()
    session.render(base)
    session.corners(base)  # as the editor does after the first result: both branches and the corners cached
    blend = CornerBlend(*(lambda c: (c.base, c.pix, c.full))(session.corners(base)))
    grid, out = mask_grid(size // 4, size // 4), (size, size)
    first = as_maps(painted(grid, out, 0))
    first_s = timed(lambda: session.render(base.with_(maps=first)))  # corner statistics at hand, anchors not yet
    passes = session.unet_passes
    times: dict[str, list[float]] = {k: [] for k in ("global", "mask", "gprev", "mprev", "stroke")}
    for i in range(repeats):
        times["global"].append(timed(lambda i=i: session.render(base.with_(sem=0.5 + 0.1 * i))))
        values = painted(grid, out, i + 1)
        times["mask"].append(timed(lambda v=values: session.render(base.with_(maps=as_maps(v)))))
        times["gprev"].append(timed(lambda i=i: blend.blend(1.0, 0.6 + 0.1 * i)))
        times["mprev"].append(timed(lambda v=values: blend.blend(1.0, 1.0, as_maps(v))))
        stroke = Stroke(values, Brush("more", size=size / 10), out)
        times["stroke"].append(timed(lambda s=stroke: (s.add(size / 2, size / 2), s.add(size / 2 + 8, size / 2))))
    assert session.unet_passes == passes, "a mask change ran the UNet"
    return {"first": first_s, **{k: statistics.median(v) for k, v in times.items()}}


def preview_only(size: int, repeats: int) -> dict[str, float]:
    """The previews alone at a size the exact render would take minutes for (random corner images)."""
    rng = np.random.default_rng(size)
    blend = CornerBlend(*(rng.random((size, size, 3), dtype=np.float32) for _ in range(3)))
    grid, out = mask_grid(size // 4, size // 4), (size, size)
    times: dict[str, list[float]] = {k: [] for k in ("gprev", "mprev", "stroke")}
    for i in range(repeats):
        values = painted(grid, out, i + 1)
        times["gprev"].append(timed(lambda i=i: blend.blend(1.0, 0.6 + 0.1 * i)))
        times["mprev"].append(timed(lambda v=values: blend.blend(1.0, 1.0, as_maps(v))))
        stroke = Stroke(values, Brush("more", size=size / 10), out)
        times["stroke"].append(timed(lambda s=stroke: (s.add(size / 2, size / 2), s.add(size / 2 + 8, size / 2))))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[512], help="output sizes in pixels")
    ap.add_argument("--preview-sizes", type=int, nargs="*", default=[2048, 4096],
                    help="output sizes for the previews alone (no model)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    for size in args.preview_sizes:
        t = preview_only(size, max(3, args.repeats))
        print(f"preview only, {size} px: global {t['gprev'] * 1000:.1f} ms, mask {t['mprev'] * 1000:.1f} ms "
              f"({t['mprev'] / t['gprev']:.1f}), stroke step {t['stroke'] * 1000:.1f} ms")  # fmt: skip
    if not args.sizes:
        return 0
    OUT.mkdir(exist_ok=True)
    base, lora = sd21_model(OUT)
    model = PisaModel(base, lora, device=args.device, dtype=args.dtype)
    print(f"device {model.device}, {model.dtype_name}; medians of {args.repeats}; no UNet pass for any mask change")
    print(
        "output | global exact | first mask (ratio) | mask exact (ratio) | global preview | mask preview (ratio) | "
        "stroke step"
    )
    for size in args.sizes:
        t = bench_size(model, size, args.repeats)
        print(f"{size:>4} px | {t['global']:9.2f} s | {t['first']:7.2f} s ({t['first'] / t['global']:.2f}) | "
              f"{t['mask']:7.2f} s ({t['mask'] / t['global']:.2f}) | "
              f"{t['gprev'] * 1000:8.1f} ms | {t['mprev'] * 1000:7.1f} ms ({t['mprev'] / t['gprev']:.1f}) | "
              f"{t['stroke'] * 1000:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
