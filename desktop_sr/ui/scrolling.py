"""A dock's panel that scrolls rather than clips: what a small window or a long note needs.

A dock widget does not grow for a word-wrapped label (Qt lays docks out by size hints, not height-for-width), so a
red note under Scale ("... Choose a smaller target, or upscale the result again.") was cut after "or", and the
colour-fix note too, whenever the two docks on the right shared too little height. Inside a resizable scroll area
the panel keeps the height its labels need at the dock's width, and a scroll bar appears when the window is too
small for it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def scrolling(panel: QWidget) -> QScrollArea:
    """``panel`` in a frameless scroll area that fits its width and scrolls vertically only when it must."""
    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(panel.minimumSizeHint().width())
    return area
