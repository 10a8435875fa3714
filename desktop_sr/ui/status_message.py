"""A status bar whose messages are never cut off unseen.

Qt's own status-bar message is clipped at whatever width is left beside the permanent widgets, so an error read
"…damaged or trunca" (issue 16). Here a message that does not fit ends in "…", carries the full text as its tooltip,
and a click shows it whole in a dialog (errors say so). ``showMessage``/``currentMessage`` keep Qt's signatures, so
every caller of ``statusBar().showMessage`` gets this for free. Qt's own hover tips on menus still use the native
temporary message, which hides this one while it shows, as usual.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QMouseEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QMessageBox, QSizePolicy, QStatusBar, QWidget


class StatusMessage(QLabel):
    """One line of text, elided to the space it gets; the full text in its tooltip and, on click, in a dialog."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full = ""
        self.error = False
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(80)
        self.setContentsMargins(4, 0, 4, 0)
        self.dialog: QMessageBox | None = None
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.clear_message)

    def set_message(self, text: str, timeout_ms: int = 0, *, error: bool = False) -> None:
        self.full, self.error = text, error
        self.setStyleSheet("color: #b00020" if error else "")
        self._elide()
        self._timer.stop()
        if timeout_ms > 0 and text:
            self._timer.start(timeout_ms)

    def clear_message(self) -> None:
        self.set_message("")

    def is_elided(self) -> bool:
        return self.text() != self.full.replace("\n", " ")

    def _elide(self) -> None:
        one_line = self.full.replace("\n", " ")
        width = max(10, self.width() - 8)
        shown = self.fontMetrics().elidedText(one_line, Qt.TextElideMode.ElideRight, width) if one_line else ""
        self.setText(shown)
        clickable = bool(one_line) and (shown != one_line or self.error)
        tip = self.full + ("\n\n(click to see the whole message)" if clickable else "")
        self.setToolTip(tip if one_line else "")
        self.setCursor(Qt.CursorShape.PointingHandCursor if clickable else Qt.CursorShape.ArrowCursor)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self.full and (self.is_elided() or self.error):
            self.show_full()
        super().mousePressEvent(event)

    def show_full(self) -> QMessageBox:
        """The whole message in a dialog that does not block (the status bar keeps updating under it)."""
        icon = QMessageBox.Icon.Critical if self.error else QMessageBox.Icon.Information
        box = QMessageBox(icon, "Message", self.full, QMessageBox.StandardButton.Close, self.window())
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.dialog = box
        return box


class MessageStatusBar(QStatusBar):
    """A QStatusBar whose ``showMessage`` goes to a :class:`StatusMessage` (see the module's docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = StatusMessage(self)
        self.addWidget(self.message, 1)

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 - Qt's name
        self.message.set_message(text, timeout)

    def show_error(self, text: str, timeout: int = 0) -> None:
        self.message.set_message(text, timeout, error=True)

    def currentMessage(self) -> str:  # noqa: N802 - Qt's name
        return self.message.full

    def clearMessage(self) -> None:  # noqa: N802 - Qt's name
        self.message.clear_message()
