"""The one way the GUI runs background work: a plain thread, a queue of typed jobs, results relayed to the GUI thread.

The render worker, the batch dialog and the model manager all use it. A job is any object with an ``id``, a ``slot``
(jobs of one slot replace each other while queued; ``None`` never does) and a ``priority`` (lower runs first). The
``run(job, control)`` function given to the relay does the work on its thread and yields results; each arrives on the
GUI thread as ``result(job, value)``, so receivers drop what a newer job has superseded by comparing ids. Every
failure takes one path, ``failed(job, message)``; a cancelled job ends with ``cancelled(job)``.

The thread never touches Qt: it puts events in a queue that a GUI-thread timer drains and emits. Queued cross-thread
signals to Python callables crash PySide6 when the receiver is freed while an event is pending (seen with 6.12);
emitting only on the GUI thread rules that out. A plain daemon ``threading.Thread`` (not a ``QThread``) avoids
QThread's one hard failure: destroying it while a long UNet pass still runs aborts the process. The timer runs only
while work is queued, running or undelivered.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from ..editor.executor import JobControl
from ..editor.jobs import next_job_id
from ..engine.control import Control
from ..engine.errors import Cancelled, EngineError
from ..imaging import PhotoError
from ..models.errors import OperationCancelled

log = logging.getLogger(__name__)
#: Errors with a message written for a person: shown as they are. Anything else is a bug: logged with its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (EngineError, PhotoError, ValueError, OSError)


class RelayJob(Protocol):
    @property
    def id(self) -> int: ...

    slot: ClassVar[str | None]
    priority: ClassVar[int]


@dataclass(frozen=True)
class Task:
    """A convenience base for jobs outside the editor (a batch, an import): an id, no slot, one priority."""

    id: int = field(default_factory=next_job_id, init=False, compare=False)
    slot: ClassVar[str | None] = None
    priority: ClassVar[int] = 0


class JobFailed(Exception):
    """Raised by a job to fail with exactly this message (e.g. a batch whose model could not load)."""


class RelayControl(JobControl):
    """The running job's progress-and-cancel object: its reports become ``progress`` signals; it can deliver
    intermediate results; it knows whether a newer job of its slot is waiting. A job that carries its own
    ``control`` (a batch the dialog pauses) shares that control's cancel and pause."""

    def __init__(self, relay: BackgroundRelay, job: RelayJob) -> None:
        own = getattr(job, "control", None)
        super().__init__(self._progress, like=own if isinstance(own, Control) else None)
        self._relay, self._job = relay, job

    def _progress(self, done: int, total: int, stage: str) -> None:
        self._relay._post("progress", self._job, done, total, stage)

    def deliver(self, value: object) -> None:
        """Deliver an intermediate result now (a batch's per-file news) without ending the job."""
        self._relay._post("result", self._job, value)

    def superseded(self) -> bool:
        return self._relay._queued_in_slot(self._job.slot)


#: ``run(job, control)``: the work, on the relay's thread; returns one result, or yields several.
RunFn = Callable[[Any, RelayControl], Iterable[object] | object]


class BackgroundRelay(QObject):
    result = Signal(object, object)  # job, value (a job may yield several, e.g. the visible region then the whole)
    failed = Signal(object, str)  # job, message
    cancelled = Signal(object)  # job
    progress = Signal(object, int, int, str)  # job, done, total, stage (of a burst, only the last is emitted)
    started = Signal(object)  # job: it left the queue and runs now (a clock measuring it starts here)
    busy_changed = Signal(bool)

    def __init__(
        self,
        run: RunFn,
        *,
        name: str = "work",
        parent: QObject | None = None,
        poll_ms: int = 10,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._run, self.name, self._on_exit = run, name, on_exit
        self._events: queue.SimpleQueue[tuple[str, tuple[object, ...]]] = queue.SimpleQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.deliver)
        self._cond = threading.Condition()
        self._queue: list[RelayJob] = []
        self._running: tuple[RelayJob, RelayControl] | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._open: set[int] = set()  # GUI thread only: ids of jobs submitted whose end has not been delivered

    # -- GUI thread -----------------------------------------------------------------------------------------------
    def submit(self, job: RelayJob) -> int:
        with self._cond:
            if self._stop:
                return job.id
            if job.slot is not None:
                self._forget(j for j in self._queue if j.slot == job.slot)
                self._queue = [j for j in self._queue if j.slot != job.slot]
            self._queue.append(job)
            self._open.add(job.id)
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"desktop-sr-{self.name}", daemon=True)
            self._thread.start()
        if not self._timer.isActive():
            self._timer.start()
        return job.id

    def supersede(self, slot: str) -> None:
        """Cancel the running job of ``slot``: a newer one was just submitted."""
        with self._cond:
            if self._running is not None and self._running[0].slot == slot:
                self._running[1].cancel()

    def cancel(self, kinds: tuple[type, ...] | None = None) -> None:
        """Cancel the running job and drop queued ones (only of these types, if given)."""

        def match(job: RelayJob) -> bool:
            return kinds is None or isinstance(job, kinds)

        with self._cond:
            self._forget(j for j in self._queue if match(j))
            self._queue = [j for j in self._queue if not match(j)]
            if self._running is not None and match(self._running[0]):
                self._running[1].cancel()

    @property
    def busy(self) -> bool:
        """Work is queued or running, or its outcome has not reached the GUI thread yet."""
        return bool(self._open)

    def _forget(self, jobs: Iterable[RelayJob]) -> None:
        self._open.difference_update(j.id for j in jobs)

    def pending(self) -> list[RelayJob]:
        with self._cond:
            return list(self._queue)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def timer_active(self) -> bool:
        return self._timer.isActive()

    def stop(self, timeout: float = 30.0) -> bool:
        """Cancel everything and end the thread; nothing it reported afterwards is emitted. False on timeout."""
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._open.clear()
            if self._running is not None:
                self._running[1].cancel()
            self._cond.notify_all()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        self._timer.stop()
        while not self._events.empty():  # drop what was never delivered
            self._events.get_nowait()
        return ended

    def deliver(self) -> None:
        """Emit the thread's events in order (of a burst of progress reports only the last); stop the timer once
        nothing is queued, running or left to deliver."""
        pending = []
        while True:
            try:
                pending.append(self._events.get_nowait())
            except queue.Empty:
                break
        last_progress = max((i for i, (name, _) in enumerate(pending) if name == "progress"), default=-1)
        for i, (name, args) in enumerate(pending):
            if name == "ended":
                job, outcome = args
                self._open.discard(getattr(job, "id", None))
                if isinstance(outcome, tuple):
                    getattr(self, outcome[0]).emit(*outcome[1:])
            elif name != "progress" or i == last_progress:
                getattr(self, name).emit(*args)
        with self._cond:
            if not self._queue and self._running is None and self._events.empty():
                self._timer.stop()

    # -- worker thread --------------------------------------------------------------------------------------------
    def _post(self, name: str, *args: object) -> None:
        self._events.put((name, args))

    def _queued_in_slot(self, slot: str | None) -> bool:
        with self._cond:
            return slot is not None and any(j.slot == slot for j in self._queue)

    def _next(self) -> tuple[RelayJob, RelayControl] | None:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            job = min(self._queue, key=lambda j: (j.priority, j.id))
            self._queue.remove(job)
            self._running = (job, RelayControl(self, job))
            return self._running

    def _loop(self) -> None:
        try:
            while (taken := self._next()) is not None:
                job, control = taken
                self._post("busy_changed", True)
                self._post("started", job)
                self._execute(job, control)
                with self._cond:  # one step, so deliver() never sees "idle" before the news that says so
                    self._running = None
                    if not self._queue:
                        self._post("busy_changed", False)
                    self._cond.notify_all()
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _execute(self, job: RelayJob, control: RelayControl) -> None:
        """Run one job. Its outcome (last result, failure or cancel) travels with the "ended" mark, so the relay is
        no longer busy with it by the time anyone reacts to it."""
        outcome: tuple[object, ...] | None = None
        try:
            out = self._run(job, control)
            for value in out if isinstance(out, Iterator) else (out,):
                if value is not None:
                    if outcome is not None:
                        self._post(*outcome)
                    outcome = ("result", job, value)
        except (Cancelled, OperationCancelled):
            outcome = ("cancelled", job)
        except (JobFailed, *EXPECTED_ERRORS) as exc:
            outcome = ("failed", job, str(exc))
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything a job throws
            log.error("%s failed:\n%s", type(job).__name__, traceback.format_exc())
            outcome = ("failed", job, f"{type(exc).__name__}: {exc}")
        finally:
            self._post("ended", job, outcome)
