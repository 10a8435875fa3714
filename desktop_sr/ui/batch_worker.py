"""The batch dialog's background work: one :class:`RunBatch` job on a :class:`~desktop_sr.ui.relay.BackgroundRelay`,
which runs the Qt-free batch runner on the relay's thread.

The model comes from the editor's :class:`~desktop_sr.editor.executor.SharedModel` when the window hands it over:
with the editor's model on its device the batch borrows that session (no second copy; the two take turns per photo,
the editor first, so the window keeps rendering between batch photos); with another model on the same GPU the
editor's is set aside until the batch ends (never two models on one GPU); on the CPU, or without the editor's
model at hand, the batch loads its own, as it always did. torch is touched only on the relay's thread, through the
engine. The runner's news (a file started, tile progress, a file finished, paused) arrives on the GUI thread as typed
results; pause and cancel go straight to the job's :class:`~desktop_sr.engine.control.Control`, which the relay's
control shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject

from ..batch import (
    BatchListener,
    BatchRunner,
    BatchSummary,
    FileResult,
    ManifestError,
    ModelLoadFailed,
    Plan,
)
from ..batch.plan import PlanItem
from ..batch.progress import Progress
from ..editor.executor import BorrowedSession, ReservedSession, SharedModel
from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.loader import ModelSpec
from ..engine.tile_settings import TileSettings
from .relay import BackgroundRelay, JobFailed, RelayControl, Task


@dataclass(frozen=True)
class RunBatch(Task):
    plan: Plan
    spec: ModelSpec
    device: str = "auto"
    tiles: TileSettings | None = None
    models_dir: Path | None = None
    control: Control = field(default_factory=Control, compare=False)  # the dialog's pause and cancel


@dataclass(frozen=True)
class ModelLoading:
    pass


@dataclass(frozen=True)
class ModelNote:
    """How the batch got its model, in words, when it is not a copy of its own (the editor's, or the GPU taken)."""

    text: str


#: What each way of getting the model means for the user (see :meth:`SharedModel.lend`).
SHARED_NOTE = "the editor's copy, shared (the editor's renders go between photos)"
RESERVED_NOTE = "the editor's model is set aside until this batch ends (one model per GPU)"


@dataclass(frozen=True)
class FileStarted:
    item: PlanItem
    progress: Progress


@dataclass(frozen=True)
class TileProgress:
    progress: Progress


@dataclass(frozen=True)
class FileFinished:
    result: FileResult
    progress: Progress


@dataclass(frozen=True)
class PauseChanged:
    paused: bool


class _Reporter(BatchListener):
    """Runner callbacks (on the relay's thread) reported to the GUI thread as typed results."""

    def __init__(self, worker: BatchWorker, job: RunBatch, control: RelayControl) -> None:
        self.worker, self.job, self.control = worker, job, control

    def model_loading(self) -> None:
        self.control.deliver(ModelLoading())

    def file_started(self, item: PlanItem, progress: Progress) -> None:
        self.control.deliver(FileStarted(item, progress))

    def tile_progress(self, progress: Progress) -> None:
        if self.job.control.cancelled:
            self.worker.tiles_after_cancel += 1
        self.control.deliver(TileProgress(progress))

    def file_finished(self, result: FileResult, progress: Progress) -> None:
        self.control.deliver(FileFinished(result, progress))

    def paused(self, paused: bool) -> None:
        self.control.deliver(PauseChanged(paused))


class BatchWorker(BackgroundRelay):
    """Runs one batch; ``result`` brings its news and finally the :class:`BatchSummary`, ``failed`` says why nothing
    could run (the model or the output folder)."""

    def __init__(self, job: RunBatch, parent: QObject | None = None, *, shared: SharedModel | None = None) -> None:
        """``shared``: the editor's model, borrowed or set aside rather than loading a second copy beside it."""
        super().__init__(self._run, name="batch", parent=parent, poll_ms=20)
        self.job, self.shared = job, shared
        #: Tile reports that came after cancel was requested: at most one when the engine stops between tiles.
        self.tiles_after_cancel = 0

    @property
    def control(self) -> Control:
        return self.job.control

    def start(self) -> None:
        self.submit(self.job)

    def pause(self) -> None:
        self.job.control.pause()

    def resume(self) -> None:
        self.job.control.resume()

    def cancel(self, kinds: tuple[type, ...] | None = None) -> None:
        self.job.control.cancel()
        super().cancel(kinds)

    def _run(self, job: RunBatch, control: RelayControl) -> BatchSummary:
        from ..engine.loader import device_for, notice_of, open_session

        def own() -> UpscaleSession:
            model = open_session(job.spec, device=job.device, tiles=job.tiles, models_dir=job.models_dir)
            if notice_of(model):  # a device that could not start, or that this model cannot use
                control.deliver(ModelNote(notice_of(model)))
            return model

        def session() -> UpscaleSession:  # called once, on this thread, when the first file needs the model
            if self.shared is None:
                return own()
            model = self.shared.lend(job.spec, device_for(job.spec, job.device), job.tiles, own)
            if isinstance(model, BorrowedSession | ReservedSession):
                control.deliver(ModelNote(SHARED_NOTE if isinstance(model, BorrowedSession) else RESERVED_NOTE))
            return model

        runner = BatchRunner(job.plan, session, listener=_Reporter(self, job, control), control=control)
        try:
            return runner.run()
        except ModelLoadFailed as exc:
            raise JobFailed(f"The model could not be loaded:\n{exc}") from exc
        except ManifestError as exc:
            raise JobFailed(str(exc)) from exc
