"""The Qt binding itself must not leak or free references: a long editing session makes millions of Qt calls.

PySide6 6.12.0 drops one reference to ``None`` on every call of a Qt method that returns nothing; on Python 3.10 and
3.11 (where None is not immortal) the app then aborts with "deallocating None" after a few thousand repaints. The
package pins a binding without that bug; this test fails if one comes back.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QLabel


def test_void_qt_calls_keep_none_alive(qtbot):
    app = QApplication.instance()
    label = QLabel()
    qtbot.addWidget(label)
    loop, timer = QEventLoop(), QTimer(singleShot=True)
    timer.timeout.connect(loop.quit)
    before = sys.getrefcount(None)
    for i in range(2000):
        label.setText(str(i))
        label.update()
        app.processEvents()
        if i % 100 == 0:
            timer.start(0)
            loop.exec()
    assert sys.getrefcount(None) > before - 100  # a leak loses thousands here (or aborts on Python < 3.12)
