"""What the headless commands (upscale, batch) share: model choice, render parameters, output options, progress
bars, Ctrl-C handling."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..engine.api import COLOR_FIXES, REALISM_PRESETS, SCALES, ModelInfo, ProgressFn, RenderParams, UpscaleSession
from ..engine.control import Control
from ..engine.errors import ModelError
from ..engine.loader import ModelSpec, open_session
from ..engine.tile_settings import TileSettings
from ..exit_codes import ExitCode
from ..imaging.formats import OUTPUT_FORMAT_CHOICES
from ..target_size import DPI_POLICIES, TargetError, TargetKind, TargetSize, parse_box, parse_print

if TYPE_CHECKING:
    from ..batch.plan import Plan
    from ..batch.results import BatchSummary
    from ..render_cost import Estimate

T = TypeVar("T")


#: Progress bars drawn at the moment (a Ctrl-C line must not be glued onto one).
_bars_drawn = 0


def report_interrupted(what: str = "") -> None:
    """One plain line for Ctrl-C, on a fresh line even when a progress bar was being drawn: a terminal's line is
    cleared; in a log or a pipe, where tqdm's carriage returns do not clear anything, a new line is started."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    elif _bars_drawn:
        sys.stderr.write("\n")
    print(f"desktop-sr: interrupted{what}; no output file was left half-written", file=sys.stderr)


def realism_value(text: str) -> int:
    """A preset name (default, fidelity, neutral, realism) or an integer timestep 1..999."""
    if text.lower() in REALISM_PRESETS:
        return REALISM_PRESETS[text.lower()]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1..999 or one of {', '.join(REALISM_PRESETS)}") from None
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError("the realism level must be between 1 and 999")
    return value


def strength(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError("strengths go from 0.0 to 2.0")
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", type=Path, metavar="MODEL",
                   help="a model of 'desktop-sr models list' (id or name, 'bundled'), an upscaler file (.pth, .pt, "
                   ".ckpt, .safetensors: ESRGAN, SwinIR, HAT, DAT, SPAN...), or with --lora a Stable Diffusion "
                   "2.1-base folder; default: the default model of 'desktop-sr models', else the bundled "
                   "Real-ESRGAN x4plus")  # fmt: skip
    g.add_argument("--lora", type=Path, metavar="FILE", help="PiSA-SR adapters: official .pkl or .safetensors")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps, vulkan:0")
    g.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                   help="auto = fp16 on a torch GPU, fp32 on Vulkan")  # fmt: skip
    g.add_argument("--tile", type=int, metavar="N", help="UNet tile in latent pixels (default: from free memory, 96)")
    g.add_argument("--tile-overlap", type=int, metavar="N", help="UNet tile overlap in latent pixels (default tile/3)")
    g.add_argument("--vae-tile", type=int, metavar="N", help="VAE tile in latent pixels (default: from free memory)")
    g.add_argument("--cache-mb", type=int, default=1024, help="memory budget of the result cache (MB)")


def add_render_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("result")
    g.add_argument("--pix", type=strength, default=1.0, help="pixel fidelity strength 0..2 (default 1)")
    g.add_argument("--sem", type=strength, default=1.0, help="semantic detail strength 0..2 (default 1)")
    g.add_argument(
        "--realism", type=realism_value, default=1, help="1..999 or default/fidelity/neutral/realism (default 1)"
    )
    g.add_argument("--color-fix", choices=COLOR_FIXES,
                   help="colour correction for PiSA-SR (default adain); the bundled model has none")  # fmt: skip
    g.add_argument("--prompt", default="", help="optional short description of the photo")
    add_size_args(p)


def add_size_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "size",
        "A scale, or a target size: the smallest model scale that reaches the target runs, then a Lanczos "
        "downsample gives exactly that size.",
    )
    g.add_argument("--scale", type=int, choices=SCALES,
                   help="upscale factor (default 4); 1 restores the photo at its own size")  # fmt: skip
    g.add_argument("--long-edge", type=int, metavar="PX", help="result with exactly PX pixels on its long edge")
    g.add_argument("--fit", metavar="WxH", help="the largest result that fits in W x H pixels, e.g. 3840x2160")
    g.add_argument("--print", dest="print_size", metavar="WxH{cm,mm,in}",
                   help="a print size, e.g. 30x20cm or 12x8in, at --dpi (default 300); it turns to the photo's "
                   "orientation, the photo fits inside, and the file says that DPI")  # fmt: skip
    g.add_argument("--dpi", type=float, help="write this DPI in the result (with --print: the print's resolution)")
    g.add_argument("--dpi-policy", choices=DPI_POLICIES, default="keep-print-size",
                   help="keep-print-size (default): the DPI grows with the picture so it prints at the photo's size; "
                   "keep-dpi: the photo's DPI stays, so it prints larger")  # fmt: skip


def quality_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number from 1 to 100") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("quality goes from 1 to 100")
    return value


def add_output_args(p: argparse.ArgumentParser, *, default_format: str | None) -> None:
    """The output-file options shared by upscale and batch (and mirrored by the GUI's save and batch dialogs).

    Every value is checked by argparse, so a typo is a usage error before any model loads.
    """
    g = p.add_argument_group("output file")
    default = f"default {default_format}" if default_format else "default: from the output name, else png"
    g.add_argument("--format", choices=OUTPUT_FORMAT_CHOICES, default=default_format,
                   help=f"png, jpeg, webp, tiff, or same (as the source; PNG for BMP/HEIC/RAW); {default}")  # fmt: skip
    g.add_argument("--bit-depth", type=int, choices=(8, 16),
                   help="PNG/TIFF bits per channel (default: the source's; JPEG and WebP are always 8)")  # fmt: skip
    g.add_argument("--quality", type=quality_value, default=95, help="JPEG/WebP quality 1..100 (default 95)")
    g.add_argument("--strip-metadata", action="store_true",
                   help="do not copy EXIF/XMP/DPI from the source (the colour profile stays if needed)")  # fmt: skip


def add_yes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask before a job estimated over 10 minutes (the warning is still printed)")  # fmt: skip


def save_options_from_args(args: argparse.Namespace, fmt: str | None = None, dpi: float | None = None):  # noqa: ANN201
    """The :class:`~desktop_sr.imaging.SaveOptions` for these options; ``fmt`` overrides --format ("same" = None),
    ``dpi`` is the DPI to write whatever the photo had (see :func:`dpi_from_args`)."""
    from ..imaging import SaveOptions

    chosen = fmt if fmt is not None else args.format
    return SaveOptions(
        format=None if chosen in (None, "same") else chosen,
        bit_depth=args.bit_depth,
        quality=args.quality,
        keep_metadata=not args.strip_metadata,
        dpi=dpi,
        dpi_policy=getattr(args, "dpi_policy", "keep-print-size"),
    )


def params_from_args(args: argparse.Namespace) -> RenderParams:
    scale = getattr(args, "scale", None) or 4
    return RenderParams(
        pix=args.pix,
        sem=args.sem,
        realism=args.realism,
        scale=scale,
        color_fix=args.color_fix or RenderParams().color_fix,
        prompt=args.prompt,
    )


def target_from_args(args: argparse.Namespace) -> TargetSize | None:
    """The target size asked for, or None for a plain --scale. Raises TargetError for a malformed or double ask."""
    given = [name for name, value in (("--scale", args.scale), ("--long-edge", args.long_edge), ("--fit", args.fit),
             ("--print", args.print_size)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise TargetError(f"choose one of {' / '.join(given)}: they all set the size")
    if args.dpi is not None and not 1 <= args.dpi <= 10000:
        raise TargetError("--dpi must be between 1 and 10000")
    if args.long_edge is not None:
        if args.long_edge < 1:
            raise TargetError("--long-edge must be a positive number of pixels")
        return TargetSize.long_edge(args.long_edge)
    if args.fit is not None:
        return TargetSize.fit(*parse_box(args.fit))
    if args.print_size is not None:
        w, h, unit = parse_print(args.print_size)
        return TargetSize.print_size(w, h, unit, args.dpi or 300.0)
    return None


def dpi_from_args(args: argparse.Namespace, target: TargetSize | None) -> float | None:
    """The DPI to write whatever the photo had: the print's, or --dpi; None keeps the photo's (by the policy)."""
    if target is not None and target.kind is TargetKind.PRINT:
        return target.dpi
    return args.dpi


def ignored_options(info: ModelInfo, params: RenderParams, color_fix_given: bool = False) -> list[str]:
    """The options the loaded model cannot honour, so the user is told instead of getting a silently different
    result (e.g. ``--realism 750`` with the bundled upscaler, which has no diffusion timestep)."""
    notes = []
    if params.realism != RenderParams().realism and not info.supports_realism:
        notes.append(f"--realism {params.realism} is ignored: {info.name} has no realism levels (they need PiSA-SR)")
    elif tuple(info.trained_timesteps) == (1,) and params.realism != 1:
        notes.append(
            f"--realism {params.realism} is experimental: {info.name}'s adapters were trained at t = 1 only "
            "(realism levels need a model trained with realism grouping)"
        )
    elif info.trained_timesteps and params.realism not in info.trained_timesteps:
        levels = ", ".join(map(str, info.trained_timesteps))
        notes.append(f"--realism {params.realism}: {info.name} was trained for {levels} only")
    scales = getattr(info, "scales", ())
    if scales and params.scale not in scales:
        notes.append(
            f"--scale {params.scale} is beyond what {info.name} makes (x{max(scales)}): its result is resized with "
            "Lanczos, which adds no detail"
        )
    if params.prompt and not info.supports_prompt:
        notes.append(f"--prompt is ignored: {info.name} does not read descriptions")
    if color_fix_given and not getattr(info, "supports_color_fix", True):
        why = getattr(info, "color_fix_note", "") or f"{info.name} has no colour fix"
        notes.append(f"--color-fix {params.color_fix} is ignored: {why}")
    return notes


def warn_ignored(info: ModelInfo, params: RenderParams, color_fix_given: bool = False) -> None:
    for note in ignored_options(info, params, color_fix_given):
        print(f"desktop-sr: note: {note}", file=sys.stderr)


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The model ``--model`` names, else the model manager's default, else the bundled upscaler (so a fresh install
    works). ``--model`` is a registered model's id or name (``models list``), an upscaler file (any family that
    claims it: a community ``.pth``/``.safetensors``), or a folder that, with ``--lora``, is a PiSA-SR model.

    Raises ModelError with a message that says what to pass."""
    from ..engine.families import family_for
    from ..models.registry import ModelStore, default_spec

    if args.model is None:
        if args.lora is not None:
            raise ModelError(Path("--model"), "--lora needs --model (the SD-2.1-base folder it adapts)")
        spec = default_spec()
        if spec is not None:
            return spec
        found = built_in_spec()
        if found is None:
            raise ModelError(Path("--model"), "no model: import one ('desktop-sr models import FILE') or pass --model")
        return found
    given = Path(args.model).expanduser()
    paths = [given] + ([Path(args.lora).expanduser()] if args.lora is not None else [])
    if given.exists():
        fam = family_for(paths)
        if fam is None:
            if given.is_dir() and args.lora is None:
                raise ModelError(given, "a folder is a PiSA-SR base model: pass its adapter with --lora too")
            raise ModelError(given, "not a model this app can open (see 'desktop-sr models import --help')")
        roles = fam.claims(paths) or {}
        return _an_upscaler(fam.spec(roles), given)
    if args.lora is not None:
        raise ModelError(given, "base model folder not found")
    try:
        spec = ModelStore().spec_for(str(args.model))
    except (ModelError, OSError) as exc:
        raise ModelError(given, f"no such file, and no registered model of this name ({exc})") from exc
    return _an_upscaler(spec, given)


def _an_upscaler(spec: ModelSpec, given: Path) -> ModelSpec:
    """``spec`` if its family makes results; a face model (say) is refused before anything loads."""
    from ..engine.families import family

    if not family(spec.kind).capabilities.upscaler:
        raise ModelError(given, f"{family(spec.kind).label} cannot make the result: use it with --restore-faces")
    return spec


def built_in_spec() -> ModelSpec | None:
    """The model that comes with the app, if it can run here."""
    from ..models.registry import built_in

    found = built_in()
    return found[1].spec if found is not None else None


def tiles_from_args(args: argparse.Namespace) -> TileSettings | None:
    """None (sized from free memory by the engine) unless the user set a tile option."""
    if args.tile is None and args.tile_overlap is None and args.vae_tile is None:
        return None
    unet = args.tile or 96
    overlap = args.tile_overlap if args.tile_overlap is not None else unet // 3
    vae = args.vae_tile or 128
    return TileSettings(unet_tile=unet, unet_overlap=min(overlap, unet // 2), vae_tile=vae)


def session_from_args(args: argparse.Namespace) -> UpscaleSession:
    tiles = tiles_from_args(args)
    try:
        from ..models.paths import models_dir  # the model manager, when installed (as spec_from_args)
    except ImportError:
        folder = None
    else:
        folder = models_dir()
    return open_session(spec_from_args(args), device=args.device, dtype=args.dtype, cache_mb=args.cache_mb, tiles=tiles,
                        models_dir=folder)  # fmt: skip


def in_worker(work: Callable[[], T]) -> T:
    """Run ``work`` on a daemon thread and wait for it, so Ctrl-C is handled at once.

    Python delivers Ctrl-C to the main thread only between bytecodes; a model call (one tile of Real-ESRGAN takes
    minutes on a busy CPU) would hold it back that long. Waiting in short joins keeps the main thread responsive;
    on Ctrl-C the render is abandoned with the process (it has written nothing: files are written afterwards).
    """
    box: dict[str, object] = {}

    def body() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as is
            box["error"] = exc

    thread = threading.Thread(target=body, name="desktop-sr-render", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        # The interpreter cannot shut down around a thread inside a native model call (it aborts): say the one
        # line and leave now. Nothing is open for writing: files are written after the render.
        report_interrupted()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.INTERRUPTED)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@contextlib.contextmanager
def ctrl_c_cancels(control: Control, err: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C cancels cleanly (the photo in progress is abandoned within a tile); a second one aborts.

    For the batch, local or on a cluster; ``err`` prints the command's prefixed message."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if control.cancelled:
            raise KeyboardInterrupt
        err("cancelling after the current tile (Ctrl-C again to abort)…")
        control.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def report_failures(summary: BatchSummary, plan: Plan, err: Callable[[str], None]) -> None:
    """One line per photo of a batch that failed while running (those refused at planning were reported then)."""
    refused = {r.path for r in plan.refused}
    for path, reason in summary.failures:
        if path not in refused:
            err(f"failed: {path}: {reason}")


class StageBar:
    """A tqdm bar per file that follows the engine's (done, total, stage) progress reports.

    The rate and time left come from :class:`~desktop_sr.timing.RenderClock` (time per tile since the render
    started), not tqdm's smoothed rate, which was meaningless on the first tile. ``on_first_estimate`` hears the
    whole render's projected seconds once, after the first tile.
    """

    def __init__(
        self, desc: str, enabled: bool = True, on_first_estimate: Callable[[float], None] | None = None
    ) -> None:
        from tqdm import tqdm

        from ..timing import RenderClock

        global _bars_drawn
        self.bar = tqdm(total=1, desc=desc, unit="tile", leave=False, disable=not enabled, file=sys.stderr,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix}")  # fmt: skip
        self._drawn = enabled
        _bars_drawn += enabled
        self.clock = RenderClock()
        self._on_first_estimate = on_first_estimate

    def __call__(self, done: int, total: int, stage: str) -> None:
        from ..timing import format_duration

        self.clock.update(done, total, stage)
        if self.bar.total != total:
            self.bar.reset(total=total)
        eta = self.clock.eta()
        per_tile = self.clock.seconds_per_tile()
        parts = [stage]
        if per_tile is not None:
            parts.append(f"{per_tile:.1f} s/tile")
        parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA after the first tile")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        self.bar.n = done
        self.bar.refresh()
        if self._on_first_estimate is not None and eta is not None:
            callback, self._on_first_estimate = self._on_first_estimate, None
            total_seconds = self.clock.total_estimate()
            if total_seconds is not None:
                callback(total_seconds)

    def close(self) -> None:
        global _bars_drawn
        if self._drawn:
            self._drawn = False
            _bars_drawn -= 1
        self.bar.close()

    @property
    def callback(self) -> ProgressFn:
        return self


def confirm_long_job(estimate: Estimate | None, what: str, assume_yes: bool) -> bool:
    """Before a job estimated over :data:`~desktop_sr.timing.LONG_JOB_SECONDS`: warn, and on a terminal ask.

    ``--yes`` skips the question; without a terminal on stdin (a script, a pipe) the warning is printed and the
    job goes on, so nothing hangs waiting for an answer nobody can give.
    """
    from ..timing import LONG_JOB_SECONDS

    if estimate is None or estimate.seconds <= LONG_JOB_SECONDS:
        return True
    print(f"desktop-sr: {what} will take {estimate.describe()} on this machine "
          "(measured on earlier renders)", file=sys.stderr)  # fmt: skip
    if assume_yes or not sys.stdin.isatty():
        return True
    try:
        answer = input("Start anyway? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def warn_long_render(name: str) -> Callable[[float], None]:
    """For a render with no earlier measurement: one line once its first tiles show it will be long."""

    def warn(seconds: float) -> None:
        from ..timing import LONG_JOB_SECONDS, format_duration

        if seconds > LONG_JOB_SECONDS:
            from tqdm import tqdm

            tqdm.write(f"desktop-sr: {name} will take about {format_duration(seconds)} (from its first tiles); "
                       "Ctrl-C stops it", file=sys.stderr)  # fmt: skip

    return warn
