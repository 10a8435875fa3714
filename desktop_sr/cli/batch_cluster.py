"""The ``--ray`` face of ``desktop-sr batch``: options, one progress bar for the whole pool, per-worker lines.

Exit codes are the local batch's: 0 every photo written or already there, 1 some photo failed, the batch was
cancelled or stopped, or the cluster could not be used, 2 bad usage (including Ray not installed), 3 no worker
could load the model.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Callable, Sequence

from ..batch.cluster import ClusterRunner, WorkerState
from ..batch.cluster_setup import LOCAL, ClusterError, ClusterOptions, RayMissing, ray_connection
from ..batch.cluster_worker import WorkerLoad
from ..batch.manifest import ManifestError
from ..batch.plan import Plan
from ..batch.progress import Progress, format_eta
from ..batch.results import FAILED, FileResult, ModelLoadFailed
from ..batch.runner import BatchListener
from ..engine.control import Control
from ..engine.loader import ModelSpec
from ..engine.tile_settings import TileSettings
from ..exit_codes import ExitCode
from .common import ctrl_c_cancels, report_failures, warn_ignored

STATUS_EVERY = 60.0  # seconds between per-worker status blocks under --verbose
_HOST_PORT = re.compile(r"^[\w.\-\[\]:]+:\d+$")


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('cluster (pip install "desktop-sr[cluster]"; see docs/cluster.md)')
    g.add_argument("--ray", nargs="?", const=LOCAL, metavar="ADDRESS",
                   help="run on Ray: without ADDRESS start Ray on this machine (bound to 127.0.0.1); 'auto' joins "
                   "the cluster this node belongs to, ray://HOST:10001 a remote one. Inputs, outputs and model files "
                   "must be at the same paths on every node. Put --ray after the inputs")  # fmt: skip
    g.add_argument("--workers", type=_positive_int, metavar="N",
                   help="model replicas (default: one per GPU of the cluster, else 1)")  # fmt: skip
    g.add_argument("--gpus-per-worker", type=_non_negative, metavar="G",
                   help="GPUs each worker holds (default: 1 when the cluster has GPUs, else 0)")  # fmt: skip
    g.add_argument("--cpus-per-worker", type=_positive_float, default=1.0, metavar="C",
                   help="CPUs each worker holds, also its torch threads (default 1)")  # fmt: skip
    g.add_argument("--verbose", dest="worker_lines", action="store_true",
                   help="with --ray: a line per worker event (ready, photo taken, died, replaced)")  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def cluster_usage_error(args: argparse.Namespace) -> str | None:
    """The problem with the cluster options, checked before anything is loaded or scanned; None when fine."""
    if args.ray is None:
        given = [flag for flag, value in (("--workers", args.workers), ("--gpus-per-worker", args.gpus_per_worker))
                 if value is not None]  # fmt: skip
        return f"{', '.join(given)} only apply with --ray" if given else None
    address = args.ray
    if address in (LOCAL, "auto") or address.startswith("ray://") or _HOST_PORT.match(address):
        return None
    return (f"--ray {address!r} is not a cluster address (auto, ray://HOST:10001 or HOST:PORT); "
            "to start Ray on this machine put --ray after the inputs")  # fmt: skip


def options_from_args(args: argparse.Namespace) -> ClusterOptions:
    return ClusterOptions(
        address=None if args.ray == LOCAL else args.ray,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        worker_logs=bool(args.worker_lines or getattr(args, "verbose", False)),
    )


class _PoolListener(BatchListener):
    """One bar for the batch (photos/min, ETA, workers up); with --verbose a line per worker event."""

    def __init__(self, total: int, enabled: bool, verbose: bool) -> None:
        from tqdm import tqdm

        self.enabled = enabled
        self.verbose = verbose
        self.bar = tqdm(total=total, unit="photo", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")  # fmt: skip
        self._last: dict[int, str] = {}
        self._status_at = time.monotonic()
        self._workers = "starting workers…"
        self._rate = "estimating…"
        self.info_shown = False

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"{self._rate} · {self._workers}")

    def model_loading(self) -> None:
        self._workers = "workers loading the model…"
        self._postfix()

    def file_finished(self, result: FileResult, progress: Progress) -> None:
        self.bar.update(1)
        if progress.per_minute is not None:
            self._rate = f"{progress.per_minute:.1f} photos/min, ETA {format_eta(progress.eta_seconds)}"
        self._postfix()
        if result.status == FAILED and self.enabled:
            self.bar.write(f"failed: {result.source}: {result.reason}", file=sys.stderr)

    def paused(self, paused: bool) -> None:
        self._rate = "paused" if paused else self._rate
        self._postfix()

    def workers_changed(self, workers: Sequence[WorkerState]) -> None:
        up = sum(1 for w in workers if w.state in ("idle", "working"))
        self._workers = f"{up}/{len(workers)} workers"
        self._postfix()
        if not self.verbose:
            return
        # A line per lifecycle event (ready, died, replaced, no model), not per photo: 100,000 photos stay readable.
        for w in workers:
            key = f"{'up' if w.state in ('idle', 'working') else w.state}|{w.generation}|{w.note}"
            if self._last.get(w.slot) != key:
                self._last[w.slot] = key
                self.bar.write(w.describe(), file=sys.stderr)
        # And every worker's state now and then: the photo it holds and for how long shows a stuck node.
        now = time.monotonic()
        if now - self._status_at >= STATUS_EVERY:
            self._status_at = now
            for w in workers:
                self.bar.write("  " + w.describe(), file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_on_cluster(
    args: argparse.Namespace, plan: Plan, spec: ModelSpec, tiles: TileSettings | None, err: Callable[[str], None]
) -> int:
    """Run ``plan`` on Ray as ``args`` ask; returns the CLI's exit code. ``err`` prints a prefixed message."""
    options = options_from_args(args)
    verbose = bool(args.worker_lines or getattr(args, "verbose", False))
    load = WorkerLoad(spec, device=args.device, dtype=args.dtype, cache_mb=min(args.cache_mb, 256), tiles=tiles)
    control = Control()
    listener = _PoolListener(len(plan.items), enabled=not args.quiet, verbose=verbose)
    try:
        # nothing left to render (a rerun of a finished batch): no Ray to start at all
        connection = ray_connection(options) if any(i.runs for i in plan.items) else contextlib.nullcontext()
        with connection, ctrl_c_cancels(control, err):
            runner = ClusterRunner(plan, load, options, listener=listener, control=control)
            summary = runner.run()
            if runner.model_info is not None and not args.quiet:
                warn_ignored(runner.model_info, plan.settings.params)
    except RayMissing as exc:
        listener.close()
        err(str(exc))
        return ExitCode.USAGE
    except ClusterError as exc:
        listener.close()
        err(str(exc))
        return ExitCode.FAILED
    except ModelLoadFailed as exc:
        listener.close()
        err(f"cannot load the model on the cluster: {exc}")
        return ExitCode.MODEL
    except ManifestError as exc:
        listener.close()
        err(str(exc))
        return ExitCode.FAILED
    listener.close()
    report_failures(summary, plan, err)
    rate = ""
    if summary.count("written") and summary.seconds > 0:
        rate = f"; {summary.count('written') * 60 / summary.seconds:.1f} photos/min overall"
    n = len(runner.slots)
    err(summary.describe() + (f" on {n} Ray worker{'s' if n != 1 else ''}" if n else "") + rate)
    return ExitCode.OK if summary.ok else ExitCode.FAILED
