"""The bundled model through ncnn's Vulkan runtime on each Vulkan device, against torch on the CPU, in one run.

Each device renders the same real photo through the app's own session (``load_bundled_session``: the same tiles,
padding and band composition as in the app), after a warm-up tile (the first dispatch of a pipeline compiles it);
load time is excluded. Printed: seconds per output megapixel (each device with the tiles the app gives it), the
ratio to torch on the CPU (above 1: faster than the CPU), and the largest difference from torch's CPU result on the
same tile grid, in levels of 255 (another grid differs by its seams, not by the device).

    python bench/vulkan.py                      # 64 px crop of the astronaut (256 px out)
    python bench/vulkan.py --side 128 --repeat 3 --tile 128
    python bench/vulkan.py --devices vulkan:0   # one device only
    python bench/vulkan.py --dtype fp16         # Vulkan with fp16 storage (not the app's default: see vulkan.py)

A software device (llvmpipe/lavapipe) is the CPU emulating a GPU: expect it several times slower than torch on the
same CPU; its figure says what the Vulkan path costs without a GPU, not what a GPU does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled.session import load_bundled_session
from desktop_sr.engine.hardware.vulkan import vulkan_facts
from desktop_sr.engine.upscaler.session import UpscalerSession

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut_512.jpg"


def render_seconds(session: UpscalerSession, rgb: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    """Median seconds of whole renders of ``rgb``, each from an empty cache, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        session.outputs.clear()
        session.cache.clear()
        session.set_photo(np.zeros((8, 8, 3), np.float32))  # another photo first: the next one is looked up again
        session.set_photo(rgb)
        start = time.perf_counter()
        out = session.render(RenderParams())
        times.append(time.perf_counter() - start)
    assert out is not None
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=64, help="photo side in pixels (a centre crop, downscaled)")
    parser.add_argument("--tile", type=int, default=None, help="input tile (default: the app's, from free memory)")
    parser.add_argument("--repeat", type=int, default=1, help="renders per device (median)")
    parser.add_argument("--devices", nargs="*", help="vulkan:N names (default: every Vulkan device)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16"), help="Vulkan precision")
    args = parser.parse_args()

    img = Image.open(PHOTO).convert("RGB").resize((args.side, args.side), Image.Resampling.LANCZOS)
    rgb = np.asarray(img, np.float32) / 255.0
    out_mp = (4 * args.side) ** 2 / 1e6
    facts = vulkan_facts()
    if facts.problem:
        print(f"no Vulkan device: {facts.problem}")
    names = args.devices or [g.name_for_device for g in facts.devices]
    options = {"tile": args.tile} if args.tile else {}

    cpu = load_bundled_session(device="cpu", **options)
    render_seconds(cpu, rgb[:32, :32], 1)  # warm-up
    cpu_s, _ = render_seconds(cpu, rgb, args.repeat)
    cpu_rate = cpu_s / out_mp
    print(f"photo {args.side} x {args.side} px -> {4 * args.side} x {4 * args.side} ({out_mp:.3f} MP), x4, "
          f"median of {args.repeat}")  # fmt: skip
    print(f"{'device':<10} {'what':<52} {'s/MP':>8} {'vs CPU':>8} {'max diff':>9}")
    print(f"{'cpu':<10} {'torch, ' + cpu.info.dtype:<52} {cpu_rate:8.1f} {1.0:8.2f} {0.0:9.2f}")
    labels = {g.name_for_device: f"{g.name} ({g.type.value})" for g in facts.devices}
    for name in names:
        start = time.perf_counter()
        session = load_bundled_session(device=name, dtype=args.dtype, **options)
        load = time.perf_counter() - start
        if session.notice:
            print(f"{name:<10} {session.notice}")
            continue
        render_seconds(session, rgb[:32, :32], 1)  # warm-up: the first dispatch of each pipeline
        seconds, out = render_seconds(session, rgb, args.repeat)
        rate = seconds / out_mp
        same_grid = UpscalerSession(cpu.network, device=cpu.device, dtype=cpu.dtype, tiles=session.tiles)
        _, reference = render_seconds(same_grid, rgb, 1)
        diff = float(np.abs(out - reference).max() * 255)
        what = f"{labels.get(name, name)[:34]}, {session.info.dtype}, {session.tiles.tile} px tiles"
        print(f"{name:<10} {what:<52} {rate:8.1f} {cpu_rate / rate:8.2f} {diff:9.2f}   (load {load:.1f} s)")
        session.close()


if __name__ == "__main__":
    main()
