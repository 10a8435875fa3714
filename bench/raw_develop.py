"""How long a camera RAW takes to open: a 24-megapixel DNG (6000 x 4000, 14-bit Bayer, made with pidng from a real
photo, as the tests do) developed by ``read_photo``, against reading the same picture as a 16-bit TIFF and a 16-bit
PNG in the same run (what opening a developed file costs), plus LibRaw's own share (``postprocess`` alone).

    python bench/raw_develop.py [--megapixels 24] [--repeat 3]

Needs the ``[raw]`` extra and pidng (in the ``test`` extra). Prints seconds and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dng_maker import make_dng  # noqa: E402

from desktop_sr.imaging import read_photo, write_photo  # noqa: E402
from desktop_sr.imaging.raw import develop_params  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    w = int(round((args.megapixels * 1e6 * 1.5) ** 0.5 / 2)) * 2
    h = int(round(w / 1.5 / 2)) * 2
    small = Image.open(ROOT / "tests" / "data" / "coffee_128.png").convert("RGB")
    photo = small.resize((w, h), Image.Resampling.BICUBIC)
    rgb = np.asarray(photo, np.float32) / 255.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dng = make_dng(folder / "photo.dng", rgb)
        tif = write_photo(folder / "photo.tif", rgb, options=_save16("tiff"))
        png = write_photo(folder / "photo.png", rgb, options=_save16("png"))
        import rawpy

        data = dng.read_bytes()

        def libraw_only() -> None:
            with rawpy.imread(io.BytesIO(data)) as raw:
                raw.postprocess(**develop_params())

        t_dng = best(lambda: read_photo(dng), args.repeat)
        t_libraw = best(libraw_only, args.repeat)
        t_tif = best(lambda: read_photo(tif), args.repeat)
        t_png = best(lambda: read_photo(png), args.repeat)
    mp = w * h / 1e6
    print(f"{w} x {h} ({mp:.1f} MP), best of {args.repeat}, LibRaw {'.'.join(map(str, rawpy.libraw_version))}")
    print(f"  DNG via read_photo (develop + EXIF + float): {t_dng:6.2f} s   1.00")
    print(f"  of which LibRaw postprocess (AHD, sRGB, 16-bit): {t_libraw:6.2f} s   {t_libraw / t_dng:.2f}")
    print(f"  16-bit TIFF via read_photo:                  {t_tif:6.2f} s   {t_tif / t_dng:.2f}")
    print(f"  16-bit PNG via read_photo:                   {t_png:6.2f} s   {t_png / t_dng:.2f}")


def _save16(fmt: str):
    from desktop_sr.imaging import SaveOptions

    return SaveOptions(format=fmt, bit_depth=16, compression="none" if fmt == "tiff" else "deflate")


if __name__ == "__main__":
    main()
