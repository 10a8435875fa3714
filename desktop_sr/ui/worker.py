"""The engine worker: a thread that owns the model session and runs jobs one at a time.

The GUI thread never waits on torch. It posts jobs; a newer job of the same kind replaces a queued one
(dragging a slider queues one render, not twenty); the running job can be cancelled between tiles. Results
come back as Qt signals carrying numpy uint8 images, converted here so the GUI thread only wraps them.

The thread never emits Qt signals itself: it puts events in a queue that a GUI-thread timer drains and emits
from there. Queued cross-thread signals to Python callables crash PySide when the receiving callable is freed
while an event is still pending (seen with PySide6 6.12); emitting only on the GUI thread rules that out.
With no Qt object touched off the GUI thread, a plain daemon ``threading.Thread`` does the job of a QThread and
avoids QThread's one hard failure: destroying it while a long UNet pass is still running aborts the process.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from ..engine.api import CancelToken, RenderParams, UpscaleSession
from ..engine.errors import Cancelled, EngineError
from ..engine.loader import ModelSpec, open_session
from ..imaging import Photo, PhotoError, SaveOptions, read_photo, to_uint8, write_photo
from .images import CornerBlend

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass
class Job:
    kind: str  # model, photo, scale, render, corners, detail, export
    payload: dict[str, object] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def slot(self) -> str | None:
        """Jobs sharing a slot supersede each other while queued. Exports never do."""
        return None if self.kind == "export" else ("photo" if self.kind == "scale" else self.kind)


#: What a person reads in the progress bar for each job kind (the engine's stage names go in the tooltip).
JOB_LABELS = {
    "model": "Loading model", "photo": "Opening", "scale": "Opening", "render": "Rendering",
    "corners": "Preparing instant previews", "detail": "Detail map", "export": "Saving",
}  # fmt: skip
_PRIORITY = {"model": 0, "photo": 1, "scale": 1, "render": 2, "export": 3, "detail": 4, "corners": 5}


class _Emitter:
    """Stands in for a signal inside the worker thread: records the emission for the GUI thread to replay."""

    def __init__(self, events: queue.SimpleQueue, name: str) -> None:
        self._events, self._name = events, name

    def emit(self, *args: object) -> None:
        self._events.put((self._name, args))


class EngineWorker(QObject):
    model_loaded = Signal(object, str)  # ModelInfo, description
    model_failed = Signal(str)
    photo_loaded = Signal(object, object, int)  # Photo, before image (uint8 H x W x 3), scale
    photo_failed = Signal(str)
    rendered = Signal(int, object, object, object, float)  # job id, params, uint8 image, region or None, seconds
    corners_ready = Signal(object, object)  # params (pix/sem ignored), CornerBlend prepared in this thread
    detail_ready = Signal(object, object)  # params, float32 H x W map in [0, 1]
    progress = Signal(int, int, str, str)  # done, total, what in plain words, engine stage (e.g. 'unet')
    busy_changed = Signal(bool)
    job_failed = Signal(str, str)  # title, message
    cancelled = Signal(int)
    export_done = Signal(str, float)
    export_failed = Signal(str)

    SIGNALS = (
        "model_loaded", "model_failed", "photo_loaded", "photo_failed", "rendered", "corners_ready",
        "detail_ready", "progress", "busy_changed", "job_failed", "cancelled", "export_done", "export_failed",
    )  # fmt: skip

    def __init__(self, parent: QObject | None = None, poll_ms: int = 10) -> None:
        super().__init__(parent)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._emit = {name: _Emitter(self._events, name) for name in self.SIGNALS}
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.deliver)
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._stop = False
        self._token: CancelToken | None = None
        self._running: Job | None = None
        self.session: UpscaleSession | None = None
        self.photo: Photo | None = None
        self.render_count = 0  # exact renders actually run (tests use it to prove coalescing)

    # -- called from the GUI thread -------------------------------------------------------------------------------
    def submit(self, job: Job) -> int:
        with self._cond:
            if job.slot is not None:
                self._queue = [j for j in self._queue if j.slot != job.slot]
            self._queue.append(job)
            self._cond.notify()
        return job.id

    def cancel(self) -> None:
        """Stop the running job between tiles and drop queued renders and previews."""
        with self._cond:
            self._queue = [j for j in self._queue if j.kind not in ("render", "corners", "detail")]
            if self._token is not None:
                self._token.cancel()

    def supersede_running(self, kind: str) -> None:
        """Cancel the running job if it is of ``kind`` (a newer one of the same kind was just submitted)."""
        with self._cond:
            if self._running is not None and self._running.kind == kind and self._token is not None:
                self._token.cancel()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="desktop-sr-engine", daemon=True)
        self._thread.start()
        self._timer.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._queue.clear()
            if self._token is not None:
                self._token.cancel()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._timer.stop()
        while not self._events.empty():  # drop what was never delivered
            self._events.get_nowait()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def deliver(self) -> None:
        """GUI thread: emit the worker's events in order; of a burst of progress reports only the last."""
        pending = []
        while not self._events.empty():
            pending.append(self._events.get_nowait())
        last_progress = max((i for i, (name, _) in enumerate(pending) if name == "progress"), default=-1)
        for i, (name, args) in enumerate(pending):
            if name == "progress" and i != last_progress:
                continue
            getattr(self, name).emit(*args)

    def pending(self) -> list[str]:
        with self._cond:
            return [j.kind for j in self._queue]

    # -- the worker thread ------------------------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            job = min(self._queue, key=lambda j: (_PRIORITY[j.kind], j.id))
            self._queue.remove(job)
            self._token = CancelToken()
            self._running = job
            return job

    def _newer_render_queued(self) -> bool:
        with self._cond:
            return any(j.kind == "render" for j in self._queue)

    def run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                break
            self._emit["busy_changed"].emit(True)
            try:
                getattr(self, f"_do_{job.kind}")(job)
            except Cancelled:
                self._emit["cancelled"].emit(job.id)
            except (EngineError, PhotoError, ValueError, OSError) as exc:
                self._fail(job, str(exc))
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything the engine throws
                log.error("job %s failed:\n%s", job.kind, traceback.format_exc())
                self._fail(job, f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._token = None
                    self._running = None
                    idle = not self._queue
                if idle:
                    self._emit["busy_changed"].emit(False)
        if self.session is not None:
            self.session.close()

    def _fail(self, job: Job, message: str) -> None:
        if job.kind == "model":
            self._emit["model_failed"].emit(message)
        elif job.kind == "photo":
            self._emit["photo_failed"].emit(message)
        elif job.kind == "export":
            self._emit["export_failed"].emit(message)
        else:
            self._emit["job_failed"].emit(f"{job.kind.capitalize()} failed", message)

    def _progress(self, done: int, total: int, stage: str) -> None:
        running = self._running
        label = JOB_LABELS.get(running.kind, "Working") if running is not None else "Working"
        self._emit["progress"].emit(done, total, label, stage)

    # -- jobs ---------------------------------------------------------------------------------------------------
    def _do_model(self, job: Job) -> None:
        spec: ModelSpec = job.payload["spec"]  # type: ignore[assignment]
        if self.session is not None:
            self.session.close()
            self.session = None
        session = open_session(spec, device=str(job.payload.get("device", "auto")))
        self.session = session
        if self.photo is not None:
            session.set_photo(self.photo.rgb)
        self._emit["model_loaded"].emit(session.info, spec.describe())

    def _before(self, scale: int) -> np.ndarray:
        assert self.photo is not None
        if self.session is not None:
            return to_uint8(self.session.bicubic(scale))
        from ..engine.processing import bicubic_upscale

        return to_uint8(bicubic_upscale(self.photo.rgb, scale))

    def _do_photo(self, job: Job) -> None:
        photo = read_photo(Path(str(job.payload["path"])))
        self.photo = photo
        if self.session is not None:
            self.session.set_photo(photo.rgb)
        scale = int(job.payload.get("scale", 4))  # type: ignore[call-overload]
        self._emit["photo_loaded"].emit(photo, self._before(scale), scale)

    def _do_scale(self, job: Job) -> None:
        if self.photo is not None:
            scale = int(job.payload["scale"])  # type: ignore[call-overload]
            self._emit["photo_loaded"].emit(self.photo, self._before(scale), scale)

    def _do_render(self, job: Job) -> None:
        if self.session is None or self.photo is None:
            return
        params: RenderParams = job.payload["params"]  # type: ignore[assignment]
        region = job.payload.get("region")
        token = self._token
        w, h = self.session.output_size(params.scale)
        start = time.perf_counter()
        if region is not None and tuple(region) != (0, 0, w, h):  # type: ignore[arg-type]
            part = self.session.render(params, region=region, progress=self._progress, cancel=token)  # type: ignore[arg-type]
            self._emit["rendered"].emit(job.id, params, to_uint8(part), tuple(region), time.perf_counter() - start)  # type: ignore[arg-type]
            if self._newer_render_queued():
                return  # the rest would be stale: the user has moved on
        image = self.session.render(params, progress=self._progress, cancel=token)
        self.render_count += 1
        self._emit["rendered"].emit(job.id, params, to_uint8(image), None, time.perf_counter() - start)

    def _do_corners(self, job: Job) -> None:
        if self.session is None or self.photo is None:
            return
        params: RenderParams = job.payload["params"]  # type: ignore[assignment]
        c = self.session.corners(params, progress=self._progress, cancel=self._token)
        self._emit["corners_ready"].emit(params, CornerBlend(c.base, c.pix, c.full))

    def _do_detail(self, job: Job) -> None:
        if self.session is None or self.photo is None:
            return
        params: RenderParams = job.payload["params"]  # type: ignore[assignment]
        self._emit["detail_ready"].emit(
            params, self.session.detail_map(params, progress=self._progress, cancel=self._token)
        )

    def _do_export(self, job: Job) -> None:
        if self.session is None or self.photo is None:
            raise EngineError("nothing to export: open a photo and choose a model first")
        params: RenderParams = job.payload["params"]  # type: ignore[assignment]
        path = Path(str(job.payload["path"]))
        options: SaveOptions = job.payload["options"]  # type: ignore[assignment]
        start = time.perf_counter()
        image = self.session.render(params, progress=self._progress, cancel=self._token)
        write_photo(path, image, like=self.photo, scale=params.scale, options=options)
        self._emit["export_done"].emit(str(path), time.perf_counter() - start)
