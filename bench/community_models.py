"""First render with community upscalers at their released sizes (random weights, built with spandrel's classes), and
the bundled model's hand-written RRDBNet against spandrel's ESRGAN with the same weights.

Each model is saved to a ``.safetensors`` file and opened the way the app opens it (``open_session`` of a community
spec: safe read, architecture detection, tiles from free memory); the time covers the whole first render of the photo
(load excluded), printed as seconds per output megapixel and as a ratio to Real-ESRGAN x4plus measured in the same run.
Transformers are slow on a CPU: ``--transformer-side`` renders a smaller crop for them (s/MP is per output pixel, so
the figure compares; the tile grid is the same as the app uses).

    python bench/community_models.py                     # 512 px photo, transformers on a 128 px crop
    python bench/community_models.py --side 256 --only ESRGAN SPAN
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.spandrel import community_spec
from desktop_sr.engine.control import Control
from desktop_sr.engine.loader import open_session


def released_models() -> dict[str, Callable[[], torch.nn.Module]]:
    """The configurations the popular releases use (Krita AI's defaults and Real-ESRGAN's own among them)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    tf = {"in_chans": 3, "img_size": 64, "mlp_ratio": 2, "upsampler": "pixelshuffle", "upscale": 4}
    return {
        "ESRGAN": lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4),  # RealESRGAN_x4plus
        "Compact": lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4),  # general-x4v3
        "SPAN": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4),
        "OmniSR": lambda: OmniSR(num_feat=64, block_num=1, window_size=8, res_num=5, up_scale=4),
        "SwinIR": lambda: SwinIR(window_size=8, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, **tf),  # SwinIR-M
        "HAT": lambda: HAT(
            window_size=16,
            embed_dim=180,
            depths=[6] * 6,
            num_heads=[6] * 6,
            compress_ratio=3,
            squeeze_factor=30,
            overlap_ratio=0.5,
            **{**tf, "mlp_ratio": 2},
        ),  # fmt: skip
        "DAT": lambda: DAT(
            img_size=64,
            embed_dim=180,
            split_size=[8, 32],
            depth=[6] * 6,
            num_heads=[6] * 6,
            expansion_factor=2,
            upscale=4,
        ),  # fmt: skip
    }


TRANSFORMERS = {"SwinIR", "HAT", "DAT"}


def photo(side: int) -> np.ndarray:
    """A real photo (scikit-image's astronaut when installed, else the app's sample) resized to ``side`` px."""
    try:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    except ImportError:
        img = Image.open(Path(__file__).resolve().parents[1] / "desktop_sr" / "resources" / "sample_chelsea.png")
    return np.asarray(img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255


def first_render(path: Path, rgb: np.ndarray) -> tuple[float, int, str]:
    session = open_session(community_spec(path), device="cpu")
    try:
        session.set_photo(rgb)
        scale = session.network.scale
        t = time.perf_counter()
        session.render(RenderParams(scale=scale), control=Control())
        return time.perf_counter() - t, scale, f"{session.tiles.tile}px tiles"
    finally:
        session.close()


def rrdb_against_spandrel(side: int) -> None:
    """The bundled network class against spandrel's ESRGAN on the same converted weights: speed of one tile, and how
    soon Cancel stops it (the hand-written one checks between its 23 blocks)."""
    from spandrel import ModelLoader

    from desktop_sr.engine.backends.bundled.weights import build_model, load_weights
    from desktop_sr.engine.errors import Cancelled
    from desktop_sr.models.paths import models_dir

    loaded = load_weights(None, models_dir())
    ours = build_model(loaded.state, torch.device("cpu"), torch.float32)
    theirs = ModelLoader().load_from_state_dict(dict(loaded.state)).model.eval()
    theirs = theirs.to(memory_format=torch.channels_last)  # as the app runs every network on the CPU
    x = torch.from_numpy(photo(side).transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        diff = float((ours(x, None) - theirs(x)).abs().max())
        for name, run in (("desktop-sr RRDBNet", lambda: ours(x, None)), ("spandrel ESRGAN", lambda: theirs(x))):
            run()
            t = time.perf_counter()
            for _ in range(2):
                run()
            print(f"| {name} | {(time.perf_counter() - t) / 2:.2f} s per {side} px tile |")
        calls = 0

        def check() -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise Cancelled()

        t = time.perf_counter()
        with contextlib.suppress(Cancelled):
            ours(x, check)
        print(f"| Cancel inside a tile (desktop-sr RRDBNet) | stops after {time.perf_counter() - t:.2f} s |")
    print(f"\nlargest difference between the two outputs: {diff:.2e} (same weights, same architecture)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=512, help="photo side in pixels (default 512)")
    ap.add_argument("--transformer-side", type=int, default=128, help="crop side for SwinIR, HAT and DAT")
    ap.add_argument("--only", nargs="*", help="architectures to run (default: all)")
    ap.add_argument("--skip-bundled", action="store_true", help="skip the RRDBNet against spandrel comparison")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in released_models().items():
            if args.only and name not in args.only:
                continue
            net = build()
            params = sum(p.numel() for p in net.parameters()) / 1e6
            path = Path(tmp) / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
            side = args.transformer_side if name in TRANSFORMERS else args.side
            seconds, scale, tiles = first_render(path, photo(side))
            mp = (side * scale) ** 2 / 1e6
            rows.append((name, seconds / mp, f"{params:.1f} M params, {side} px photo, {tiles}"))
            print(f"{name}: {seconds:.1f} s for {mp:.2f} MP", flush=True)
    base = next((r[1] for r in rows if r[0] == "ESRGAN"), None)
    print("\n| model | s per output MP (CPU) | vs ESRGAN x4plus | |\n|---|---|---|---|")
    for name, spm, note in rows:
        ratio = f"{spm / base:.2f}x" if base else "-"
        print(f"| {name} | {spm:.1f} | {ratio} | {note} |")
    if not args.skip_bundled:
        print("\n| bundled network | time |\n|---|---|")
        rrdb_against_spandrel(128)


if __name__ == "__main__":
    main()
