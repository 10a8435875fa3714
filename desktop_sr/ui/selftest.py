"""The Qt half of ``desktop-sr --selftest``: start the application and the main window without a display.

In a frozen app the Qt part is what most often breaks on another machine: a missing platform plugin, a missing
shared library of Qt's, or a style that fails to load. Creating the real :class:`MainWindow` (with its worker thread,
docks and menus) and rendering it into a pixmap proves those load, without needing a screen: the caller sets
``QT_QPA_PLATFORM=offscreen`` before Qt is imported. The window is built with a throw-away settings folder so a
self-test never changes a person's saved window layout or model choice.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QCoreApplication, QEvent, QMessageLogContext, QtMsgType, qInstallMessageHandler, qVersion
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from ..engine.loader import ModelSpec
from ..resources import icon_path
from ..selftest_report import SelftestFailure, SelftestReport, process_age
from .main_window import MainWindow, default_model_spec

#: Warnings the offscreen platform always prints for a normal window; they say nothing about the installation.
BENIGN_QT_MESSAGES = ("does not support propagateSizeHints",)


def _qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Forward Qt's messages to stderr, minus the offscreen platform's known noise, so the self-test's output
    stays one line unless something is actually wrong."""
    if not any(text in message for text in BENIGN_QT_MESSAGES):
        print(f"qt: {message}", file=sys.stderr)


def check_gui(report: SelftestReport) -> ModelSpec | None:
    """Create (or reuse) the QApplication, build, show and paint the main window, then close it.

    Returns the spec of the model a new user gets (``default_model_spec``, as on a first start), for the engine check.
    Raises :class:`SelftestFailure` when the window cannot be painted or the app icon cannot be loaded.
    """
    previous = qInstallMessageHandler(_qt_message)
    try:
        return _check_gui(report)
    finally:
        qInstallMessageHandler(previous)


def _check_gui(report: SelftestReport) -> ModelSpec | None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    report.facts["qt"] = f"Qt {qVersion()} (PySide6 {pyside_version}, platform {app.platformName()})"
    try:
        icon = QIcon(str(icon_path()))
    except FileNotFoundError as exc:
        raise SelftestFailure(str(exc)) from exc
    if icon.pixmap(64, 64).isNull():
        raise SelftestFailure(f"Qt cannot load the app icon {icon_path()}")
    with tempfile.TemporaryDirectory(prefix="desktop-sr-selftest-") as settings_dir:
        window = MainWindow(Path(settings_dir), load_model=False)
        try:
            window.setWindowIcon(icon)
            window.show()
            app.processEvents()
            shot = window.grab()
            if shot.isNull() or shot.width() < 100 or shot.height() < 100:
                raise SelftestFailure(f"the main window did not paint (got a {shot.width()}x{shot.height()} image)")
            age = process_age()
            if age is not None:  # what a person waits for before the window appears (torch and Qt loaded)
                report.facts["window"] = f"painted {age:.2f}s after process start"
        finally:
            window.close()  # saves settings into the temporary folder and stops the worker thread
            window.deleteLater()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            app.processEvents()
    return default_model_spec()
