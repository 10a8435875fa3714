"""desktop-sr upscale INPUT... -o OUT: upscale photos headless, keeping their metadata.

Outputs are checked before the model loads: an existing output (without --overwrite) or a bad option costs no
waiting. Output files are written atomically; Ctrl-C leaves none half-written (exit code 130).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..exit_codes import ExitCode
from ..plain_errors import said_about
from .common import (
    StageBar,
    add_model_args,
    add_output_args,
    add_render_args,
    add_yes_arg,
    confirm_long_job,
    dpi_from_args,
    in_worker,
    params_from_args,
    save_options_from_args,
    session_from_args,
    spec_from_args,
    target_from_args,
    warn_ignored,
    warn_long_render,
)
from .faces import add_face_args, face_choice_from_args, load_face_model, restore_faces_of
from .help_text import plain
from .strength_maps import add_map_args, maps_from_args, photo_size, proportion_problem, with_maps

#: Extensions that make -o a file name rather than a folder (those the app cannot write are then refused by name).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".gif", ".heic", ".avif",
                  ".jxl", ".jp2"}  # fmt: skip
_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
_BY_SUFFIX = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff",
              ".tiff": "tiff"}  # fmt: skip
EPILOG = """examples:
  desktop-sr upscale photo.jpg -o out/ --scale 2
  desktop-sr upscale photo.jpg -o out/ --format jpeg --quality 90 --strip-metadata
  desktop-sr upscale IMG_0042.CR3 -o out/ --long-edge 6000          (RAW in, 16-bit PNG out)
  desktop-sr upscale bird.dng -o bird.tif --print 30x20cm --dpi 300  (3543 x 2362 px, written as 300 dpi)
"""


def add_upscale_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale photos from the command line", description=plain(__doc__),
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photo files (camera RAW and DNG too)")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (a trailing / says folder)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_yes_arg(p)
    add_output_args(p, default_format=None)
    add_model_args(p)
    add_render_args(p)
    add_map_args(p)
    add_face_args(p)
    p.set_defaults(func=run_upscale)


def output_format(src: Path, dst: Path, args: argparse.Namespace) -> str:
    """--format, "same" = the source's format (PNG for BMP/HEIC/RAW), none = from the output name, else PNG."""
    if args.format == "same":
        return _BY_SUFFIX.get(src.suffix.lower(), "png")
    if args.format:
        return str(args.format)
    return _BY_SUFFIX.get(dst.suffix.lower(), "png")


def output_path(src: Path, args: argparse.Namespace, single: bool, target: object | None = None) -> Path:
    out = Path(args.output)
    as_folder = str(args.output).endswith(("/", os.sep))
    if single and not as_folder and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        return out
    fmt = _BY_SUFFIX.get(src.suffix.lower(), "png") if args.format == "same" else (args.format or "png")
    label = target.label if target is not None else f"x{args.scale or 4}"  # type: ignore[attr-defined]
    return out / f"{src.stem}_{label}{_EXTENSIONS[fmt]}"


def _read_ahead(src: Path, scale: int | None):  # type: ignore[no-untyped-def]
    """Read the first photo and, for a fixed scale, make its model input while the model loads (None if it cannot
    be read: the loop below reads it again and reports the error in order). A result too large for the memory gets
    no model input here, so the session's size check refuses it with its clear message before anything large."""
    from ..engine.backends.pisa.session import PisaSession
    from ..engine.errors import TooLarge
    from ..engine.hardware.memory import check_output_fits
    from ..engine.kernels.processing import model_input_of
    from ..imaging import PhotoError, read_photo

    try:
        photo = read_photo(src)
        if scale is None:
            return photo, None
        h, w = photo.rgb.shape[:2]
        check_output_fits(w, h, scale, PisaSession.BYTES_PER_OUTPUT_PX, overhead=PisaSession.RENDER_OVERHEAD)
        return photo, model_input_of(photo.rgb, scale)
    except TooLarge:
        return photo, None
    except (PhotoError, OSError, ValueError):
        return None


def run_upscale(args: argparse.Namespace) -> int:
    from ..engine.control import Control
    from ..engine.errors import EngineError, ModelError
    from ..engine.loader import notice_of
    from ..imaging import PhotoError, read_photo, write_photo
    from ..imaging.formats import ALPHA_FORMATS, flattening_note
    from ..imaging.preflight import OutputNameProblem, OutputProblem, OutputSize, check_folder, check_output
    from ..render_cost import render_work
    from ..target_size import TargetError, plan_size, render_to_target
    from ..timing import CostBook

    single = len(args.inputs) == 1
    try:
        target = target_from_args(args)
    except TargetError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        params = params_from_args(args)
        dpi = dpi_from_args(args, target)
        save_options_from_args(args, dpi=dpi)
    except ValueError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        maps = maps_from_args(args)
    except ValueError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        faces = face_choice_from_args(args)  # a wrong face model file is refused before any model loads
    except ModelError as exc:
        print(f"desktop-sr: {exc}", file=sys.stderr)
        return ExitCode.MODEL
    failed = 0
    usage_problems = 0
    jobs: list[tuple[Path, Path]] = []
    need: dict[Path, int] = {}
    for src in args.inputs:  # everything that can be checked without the model, before it loads
        if not src.exists():
            print(f"desktop-sr: {src}: file not found", file=sys.stderr)
            failed += 1
            continue
        size = photo_size(src)
        if size is not None and maps and (problem := proportion_problem(maps, size, str(src))):
            print(f"desktop-sr: {problem}", file=sys.stderr)
            failed += 1
            continue
        dst = output_path(src, args, single, target)
        try:
            out_size = None
            if size is not None:
                scale = params.scale if target is None else plan_size(size, target).scale
                out_size = OutputSize(size[0] * scale, size[1] * scale)
            named = dst == Path(args.output)  # a file name the user typed: its extension must say the format
            asked = output_format(src, dst, args) if args.format or not named else None
            fmt = check_output(dst, asked, overwrite=args.overwrite)
        except (TargetError, OutputProblem) as exc:
            print(
                f"desktop-sr: {src}: {exc}" if isinstance(exc, TargetError) else f"desktop-sr: {exc}", file=sys.stderr
            )
            failed += 1
            usage_problems += isinstance(exc, TargetError | OutputNameProblem)
            continue
        if out_size is not None:
            need[dst.parent] = need.get(dst.parent, 0) + out_size.worst_bytes(fmt)
        jobs.append((src, dst))
    for folder, need_bytes in need.items():  # all the outputs going to one folder must fit there together
        try:
            check_folder(folder, need_bytes)
        except OutputProblem as exc:
            print(f"desktop-sr: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    if not jobs:
        return ExitCode.USAGE if usage_problems == failed else ExitCode.FAILED  # a name or size wrong as typed: 2
    load_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-model") as pool:
        loading = pool.submit(session_from_args, args)  # meanwhile: the first photo, read and upscaled bicubic
        # Only PiSA-SR (--model) encodes the bicubic upscale; the bundled upscaler works on the photo itself.
        ahead = _read_ahead(jobs[0][0], params.scale if target is None else None) if args.model is not None else None
        try:
            session = loading.result()
        except (ModelError, ValueError) as exc:
            print(f"desktop-sr: cannot load the model: {exc}", file=sys.stderr)
            return ExitCode.MODEL
    if faces is not None:
        try:
            load_face_model(faces)
        except (ModelError, ValueError) as exc:
            print(f"desktop-sr: cannot load the face model: {exc}", file=sys.stderr)
            return ExitCode.MODEL
    load_time = time.perf_counter() - load_start
    warn_ignored(session.info, params, args.color_fix is not None)
    said = notice_of(session)  # a device that could not start, or that this model cannot use: one line
    if said:
        print(f"desktop-sr: note: {said}", file=sys.stderr)
    book = CostBook()
    spec = spec_from_args(args)
    model, device = spec.name, str(session.info.device)  # the same key as batch's
    timings = getattr(session, "timings", None)
    for src, dst in jobs:
        bar = None
        if timings is not None:
            timings.reset()
            if load_time:
                timings.add("load model" + (" + read photo" if ahead else ""), load_time)
        load_time = 0.0
        try:
            start = time.perf_counter()
            model_input = None
            if ahead is not None and src == jobs[0][0]:
                photo, model_input = ahead
            else:
                photo = read_photo(src)
            scale = params.scale if target is None else plan_size(photo.size, target).scale
            work = render_work(spec.kind, photo.width, photo.height, scale)  # what the network computes
            estimate = book.estimate(model, device, work)
            out_w, out_h = photo.width * scale, photo.height * scale
            if not confirm_long_job(estimate, f"{src} ({out_w} x {out_h})", args.yes):
                print(f"desktop-sr: {src}: not started", file=sys.stderr)
                failed += 1
                continue
            first = warn_long_render(str(src)) if estimate is None else None
            bar = StageBar(src.name, enabled=not args.quiet, on_first_estimate=first)
            fmt = output_format(src, dst, args)
            notes = list(photo.warnings)
            if photo.alpha is not None and fmt not in ALPHA_FORMATS and float(photo.alpha.min()) < 1.0:
                notes.append(flattening_note(fmt))
            for note in notes:
                bar.bar.write(f"desktop-sr: note: {src}: {note}", file=sys.stderr)
            if maps and (problem := proportion_problem(maps, photo.size, str(src))):
                raise ValueError(problem)  # a camera RAW: its size is known once developed
            session.set_photo(photo.rgb)
            if model_input is not None and hasattr(session, "prime_model_input"):
                session.prime_model_input(params.scale, model_input)
            photo_params = with_maps(params, maps)
            how = f"×{params.scale}"
            render_start = time.perf_counter()
            if target is None:
                result = in_worker(functools.partial(session.render, photo_params, control=Control(bar)))
                ratio = float(params.scale)
            else:
                result, plan = in_worker(
                    functools.partial(render_to_target, session, photo.size, photo_params, target, control=Control(bar))
                )
                ratio = plan.ratio
                how = f"×{plan.scale}" + (", then Lanczos" if plan.resample else "")
            if notice_of(session) != said:  # the device failed during this render: it finished on the CPU
                said = notice_of(session)
                bar.bar.write(f"desktop-sr: note: {said}", file=sys.stderr)
            device = str(session.info.device)
            book.record(model, device, work, time.perf_counter() - render_start)
            if faces is not None:
                say = functools.partial(bar.bar.write, file=sys.stderr)
                result = in_worker(functools.partial(restore_faces_of, faces, result, src.name, Control(bar), say))
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_start = time.perf_counter()
            write_photo(dst, result, like=photo, scale=ratio, options=save_options_from_args(args, fmt, dpi=dpi))
            if timings is not None:
                timings.add("write", time.perf_counter() - write_start)
            bar.close()
            if not args.quiet:
                h, w = result.shape[:2]
                print(f"{src} -> {dst} ({w} × {h}, {how}; {time.perf_counter() - start:.1f} s)", file=sys.stderr)
            if getattr(args, "verbose", False) and timings is not None:
                print(f"desktop-sr: {src.name}: timing: {timings.line()}", file=sys.stderr)
        except (PhotoError, EngineError, OSError, ValueError) as exc:
            if bar is not None:
                bar.close()
            print(f"desktop-sr: {said_about(src, exc)}", file=sys.stderr)
            failed += 1
    return ExitCode.FAILED if failed else ExitCode.OK
