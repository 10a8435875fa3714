"""``desktop-sr upscale INPUT... -o OUT``: upscale photos headless, keeping their metadata."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cli_common import (
    StageBar,
    add_model_args,
    add_render_args,
    dpi_from_args,
    params_from_args,
    session_from_args,
    target_from_args,
    warn_ignored,
)
from .engine.control import Control
from .engine.errors import EngineError, ModelError
from .target_size import TargetError, TargetSize, render_to_target

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
EPILOG = """examples:
  desktop-sr upscale photo.jpg -o out/ --scale 2
  desktop-sr upscale IMG_0042.CR3 -o out/ --long-edge 6000          (RAW in, 16-bit PNG out)
  desktop-sr upscale bird.dng -o bird.tif --print 30x20cm --dpi 300  (3543 x 2362 px, written as 300 dpi)
"""


def add_upscale_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale photos from the command line", description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photo files (camera RAW and DNG too)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (one input) or folder")
    p.add_argument("--format", choices=("png", "jpeg", "webp", "tiff"), help="output format (default: PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_args(p)
    add_render_args(p)
    p.set_defaults(func=run_upscale)


def output_path(src: Path, args: argparse.Namespace, single: bool, target: TargetSize | None = None) -> Path:
    out: Path = args.output
    ext = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}.get(args.format or "", "")
    if single and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        return out
    label = target.label if target is not None else f"x{args.scale or 4}"
    return out / f"{src.stem}_{label}{ext or '.png'}"


def run_upscale(args: argparse.Namespace) -> int:
    from .cli_common import EXIT_FAILED, EXIT_MODEL, EXIT_OK, EXIT_USAGE
    from .imaging import PhotoError, SaveOptions, read_photo, write_photo

    single = len(args.inputs) == 1
    try:
        target = target_from_args(args)
    except TargetError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = params_from_args(args)
        save = SaveOptions(format=args.format or None, dpi=dpi_from_args(args, target), dpi_policy=args.dpi_policy)
    except ValueError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return EXIT_FAILED
    missing = [p for p in args.inputs if not p.exists()]
    for p in missing:
        print(f"desktop-sr: {p}: file not found", file=sys.stderr)
    todo = [p for p in args.inputs if p.exists()]
    if not todo:
        return EXIT_FAILED
    try:
        session = session_from_args(args)
    except (ModelError, ValueError) as exc:
        print(f"desktop-sr: cannot load the model: {exc}", file=sys.stderr)
        return EXIT_MODEL
    warn_ignored(session.info, params_from_args(args))
    failed = len(missing)
    for src in todo:
        dst = output_path(src, args, single, target)
        if dst.exists() and not args.overwrite:
            print(f"desktop-sr: {dst}: exists (use --overwrite)", file=sys.stderr)
            failed += 1
            continue
        bar = StageBar(src.name, enabled=not args.quiet)
        try:
            start = time.perf_counter()
            photo = read_photo(src)
            session.set_photo(photo.rgb)
            how = f"×{params.scale}"
            if target is None:
                result, ratio = session.render(params, control=Control(bar)), float(params.scale)
            else:
                result, plan = render_to_target(session, photo.size, params, target, control=Control(bar))
                ratio = plan.ratio
                how = f"×{plan.scale}" + (", then Lanczos" if plan.resample else "")
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_photo(dst, result, like=photo, scale=ratio, options=save)
            bar.close()
            if not args.quiet:
                h, w = result.shape[:2]
                print(f"{src} -> {dst} ({w} × {h}, {how}; {time.perf_counter() - start:.1f} s)", file=sys.stderr)
        except (PhotoError, EngineError, OSError, ValueError) as exc:
            bar.close()
            print(f"desktop-sr: {src}: {exc}", file=sys.stderr)
            failed += 1
    return EXIT_FAILED if failed else EXIT_OK
