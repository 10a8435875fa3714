"""The batch dialog's worker: a QThread that loads its own model session and runs the Qt-free batch runner.

Its own session, not the main window's: the window keeps rendering and previewing while a batch runs, and the
session API is single-threaded. torch is touched only on this thread, through the engine. Runner callbacks become
Qt signals (queued to the GUI thread); pause and cancel go straight to the thread-safe :class:`BatchControl`.
"""

from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import QThread, Signal

from ..batch import BatchControl, BatchListener, BatchRunner, FileResult, ManifestError, ModelLoadFailed, Plan
from ..batch.plan import PlanItem
from ..batch.progress import Progress
from ..engine.api import UpscaleSession
from ..engine.loader import ModelSpec, open_session
from ..engine.tiling import TileSettings

log = logging.getLogger(__name__)


class _Relay(BatchListener):
    """Runner callbacks (on the worker thread) re-emitted as the worker's signals."""

    def __init__(self, worker: BatchWorker) -> None:
        self.w = worker

    def model_loading(self) -> None:
        self.w.model_loading.emit()

    def model_loaded(self, seconds: float) -> None:
        self.w.model_loaded.emit(seconds)

    def file_started(self, item: PlanItem, progress: Progress) -> None:
        self.w.file_started.emit(item, progress)

    def tile_progress(self, progress: Progress) -> None:
        self.w.tile_progress.emit(progress)

    def file_finished(self, result: FileResult, progress: Progress) -> None:
        self.w.file_finished.emit(result, progress)

    def paused(self, paused: bool) -> None:
        self.w.paused_changed.emit(paused)


class BatchWorker(QThread):
    model_loading = Signal()
    model_loaded = Signal(float)
    file_started = Signal(object, object)  # PlanItem, Progress
    tile_progress = Signal(object)  # Progress
    file_finished = Signal(object, object)  # FileResult, Progress
    paused_changed = Signal(bool)
    batch_done = Signal(object)  # BatchSummary
    batch_failed = Signal(str)  # nothing could run: the model or the output folder

    def __init__(
        self, plan: Plan, spec: ModelSpec, *, device: str = "auto", tiles: TileSettings | None = None, parent=None
    ) -> None:
        super().__init__(parent)
        self.plan, self.spec, self.device, self.tiles = plan, spec, device, tiles
        self.control = BatchControl()

    def _open(self) -> UpscaleSession:
        return open_session(self.spec, device=self.device, tiles=self.tiles)

    # -- GUI thread -----------------------------------------------------------------------------------------------
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    # -- worker thread --------------------------------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - QThread entry point
        runner = BatchRunner(self.plan, self._open, listener=_Relay(self), control=self.control)
        try:
            summary = runner.run()
        except ModelLoadFailed as exc:
            self.batch_failed.emit(f"The model could not be loaded:\n{exc}")
            return
        except ManifestError as exc:
            self.batch_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a worker thread must report, never die silently
            log.error("batch failed:\n%s", traceback.format_exc())
            self.batch_failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.batch_done.emit(summary)
