"""The log a user can send with a report: a rotating file in the platform's user log folder, for the app and the
commands alike, with every unexpected error's traceback.

Why a file: a desktop user never sees stderr, and a bug report that says "it stopped" is not one a developer can act
on. The file is small (four files of 1 MB at most, the oldest dropped), plain text, and holds what the loggers say
at INFO and above (a batch: each photo's outcome) plus the traceback of anything uncaught (:func:`log_uncaught`).
It never stops the program: a folder that cannot be written just means no file.

Where: ``DESKTOP_SR_LOG_DIR`` if set (tests, portable installs), else :func:`platformdirs.user_log_dir`.
Qt-free: the GUI adds its dialog on top (:mod:`desktop_sr.ui.error_report`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from types import TracebackType

ENV_LOG_DIR = "DESKTOP_SR_LOG_DIR"
LOG_NAME = "desktop-sr.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
_FORMAT = "%(asctime)s %(process)d %(component)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger("desktop_sr")


def log_dir() -> Path:
    env = os.environ.get(ENV_LOG_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_log_dir("desktop-sr", appauthor=False))


def log_path() -> Path:
    return log_dir() / LOG_NAME


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating file, marked so :func:`start_log` adds it once; says which part of desktop-sr wrote a line."""

    def __init__(self, path: Path, component: str) -> None:
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
        self.component = component
        self.setFormatter(logging.Formatter(_FORMAT))
        self.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        record.component = self.component
        super().emit(record)


def start_log(component: str) -> Path | None:
    """Add the rotating log file to the root logger (once per process); returns its path, None if it cannot be
    written. With no other handler (the app) the root logger is set to INFO; a command sets up its terminal's
    handler at the terminal's level first (:mod:`desktop_sr.cli.entry`), so the file never makes it chattier."""
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, _LogFile):
            return Path(h.baseFilename)
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, component)
    except OSError:
        return None
    if not root.handlers:  # the app: nothing prints to a terminal, so the file may say more
        root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    root.addHandler(handler)
    args = (component, sys.version.split()[0], sys.platform)  # to the file only, at any level: where a run begins
    handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "desktop-sr %s started (Python %s, %s)",
                                  args, None))  # fmt: skip
    return path


def stop_log() -> None:
    """Remove and close the log file (tests; a process's exit closes it by itself)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _LogFile):
            root.removeHandler(h)
            h.close()


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str = "") -> None:
    """Write an uncaught error and its traceback to the log."""
    log.error("unexpected error%s: %s", f" in {where}" if where else "", exc, exc_info=(exc_type, exc, tb))


def log_uncaught_errors() -> None:
    """Log what no one caught (the main thread and other threads) before Python's own hooks print it."""
    if getattr(sys.excepthook, "_desktop_sr_log", False):
        return  # already installed (a command run twice in one process, as the tests do)
    previous, previous_thread = sys.excepthook, threading.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            log_uncaught(exc_type, exc, tb)
        previous(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, KeyboardInterrupt):
            log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, args.thread.name if args.thread else "")
        previous_thread(args)

    hook._desktop_sr_log = True  # type: ignore[attr-defined]
    sys.excepthook, threading.excepthook = hook, thread_hook
