"""A log a user can send: the commands and the app write a rotating log in the user log folder; an unexpected error
in a Qt slot or a worker thread shows one dialog with a short message and the log's path, lands in the log with its
traceback, and the app stays up; Help ▸ Open log folder opens that folder."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QDesktopServices

from desktop_sr import logfile
from desktop_sr.cli import main
from desktop_sr.ui.error_report import TITLE, ErrorReporter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def log_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "logs"
    monkeypatch.setenv(logfile.ENV_LOG_DIR, str(folder))
    logfile.stop_log()  # a command run in this process earlier may have opened the log elsewhere
    yield folder
    logfile.stop_log()


@pytest.mark.qt_no_exception_capture
def test_an_error_in_a_slot_shows_the_log_path_and_the_app_stays_up(window, qtbot, log_folder):
    path = logfile.start_log("app")
    assert path == log_folder / logfile.LOG_NAME
    reporter = ErrorReporter(window).install()
    try:

        def broken_slot() -> None:
            raise ValueError("the histogram has no bins\nsecond line")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=5000)
        title, text, *_ = window.errors[0]
        assert title == TITLE
        assert "ValueError: the histogram has no bins" in text and "second line" not in text
        assert str(path) in text and "keeps running" in text

        def broken_worker() -> None:
            raise RuntimeError("worker lost its tile")

        t = threading.Thread(target=broken_worker, name="render worker")
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(window.errors) == 2, timeout=5000)
        assert "RuntimeError: worker lost its tile" in window.errors[1][1]
    finally:
        reporter.uninstall()
    # Still up and working: the window is shown and its actions still run.
    assert window.isVisible()
    window.menus.act_100.trigger()
    window.menus.act_fit.trigger()
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text(encoding="utf-8")
    assert "desktop-sr app started" in text
    assert "Traceback" in text and "broken_slot" in text and "the histogram has no bins" in text
    assert "in render worker" in text and "worker lost its tile" in text


def test_help_open_log_folder_opens_the_log_folder(window, log_folder, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    assert window.menus.act_log_folder in window.menuBar().actions()[-1].menu().actions()
    window.menus.act_log_folder.trigger()
    assert opened == [str(log_folder)] and log_folder.is_dir()


def test_a_command_writes_the_log_and_an_uncaught_error_goes_into_it(log_folder, capsys):
    assert main(["models", "list"]) == 0
    for h in logging.getLogger().handlers:
        h.flush()
    assert "desktop-sr models started" in (log_folder / logfile.LOG_NAME).read_text(encoding="utf-8")
    # An uncaught error in a command: Python still prints it, and the log keeps the traceback.
    code = (
        "import sys; from desktop_sr.logfile import start_log, log_uncaught_errors\n"
        "start_log('cli'); log_uncaught_errors()\n"
        "def render(): raise KeyError('no tile 7')\n"
        "render()\n"
    )
    env = {"PYTHONPATH": str(REPO), logfile.ENV_LOG_DIR: str(log_folder / "sub"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "KeyError" in proc.stderr
    sub = (log_folder / "sub" / logfile.LOG_NAME).read_text(encoding="utf-8")
    assert "unexpected error" in sub and "in render" in sub and "no tile 7" in sub


def test_the_log_rotates_and_keeps_a_bounded_size(log_folder):
    path = logfile.start_log("cli")
    assert path is not None
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logfile._LogFile))
    handler.maxBytes = 2000  # the real limit is 1 MB; the rotation is the same
    for i in range(400):
        logging.getLogger("desktop_sr.test").warning("line %d of a long session", i)
    names = sorted(p.name for p in log_folder.iterdir())
    assert names == [logfile.LOG_NAME] + [f"{logfile.LOG_NAME}.{i}" for i in range(1, logfile.BACKUPS + 1)]
    assert all(p.stat().st_size <= 2200 for p in log_folder.iterdir())
    assert "line 399 of a long session" in path.read_text(encoding="utf-8")


def test_an_unwritable_log_folder_never_stops_the_program(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(logfile.ENV_LOG_DIR, str(tmp_path / "file" / "logs"))
    logfile.stop_log()
    assert logfile.start_log("cli") is None
