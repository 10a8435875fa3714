"""The batch dialog's worker: a QThread that loads its own model session and runs the Qt-free batch runner.

Its own session, not the main window's: the window keeps rendering and previewing while a batch runs, and the
session API is single-threaded. torch is touched only on this thread, through the engine. Pause and cancel go
straight to the thread-safe :class:`BatchControl`.

The thread never emits Qt signals itself: runner callbacks are put in a queue that a GUI-thread timer drains and
emits from (as the engine worker does). Queued cross-thread signals to Python callables crash PySide6 6.12 when
the receiver is freed while an event is pending, e.g. a dialog closed mid-batch; GUI-thread emission rules it out.
"""

from __future__ import annotations

import logging
import queue
import traceback

from PySide6.QtCore import QThread, QTimer, Signal

from ..batch import BatchControl, BatchListener, BatchRunner, FileResult, ManifestError, ModelLoadFailed, Plan
from ..batch.plan import PlanItem
from ..batch.progress import Progress
from ..engine.api import UpscaleSession
from ..engine.loader import ModelSpec, open_session
from ..engine.tile_settings import TileSettings

log = logging.getLogger(__name__)


class _Relay(BatchListener):
    """Runner callbacks (on the worker thread) posted for the GUI thread to emit as the worker's signals."""

    def __init__(self, worker: BatchWorker) -> None:
        self.w = worker

    def model_loading(self) -> None:
        self.w.post("model_loading")

    def model_loaded(self, seconds: float) -> None:
        self.w.post("model_loaded", seconds)

    def file_started(self, item: PlanItem, progress: Progress) -> None:
        self.w.post("file_started", item, progress)

    def tile_progress(self, progress: Progress) -> None:
        if self.w.control.cancelled:
            self.w.tiles_after_cancel += 1
        self.w.post("tile_progress", progress)

    def file_finished(self, result: FileResult, progress: Progress) -> None:
        self.w.post("file_finished", result, progress)

    def paused(self, paused: bool) -> None:
        self.w.post("paused_changed", paused)


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
        #: Tile reports that came after cancel was requested: at most one when the engine stops between tiles.
        self.tiles_after_cancel = 0
        self._events: queue.SimpleQueue[tuple[str, tuple[object, ...]]] = queue.SimpleQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(20)
        self._timer.timeout.connect(self.deliver)

    def post(self, signal: str, *args: object) -> None:
        """Called on the worker thread: queue an emission of ``signal`` for the GUI thread."""
        self._events.put((signal, args))

    def _open(self) -> UpscaleSession:
        return open_session(self.spec, device=self.device, tiles=self.tiles)

    # -- GUI thread -----------------------------------------------------------------------------------------------
    def start(self) -> None:  # type: ignore[override]
        self._timer.start()
        super().start()

    def deliver(self) -> None:
        """Emit what the worker thread posted; stop polling once the thread has ended and all is delivered."""
        finished = self.isFinished()
        while True:
            try:
                name, args = self._events.get_nowait()
            except queue.Empty:
                break
            getattr(self, name).emit(*args)
        if finished:
            self._timer.stop()

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
            self.post("batch_failed", f"The model could not be loaded:\n{exc}")
            return
        except ManifestError as exc:
            self.post("batch_failed", str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a worker thread must report, never die silently
            log.error("batch failed:\n%s", traceback.format_exc())
            self.post("batch_failed", f"{type(exc).__name__}: {exc}")
            return
        if self.tiles_after_cancel:
            log.info("batch stopped %d tile(s) after cancel", self.tiles_after_cancel)
        self.post("batch_done", summary)
