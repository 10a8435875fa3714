"""``desktop-sr batch INPUT... -o OUT_DIR``: upscale folders headless with the same runner as the dialog.

Exit codes: 0 every photo written or already there, 1 some photo failed (the failures are listed on stderr) or the
output folder cannot take the results (said before the model loads), 2 bad usage such as an invalid name template
(reported before anything runs), 3 the model could not be loaded, 130 cancelled with Ctrl-C, even when some photos
had failed before it (they are listed): the first Ctrl-C finishes cleanly after the current tile, a second one stops
at once; either way no half-written file is left and the next run resumes.

With --ray the same plan runs on a Ray cluster, one model replica per worker (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..batch.manifest import Manifest, ManifestError
from ..batch.naming import DEFAULT_TEMPLATE, FIELDS, TARGET_TEMPLATE, TemplateError
from ..batch.plan import ON_CONFLICT, RENAME_STYLES, Action, BatchSettings, Plan, PlanError, PlanItem, make_plan
from ..batch.progress import Progress, format_eta
from ..batch.runner import BatchListener, BatchRunner, FileResult, ModelLoadFailed
from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.errors import ModelError
from ..exit_codes import ExitCode
from ..imaging.preflight import OutputProblem, check_folder
from .batch_cluster import add_cluster_args, cluster_usage_error
from .common import (
    StageBar,
    add_model_args,
    add_output_args,
    add_render_args,
    add_yes_arg,
    confirm_long_job,
    ctrl_c_cancels,
    dpi_from_args,
    params_from_args,
    report_failures,
    save_options_from_args,
    spec_from_args,
    target_from_args,
    tiles_from_args,
    warn_ignored,
)
from .faces import add_face_args, face_choice_from_args, load_face_model
from .help_text import plain


def add_batch_parser(sub: argparse._SubParsersAction) -> None:
    fields = ", ".join("{" + f + "}" for f in FIELDS)
    p = sub.add_parser(
        "batch",
        help="upscale many photos or whole folders; resumable",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="photo files and/or folders (camera RAW and DNG too, with the [raw] extra)")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("-r", "--recursive", action="store_true", help="include sub-folders, mirrored under OUT_DIR")
    p.add_argument("--name", metavar="TEMPLATE",
                   help=f"output name without extension (default {DEFAULT_TEMPLATE}, or {TARGET_TEMPLATE} with a "
                   f"target size); fields: {fields}")  # fmt: skip
    p.add_argument("--on-conflict", choices=ON_CONFLICT, default="skip",
                   help="when an output exists: skip it (default), overwrite it, or rename the new one")  # fmt: skip
    p.add_argument("--rename-style", choices=tuple(RENAME_STYLES), default="paren",
                   help='paren: "name (1).png" (default); underscore: "name_1.png"')  # fmt: skip
    add_output_args(p, default_format="png")
    p.add_argument("--dry-run", action="store_true", help="print the plan (source -> output, action) and stop")
    p.add_argument("--fresh", action="store_true",
                   help="ignore the record of earlier runs (default: resume, skipping finished photos)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_yes_arg(p)
    add_model_args(p)
    add_render_args(p)
    p.add_argument("--no-saved-masks", dest="saved_masks", action="store_false",
                   help="ignore strength masks painted in the editor (default: a photo with one uses it)")  # fmt: skip
    add_face_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run_batch)


def _err(message: str) -> None:
    print(f"desktop-sr batch: {message}", file=sys.stderr)


class _CliListener(BatchListener):
    """A bar over the photos (with our pixel-based ETA) and the per-file tile bar of ``upscale``."""

    def __init__(self, total: int, enabled: bool, record: Callable[[FileResult], None] | None = None) -> None:
        from tqdm import tqdm

        self.record = record
        self.enabled = enabled
        self.bar = tqdm(total=total, unit="photo", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")  # fmt: skip
        self.stage: StageBar | None = None

    def model_loading(self) -> None:
        self.bar.set_postfix_str("loading the model…")

    def file_started(self, item: PlanItem, progress: Progress) -> None:
        self._close_stage()
        self.stage = StageBar(item.source.name, enabled=self.enabled)
        self.bar.set_postfix_str(f"ETA {format_eta(progress.eta_seconds)}")

    def tile_progress(self, progress: Progress) -> None:
        if self.stage is not None:
            self.stage(progress.tile_done, progress.tile_total, progress.stage)

    def file_finished(self, result: FileResult, progress: Progress) -> None:
        self._close_stage()
        if self.record is not None and result.status == "written":
            self.record(result)
        self.bar.update(1)
        self.bar.set_postfix_str(f"ETA {format_eta(progress.eta_seconds)}")
        if result.status == "failed" and self.enabled:
            self.bar.write(f"failed: {result.source}: {result.reason}", file=sys.stderr)
        for note in result.notes:  # shown even with --quiet: it is about the user's file, not progress
            self.bar.write(f"desktop-sr batch: note: {result.source}: {note}", file=sys.stderr)

    def paused(self, paused: bool) -> None:
        self.bar.set_postfix_str("paused" if paused else "")

    def _close_stage(self) -> None:
        if self.stage is not None:
            self.stage.close()
            self.stage = None

    def close(self) -> None:
        self._close_stage()
        self.bar.close()


def _worst_bytes(plan: Plan, scale: int) -> int:
    """Space the results may need at worst, from the sizes the plan read (a target size: at most the largest scale)."""
    from ..imaging.preflight import OutputSize

    return sum(OutputSize(w * scale, h * scale).worst_bytes(plan.settings.output_format(item.source))
               for item, (w, h) in plan.sized_runs())  # fmt: skip


def run_batch(args: argparse.Namespace) -> int:
    try:
        target = target_from_args(args)
        params = params_from_args(args)
        save = save_options_from_args(args, dpi=dpi_from_args(args, target))
    except ValueError as exc:
        _err(str(exc))
        return ExitCode.USAGE
    if problem := cluster_usage_error(args):
        _err(problem)
        return ExitCode.USAGE
    settings = BatchSettings(
        output_dir=args.output,
        params=params,
        template=args.name or (TARGET_TEMPLATE if target is not None else DEFAULT_TEMPLATE),
        save=save,
        on_conflict=args.on_conflict,
        rename_style=args.rename_style,
        recursive=args.recursive,
        model_name="model",
        target=target,
        use_saved_masks=args.saved_masks,
    )
    try:
        settings = replace(settings, faces=face_choice_from_args(args))  # a wrong face model: refused at once
    except ModelError as exc:
        _err(str(exc))
        return ExitCode.MODEL
    try:
        settings.validate()  # the template first: a typo must not cost a model lookup, a load or a folder scan
    except TemplateError as exc:
        _err(str(exc))
        return ExitCode.USAGE
    spec = None
    if not args.dry_run or args.model or args.lora:
        try:
            spec = spec_from_args(args)
        except ModelError as exc:
            _err(f"cannot load the model: {exc}")
            return ExitCode.MODEL
        settings = replace(settings, model_name=spec.name)
    try:
        manifest = None if args.fresh else Manifest(args.output)
        plan = make_plan(args.inputs, settings, manifest)
    except (TemplateError, PlanError) as exc:
        _err(str(exc))
        return ExitCode.USAGE
    except ManifestError as exc:
        _err(str(exc))
        return ExitCode.FAILED
    for refused in plan.refused:
        _err(f"{refused.path}: {refused.reason}")
    if not plan.items:
        _err("no photos found" + ("" if args.recursive else " (use --recursive for sub-folders)"))
        return ExitCode.FAILED
    if not args.quiet or args.dry_run:
        print(f"{plan.describe()} -> {args.output}", file=sys.stderr)
    if any(item.runs for item in plan.items):  # the output folder takes the results: known before the model loads
        try:
            check_folder(args.output, _worst_bytes(plan, params.scale))
        except OutputProblem as exc:
            _err(str(exc))
            return ExitCode.FAILED
    if args.dry_run:
        for item in plan.items:
            note = f" ({item.conflict})" if item.conflict else ""
            print(f"{item.source}\t{item.target}\t{item.action}{note}")
        return ExitCode.OK if not plan.refused and not plan.count(Action.UNREADABLE) else ExitCode.FAILED

    assert spec is not None
    tiles = tiles_from_args(args)
    if args.ray is not None:
        from .batch_cluster import run_on_cluster  # Ray itself is imported only there

        return run_on_cluster(args, plan, spec, tiles, _err)

    from ..engine.loader import device_for, notice_of
    from ..render_cost import render_work
    from ..timing import CostBook

    book, device, scale = CostBook(), device_for(spec, args.device), params.scale
    works = {item.source: render_work(spec.kind, w, h, scale) for item, (w, h) in plan.sized_runs()}
    out_mp = sum(w * h * scale * scale / 1e6 for _, (w, h) in plan.sized_runs())
    estimate = book.estimate(spec.name, device, list(works.values()))
    if not confirm_long_job(estimate, f"this batch ({len(works)} photos, {out_mp:.0f} MP out)", args.yes):
        _err("not started")
        return ExitCode.FAILED

    def record(result: FileResult) -> None:
        if result.model_seconds > 0 and works.get(result.source):
            book.record(spec.name, device, works[result.source], result.model_seconds)

    def load() -> UpscaleSession:
        from ..engine.loader import open_session
        from ..models import models_dir

        session = open_session(spec, device=args.device, dtype=args.dtype, cache_mb=args.cache_mb, tiles=tiles,
                               models_dir=models_dir())  # fmt: skip
        if not args.quiet:
            warn_ignored(session.info, params_from_args(args), args.color_fix is not None)
        if notice_of(session):  # a device that could not start, or that this model cannot use
            _err(f"note: {notice_of(session)}")
        if settings.faces is not None:
            load_face_model(settings.faces)  # its licence before first use; a broken file stops the batch here
        return session

    control = Control()
    listener = _CliListener(len(plan.items), enabled=not args.quiet, record=record)
    runner = BatchRunner(plan, load, listener=listener, control=control)
    try:
        with ctrl_c_cancels(control, _err):
            summary = runner.run()
    except ModelLoadFailed as exc:
        listener.close()
        _err(f"cannot load the model: {exc}")
        return ExitCode.MODEL
    except ManifestError as exc:
        listener.close()
        _err(str(exc))
        return ExitCode.FAILED
    listener.close()
    report_failures(summary, plan, _err)
    _err(summary.describe())
    if summary.cancelled and control.cancelled:  # Ctrl-C wins: what failed before it is listed above
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.ok else ExitCode.FAILED
