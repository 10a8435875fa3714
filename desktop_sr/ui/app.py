"""Starting the app: one QApplication, the main window, photos from the command line."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def run_gui(paths: list[str]) -> int:
    """Start the desktop app and open ``paths[0]`` if given. Returns the process exit code.

    With no photo and none opened before (a first run), the bundled sample photo opens, so a new user sees the
    app do real work at once instead of an empty window.
    """
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from ..logfile import start_log
    from ..resources import icon_path
    from .error_report import ErrorReporter
    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("desktop-sr")
    app.setOrganizationName("desktop-sr")
    app.setDesktopFileName("desktop-sr")  # Wayland matches the window to desktop-sr.desktop (menu entry and icon)
    with contextlib.suppress(FileNotFoundError):  # an incomplete install still starts, with the default icon
        app.setWindowIcon(QIcon(str(icon_path())))
    start_log("app")
    window = MainWindow()
    ErrorReporter(window).install()  # from here on an error in a slot shows a dialog and the app goes on
    window.show()
    for p in paths[:1]:
        if Path(p).exists():
            window.open_path(p)
        else:
            window.statusBar().showMessage(f"{p}: file not found", 10000)
    if not paths and not window.settings.recent_files:
        window.open_sample()
    return int(app.exec())
