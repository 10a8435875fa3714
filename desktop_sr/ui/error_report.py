"""An unexpected error in the GUI: logged with its traceback, shown in a dialog with a short message and the log's
path, and the app stays up. Help ▸ Open log folder opens where the log is.

Why: Qt calls ``sys.excepthook`` for an exception that escapes a slot and goes on; by default that prints to stderr,
which a desktop user never sees, so a broken button just seems to do nothing. Here the user learns that something
went wrong, that the app is still usable, and which file to send with a report. Errors in other threads (a worker)
come to the GUI thread through a queued signal; one dialog at a time (more errors while it is open are logged only).
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from ..logfile import log_dir, log_path, log_uncaught

TITLE = "Unexpected error"


class ErrorReporter(QObject):
    """Installs ``sys.excepthook`` and ``threading.excepthook``; :meth:`uninstall` puts the old ones back."""

    reported = Signal(str)

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.shown: list[str] = []  # every dialog's text (what a test, or a curious user, can check)
        self._showing = False
        self._previous: tuple[object, object] | None = None
        self.reported.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> ErrorReporter:
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook, threading.excepthook = self._hook, self._thread_hook
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous  # type: ignore[assignment]
            self._previous = None

    def _hook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log_uncaught(exc_type, exc, tb)
        self.reported.emit(short_message(exc))

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, args.thread.name if args.thread else "")
        self.reported.emit(short_message(args.exc_value))

    @Slot(str)
    def _show(self, message: str) -> None:
        if self._showing:
            return  # logged; one dialog at a time
        text = (f"Something went wrong: {message}\n\nThe app keeps running; saving your result now is a good idea. "
                f"If this happens again, please send the log with a report:\n{log_path()}")  # fmt: skip
        self.shown.append(text)
        self._showing = True
        try:
            QMessageBox.critical(self.window, TITLE, text)
        finally:
            self._showing = False


def short_message(exc: BaseException) -> str:
    """One line: the error's kind and its first line, cut to what fits a dialog."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def open_log_folder() -> bool:
    """Help ▸ Open log folder: the folder in the file manager (created first, so there is something to open)."""
    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))
