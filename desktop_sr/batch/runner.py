"""Running a batch plan: the model loaded once, every file read, rendered and written atomically, one bad file
never stopping the rest, and each step recorded in the manifest so a rerun picks up where a crash left off.

The runner is Qt-free and runs on whatever thread calls :meth:`BatchRunner.run` (the CLI's main thread, the
dialog's worker thread). It talks back through a :class:`BatchListener`, and is steered (pause, cancel) through
the engine's :class:`~desktop_sr.engine.control.Control`, the same object that carries its progress to the engine.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.errors import EngineError
from ..timing import render_fraction
from .manifest import Manifest, ManifestError
from .photo_job import process_photo, reason_for
from .plan import Action, BatchSettings, Plan, PlanItem, path_key, resolve_target
from .progress import EtaEstimator, Progress
from .results import BatchSummary, FileResult, ModelLoadFailed, Status, disk_full_stop, log_result

if TYPE_CHECKING:
    from .cluster import WorkerState

log = logging.getLogger(__name__)

__all__ = ["BatchListener", "BatchRunner", "BatchSummary", "FileResult", "ModelLoadFailed", "Status"]


class BatchListener:
    """Callbacks from the runner's thread. The base class ignores everything; override what you show."""

    def model_loading(self) -> None: ...

    def model_loaded(self, seconds: float) -> None: ...

    def file_started(self, item: PlanItem, progress: Progress) -> None: ...

    def tile_progress(self, progress: Progress) -> None: ...

    def file_finished(self, result: FileResult, progress: Progress) -> None: ...

    def paused(self, paused: bool) -> None: ...

    def workers_changed(self, workers: Sequence[WorkerState]) -> None:
        """A Ray batch's workers changed state (started, took a photo, died, were replaced). Local batches: never."""


SessionFactory = Callable[[], UpscaleSession]


class BatchRunner:
    """Executes one :class:`Plan`. Use once: create, :meth:`run`, read the summary."""

    def __init__(
        self,
        plan: Plan,
        session: UpscaleSession | SessionFactory,
        *,
        listener: BatchListener | None = None,
        control: Control | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        """``session`` is a loaded session (kept open) or a factory called once, on this thread, when the first
        file needs the model (closed at the end). The factory form lets the dialog's worker thread own torch."""
        self.plan = plan
        self.settings = plan.settings
        self._session: UpscaleSession | None = session if _is_session(session) else None  # type: ignore[assignment]
        self._factory: SessionFactory | None = None if self._session is not None else session  # type: ignore[assignment]
        self.listener = listener or BatchListener()
        self.control = control or Control()
        self.manifest = manifest or Manifest(self.settings.output_dir)
        self.signature = self.settings.signature()
        self.summary = BatchSummary(refused=list(plan.refused), output_dir=Path(self.settings.output_dir))
        self._eta = EtaEstimator(sum(1 for i in plan.items if i.runs))
        self._finished = 0
        self._index = 0
        self._current: Path | None = None
        self._fraction = 0.0

    # -- progress -------------------------------------------------------------------------------------------------
    def _progress(self, tile_done: int = 0, tile_total: int = 0, stage: str = "") -> Progress:
        total = len(self.plan.items)
        frac = (self._finished + self._fraction) / total if total else 1.0
        return Progress(total, self._finished, self._index, self._current, tile_done, tile_total, stage,
                        min(1.0, frac), self._eta.eta(self._fraction), self._eta.elapsed())  # fmt: skip

    def _on_tile(self, done: int, total: int, stage: str) -> None:
        """The engine's progress callback: between tiles, so this is also where a pause holds."""
        if self.control.paused:
            t0 = time.perf_counter()
            self.listener.paused(True)
            self.control.wait_while_paused()
            self._eta.add_pause(time.perf_counter() - t0)
            self.listener.paused(False)
        self._fraction = render_fraction(stage, done, total)
        self.listener.tile_progress(self._progress(done, total, stage))

    def _settle(self, result: FileResult) -> None:
        self.summary.results.append(result)
        self._finished += 1
        self._fraction = 0.0
        log_result(result)
        self.listener.file_finished(result, self._progress())

    # -- the run --------------------------------------------------------------------------------------------------
    def _load(self) -> UpscaleSession:
        if self._session is None:
            assert self._factory is not None
            self.listener.model_loading()
            t0 = time.perf_counter()
            try:
                self._session = self._factory()
            except (EngineError, OSError, ValueError, ImportError) as exc:
                raise ModelLoadFailed(str(exc)) from exc
            self.summary.load_seconds = time.perf_counter() - t0
            self.listener.model_loaded(self.summary.load_seconds)
        return self._session

    def run(self) -> BatchSummary:
        """Run every item. Raises ModelLoadFailed (nothing ran) or ManifestError (output folder unusable).

        Per-file problems (unreadable photo, a write that fails, an engine error) are recorded and the batch
        goes on. Cancel abandons the file in progress: its result is never written, nothing half-written stays.
        """
        t0 = time.perf_counter()
        self.manifest.open()
        try:
            remove_stale_temps(self.plan.items)
            if any(i.runs for i in self.plan.items) and not self.control.cancelled:
                self._load()
            taken = {path_key(i.target) for i in self.plan.items if i.action == Action.DONE}
            for index, item in enumerate(self.plan.items):
                self._index, self._current = index, item.source
                if self.control.paused:
                    p0 = time.perf_counter()
                    self.listener.paused(True)
                    self.control.wait_while_paused()
                    self._eta.add_pause(time.perf_counter() - p0)
                    self.listener.paused(False)
                if self.control.cancelled:
                    self.summary.cancelled = True
                    self.summary.not_reached = len(self.plan.items) - index
                    break
                result = self._one(item, taken)
                if result.status == Status.CANCELLED:
                    self.summary.cancelled = True
                    self.summary.not_reached = len(self.plan.items) - index - 1
                    self.summary.results.append(result)
                    break
                self._settle(result)
                if result.status == Status.FAILED and result.disk_full:
                    # every later file would render for minutes and then fail the same way
                    self.summary.stopped = disk_full_stop(result.reason)
                    self.summary.not_reached = len(self.plan.items) - index - 1
                    break
        finally:
            self.manifest.close()
            if self._factory is not None and self._session is not None:
                self._session.close()
                self._session = None
            self.summary.seconds = time.perf_counter() - t0
            log.info("batch into %s: %s", self.settings.output_dir, self.summary.describe())
        return self.summary

    def _one(self, item: PlanItem, taken: set[str]) -> FileResult:
        if item.action == Action.DONE:
            return FileResult(item.source, item.target, Status.DONE_BEFORE, "finished by an earlier run")
        if item.action == Action.UNREADABLE:  # found by the plan from its header: no model needed to say so
            with contextlib.suppress(OSError, ManifestError):
                self.manifest.failed(item.source, self.signature, item.target, item.conflict)
            return FileResult(item.source, item.target, Status.FAILED, item.conflict)
        target, action = recheck_target(item, self.settings, taken)
        taken.add(path_key(target))
        if action == Action.SKIP:
            self._eta.file_abandoned(counted=item.runs)
            return FileResult(item.source, target, Status.SKIPPED, "a file with this name exists")
        self.listener.file_started(item, self._progress())
        self._eta.file_started()
        scale2 = self.settings.params.scale**2
        outcome = process_photo(
            item.source,
            target,
            self.settings,
            self._load,
            control=self.control.sub(self._on_tile),
            on_read=lambda photo: self._eta.file_sized(photo.width * photo.height * scale2 / 1e6),
            before_write=lambda: self.manifest.writing(item.source, self.signature, target),
        )
        result = FileResult(item.source, target, outcome.status, outcome.reason, outcome.seconds,
                            outcome.model_seconds, disk_full=outcome.disk_full, notes=outcome.notes)  # fmt: skip
        if outcome.status == Status.WRITTEN:
            try:
                self.manifest.done(item.source, self.signature, target, outcome.seconds)
            except OSError as exc:  # written, but not recorded: say so rather than claim a finished file
                result.status, result.reason = Status.FAILED, reason_for(exc)
        if result.status == Status.WRITTEN:
            self._eta.file_rendered()
        else:
            self._eta.file_abandoned()
        if result.status == Status.FAILED:
            with contextlib.suppress(OSError, ManifestError):  # the manifest may be on the same full disk
                self.manifest.failed(item.source, self.signature, target, result.reason)
        return result


def recheck_target(item: PlanItem, settings: BatchSettings, taken: set[str]) -> tuple[Path, Action]:
    """The folder may have changed since planning: apply the collision policy again to the desired name.

    Called just before a photo starts, by the local runner and by the Ray driver alike."""
    if item.action in (Action.DONE, Action.SKIP, Action.OVERWRITE):
        return item.target, item.action
    if item.action in (Action.WRITE, Action.RENAME) and not item.target.exists() and path_key(item.target) not in taken:
        return item.target, item.action
    target, action, _ = resolve_target(
        item.desired, policy=settings.on_conflict, style=settings.rename_style, taken=taken, source=item.source
    )
    return target, action


def _is_session(obj: object) -> bool:
    return hasattr(obj, "render") and hasattr(obj, "set_photo")


def remove_stale_temps(items: list[PlanItem]) -> None:
    """Delete temp files a killed earlier run left beside the targets it was writing.

    The photo layer writes ``.<stem>.<random>.part`` next to the target and renames it; SIGKILL between the two
    leaves the temp behind. Only names matching a target of this plan are touched, in folders we hold the lock for.
    """
    remove_temps_beside(path for item in items if item.runs for path in {item.target, item.desired})


def remove_temps_beside(targets: Iterable[Path]) -> None:
    """Delete the photo layer's temp files for these targets (a Ray worker killed mid-write leaves one too)."""
    for target in targets:
        folder = target.parent
        if not folder.is_dir():
            continue
        for tmp in folder.glob(f".{_glob_escape(target.stem[:80])}.*.part"):  # the photo layer keeps 80 characters
            with contextlib.suppress(OSError):
                tmp.unlink()


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)
