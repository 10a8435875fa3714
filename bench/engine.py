"""Engine benchmark on SD-2.1-base-shaped random weights (no download): what a slider move and a realism change cost.

For each output size it prints medians of N runs of
  full      - a fresh photo at the default setting (encode + one UNet pass + decode),
  lambda    - a pix/sem change once both branches are cached (no UNet pass: latent arithmetic + decode),
  realism   - a realism level change at a non-default setting (two UNet passes + decode),
and the ratios lambda/full and realism/full, plus the peak resident memory of the process.

    python bench/engine.py                 # 512 and 1024 px outputs, 3 repeats, best device
    python bench/engine.py --sizes 512 --repeats 1 --device cpu
    python bench/engine.py --sizes --tiling 2048  # only the tiled VAE: fidelity and the cost of exact statistics

``--tiling W`` encodes and decodes a real photo (scikit-image's astronaut, from tests/data) to a W x 3/4 W result
untiled, tiled with exact whole-image GroupNorm statistics (the engine) and tiled with the statistics of a
downsampled copy (the approximation the engine used before), and prints PSNR against untiled and the time ratio
exact / approximate from the same run. With random weights the PSNR shows the tiler's exactness on SD-2.1's real
architecture, not photo fidelity (tests/test_engine_fidelity.py measures that with a trained VAE).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.checkpoint import convert_pkl_to_app
from desktop_sr.engine.backends.pisa.model import PisaModel, load_unet
from desktop_sr.engine.backends.pisa.session import PisaSession
from desktop_sr.engine.backends.pisa.synthetic import build_random_sd, random_lora, write_official_pkl

OUT = Path(__file__).parent / "out"


def sd21_model(root: Path) -> tuple[Path, Path]:
    base = root / "sd21_random"
    lora = root / "sd21_random_lora.safetensors"
    if not (base / "unet" / "config.json").is_file():
        print("building SD-2.1-base-shaped random weights (once)...", file=sys.stderr)
        build_random_sd(base, "sd21")
    if not lora.is_file():
        pkl = write_official_pkl(random_lora(load_unet(base)), root / "sd21_random_lora.pkl")
        convert_pkl_to_app(pkl, lora)
    return base, lora


def photo(size: int, seed: int) -> np.ndarray:
    """A smooth random 'photo' (low-frequency noise) of size x size pixels."""
    rng = np.random.default_rng(seed)
    small = rng.random((size // 16 + 1, size // 16 + 1, 3)).astype(np.float32)
    from desktop_sr.engine.kernels.processing import resize_rgb

    return np.clip(resize_rgb(small, (size, size)), 0, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, device=None) -> float:  # type: ignore[no-untyped-def]
    """Wall seconds of ``fn()``; on a GPU after its queued work finished (kernels run asynchronously)."""
    from desktop_sr.engine.hardware.device import synchronize

    start = time.perf_counter()
    fn()
    if device is not None:
        synchronize(device)
    return time.perf_counter() - start


def tiling_report(model: PisaModel, width: int, tiles_arg: int | None) -> None:
    """Tiled vs untiled encode + decode, exact vs approximate statistics (see the module docstring)."""
    import math

    from PIL import Image

    from desktop_sr.engine.backends.pisa import session as pisa_session
    from desktop_sr.engine.hardware.budget import memory_budget
    from desktop_sr.engine.sd21 import vae_tiling
    from desktop_sr.engine.tile_settings import TileSettings

    height = width * 3 // 4
    img = Image.open(Path(__file__).parent.parent / "tests" / "data" / "astronaut_512.jpg").convert("RGB")
    img = img.resize((width // 4, height // 4), Image.Resampling.LANCZOS)
    small = np.asarray(img, dtype=np.float32) / 255.0
    params = RenderParams(pix=0.0, sem=0.0, color_fix="none")
    tiles = TileSettings(vae_tile=tiles_arg) if tiles_arg else TileSettings.for_budget(memory_budget(model.device))
    tiles = TileSettings(vae_tile=min(tiles.vae_tile, width // 16), vae_overlap=tiles.vae_overlap)  # >= 4 tiles

    def run(settings: TileSettings) -> tuple[np.ndarray, float]:
        session = PisaSession(model, tiles=settings)
        session.set_photo(small)
        start = time.perf_counter()
        out = np.array(session.render(params))
        return out, time.perf_counter() - start

    def psnr(a: np.ndarray) -> float:
        return 10 * math.log10(1 / max(float(np.mean((a - untiled) ** 2)), 1e-12))

    def shift(a: np.ndarray) -> float:
        return float(np.abs(a.mean(axis=(0, 1)) - untiled.mean(axis=(0, 1))).max() * 255)

    print(f"tiled VAE, {width} x {height} result, {tiles.vae_tile * 8} px tiles:", flush=True)
    untiled, t_untiled = run(TileSettings(vae_tile=4096, unet_tile=4096))
    print(f"  untiled              {t_untiled:.1f} s", flush=True)
    exact, t_exact = run(tiles)
    print(f"  exact stats          PSNR {psnr(exact):6.2f} dB, mean shift {shift(exact):5.2f} levels, {t_exact:.1f} s")
    original = vae_tiling.tiled_vae

    def approximate(fn, net, x, **kw):  # type: ignore[no-untyped-def]
        """The old method: statistics of the input downsampled to one tile, then every tile with them."""
        kw.pop("stats", None)
        xs = vae_tiling.downsampled(x, kw["tile"])
        return original(fn, net, x, stats=vae_tiling.gather_stats(fn, net, xs), **kw)

    pisa_session.tiled_vae = approximate
    try:
        approx, t_approx = run(tiles)
    finally:
        pisa_session.tiled_vae = original

    print(
        f"  approx. stats        PSNR {psnr(approx):6.2f} dB, mean shift {shift(approx):5.2f} levels, {t_approx:.1f} s"
    )
    print(f"  time exact / approximate {t_exact / t_approx:.2f}, exact / untiled {t_exact / t_untiled:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[512, 1024], help="output sizes in pixels")
    ap.add_argument("--tiling", type=int, metavar="W", help="also compare tiled VAE statistics at a W px wide result")
    ap.add_argument("--vae-tile", type=int, metavar="N", help="VAE tile (latent px) for --tiling; default: as the app")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    OUT.mkdir(exist_ok=True)
    base, lora = sd21_model(OUT)
    t0 = time.perf_counter()
    model = PisaModel(base, lora, device=args.device, dtype=args.dtype)
    print(f"device {model.device}, dtype {model.dtype_name}, model load {time.perf_counter() - t0:.1f} s")
    print(f"{'output':>8} {'full s':>8} {'lambda s':>9} {'realism s':>10} {'lambda/full':>12} {'realism/full':>13}")
    for size in args.sizes:
        full, lam, real = [], [], []
        for r in range(args.repeats):
            session = PisaSession(model)
            session.set_photo(photo(size // 4, seed=r))
            dev = model.device
            full.append(timed(lambda s=session: s.render(RenderParams()), dev))
            session.render(RenderParams(pix=0.8, sem=1.2))  # fills the pixel branch too
            lam.append(timed(lambda s=session: s.render(RenderParams(pix=1.3, sem=0.6)), dev))
            real.append(timed(lambda s=session, t=500 + r: s.render(RenderParams(pix=0.8, sem=1.2, realism=t)), dev))
        f, la, re = (statistics.median(v) for v in (full, lam, real))
        print(f"{size:>6}px {f:>8.2f} {la:>9.2f} {re:>10.2f} {la / f:>12.3f} {re / f:>13.3f}")
    if args.tiling:
        tiling_report(model, args.tiling, args.vae_tile)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    if model.device.type == "cuda":
        import torch

        print(f"peak GPU memory {torch.cuda.max_memory_allocated(model.device) / 1024**2:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
