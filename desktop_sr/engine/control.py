"""One progress-and-cancel object for every long operation: a render, a batch, a model import or download.

The thread doing the work calls :meth:`Control.report` between steps, :meth:`Control.check` where it can stop (the
engine between tiles: it raises :class:`~desktop_sr.engine.errors.Cancelled`), and :meth:`Control.wait_while_paused`
where a pause may hold it. Whoever watches calls :meth:`cancel`, :meth:`pause` and :meth:`resume` from any thread.
:meth:`sub` gives a child that shares the flags but reports elsewhere: a batch turns each file's tile reports into
its own progress, a model import its per-file bytes into a total. One object replaces a cancel token, a batch
control and a ``threading.Event`` passed beside a separate progress callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

#: report(done, total, stage): ``stage`` is a render's :class:`~desktop_sr.engine.stages.Stage` (a str: "unet-pix",
#: "decode") or a label in words ("Copying x.bin").
ReportFn = Callable[[int, int, str], None]


class Control:
    """Thread-safe: the flags are :class:`threading.Event` objects shared with every :meth:`sub` child."""

    def __init__(self, report: ReportFn | None = None, *, like: Control | None = None) -> None:
        """``like``: share that control's cancel and pause (a part of its work that reports elsewhere)."""
        self._report = report
        if like is not None:
            self._cancelled, self._running = like._cancelled, like._running
        else:
            self._cancelled = threading.Event()
            self._running = threading.Event()  # cleared while paused
            self._running.set()

    # -- the watcher's side -----------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop as soon as possible (at the next check); a paused operation wakes up to notice."""
        self._cancelled.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self._cancelled.is_set()

    # -- the worker's side ------------------------------------------------------------------------------------------
    def report(self, done: int, total: int, stage: str) -> None:
        if self._report is not None:
            self._report(done, total, stage)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancel was asked for."""
        if self._cancelled.is_set():
            raise Cancelled()

    def wait_while_paused(self, poll: float = 0.25) -> bool:
        """Block while paused. True if it was paused at all (a clock measuring the work must skip that time)."""
        if self._running.is_set():
            return False
        while not self._running.wait(poll):
            pass
        return True

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (e.g. before a retry) unless cancelled first; True if cancelled."""
        return self._cancelled.wait(seconds)

    def sub(self, report: ReportFn | None) -> Control:
        """A child for part of the work: same cancel and pause, its reports go to ``report``."""
        return Control(report, like=self)
