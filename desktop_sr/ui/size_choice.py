"""The Scale control with target sizes: ×1 (restore) to ×4, or "Long edge…", "Fit in…", "Print size…".

A target opens a small dialog; the chosen target then shows as its own entry ("6000 px long edge"). For a target
the control reports the model scale :mod:`desktop_sr.target_size` picks for the current photo (the screen shows
that render; the export resamples it to exactly the target), and says so in words when the target cannot work
for this photo (it would downscale, or it is beyond ×4).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.api import SCALES
from ..target_size import DEFAULT_PRINT_DPI, SizePlan, TargetError, TargetKind, TargetSize, plan_size

#: Offered until a model says what it makes (``ModelInfo.scales``): ×8 only for a model that makes it.
DEFAULT_SCALES = (1, 2, 3, 4)

#: The entries that ask for a target. Their item data is the kind's word: Qt keeps a ``str`` enum as a plain string,
#: so what comes back from the combo box is turned into a :class:`TargetKind` again where it is used.
_ASK = {TargetKind.LONG_EDGE: "Long edge…", TargetKind.FIT: "Fit in…", TargetKind.PRINT: "Print size…"}
_TITLE = {TargetKind.LONG_EDGE: "Long edge", TargetKind.FIT: "Fit in", TargetKind.PRINT: "Print size"}


class TargetDialog(QDialog):
    """Asks for one kind of target: a long edge, a box in pixels, or a print size with its unit and DPI."""

    def __init__(
        self, kind: TargetKind | str, parent: QWidget | None = None, current: TargetSize | None = None
    ) -> None:
        super().__init__(parent)
        kind = TargetKind(kind)  # the combo box hands back the word
        self.kind = kind
        self.setWindowTitle(_TITLE[kind])
        form = QFormLayout()
        self.width, self.height = self._number(kind), self._number(kind)
        self.unit, self.dpi = QComboBox(), QSpinBox()
        if kind is TargetKind.LONG_EDGE:
            self.width.setValue(int(current.width) if current and current.kind is kind else 6000)
            form.addRow("Pixels on the long edge", self.width)
        elif kind is TargetKind.FIT:
            same = current is not None and current.kind is kind
            self.width.setValue(int(current.width) if same and current else 3840)
            self.height.setValue(int(current.height) if same and current else 2160)
            form.addRow("Width (px)", self.width)
            form.addRow("Height (px)", self.height)
        else:
            for unit in ("cm", "in", "mm"):
                self.unit.addItem(unit, unit)
            self.dpi.setRange(1, 10000)
            same = current is not None and current.kind is kind
            self.width.setValue(current.width if same and current else 30.0)
            self.height.setValue(current.height if same and current else 20.0)
            self.unit.setCurrentIndex(max(0, self.unit.findData(current.unit if same and current else "cm")))
            self.dpi.setValue(int(current.dpi or DEFAULT_PRINT_DPI) if same and current else int(DEFAULT_PRINT_DPI))
            row = QHBoxLayout()
            row.addWidget(self.width)
            row.addWidget(self.height)
            row.addWidget(self.unit)
            form.addRow("Width × height", row)
            form.addRow("DPI", self.dpi)
            self.setToolTip("The print turns to the photo's orientation; the photo fits inside it.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)

    @staticmethod
    def _number(kind: TargetKind) -> QSpinBox | QDoubleSpinBox:
        if kind is TargetKind.PRINT:
            box = QDoubleSpinBox()
            box.setRange(0.1, 10000.0)
            box.setDecimals(1)
            return box
        spin = QSpinBox()
        spin.setRange(1, 200_000)
        return spin

    def value(self) -> TargetSize:
        if self.kind is TargetKind.LONG_EDGE:
            return TargetSize.long_edge(int(self.width.value()))
        if self.kind is TargetKind.FIT:
            return TargetSize.fit(int(self.width.value()), int(self.height.value()))
        return TargetSize.print_size(
            float(self.width.value()), float(self.height.value()), str(self.unit.currentData()), float(self.dpi.value())
        )


class SizeChoice(QComboBox):
    """×2, ×3, ×4, the current target if any, and the entries that ask for a new target."""

    #: The size asked for changed (a scale or a target chosen; not the "…" entries, not a cancelled dialog).
    size_changed = Signal()
    #: A target could not be used for this photo (the message), or "" when it can.
    problem_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, default: int = 4) -> None:
        super().__init__(parent)
        self._photo: tuple[int, int] | None = None
        self._previous = 0
        self._problem = ""
        for s in DEFAULT_SCALES:
            self.addItem(f"×{s} (restore)" if s == 1 else f"×{s}", s)
        self.insertSeparator(self.count())
        for kind, label in _ASK.items():
            self.addItem(label, kind.value)
        self.setCurrentIndex(max(0, self.findData(default)))
        self._previous = self.currentIndex()
        self.setToolTip(
            "How large the result is: a scale, or a target (long edge, fit in a box, print size at a DPI).\n"
            "×1 restores the photo at its own size (noise, blur, JPEG artefacts) through the same model.\n"
            "For a target the smallest model scale that reaches it runs; the export is resampled to exactly it."
        )
        self.activated.connect(self._activated)
        self.currentIndexChanged.connect(self._index_changed)

    # -- what the rest of the window reads ---------------------------------------------------------------------
    def set_scales(self, scales: tuple[int, ...]) -> None:
        """Offer only the scales the loaded model makes (a community x8 model adds ×8); the choice is kept when it
        is still offered, else the largest offered one takes its place."""
        current = self.currentData()
        wanted = [s for s in SCALES if s in scales] or list(SCALES)
        shown = [self.itemData(i) for i in range(self.count()) if isinstance(self.itemData(i), int)]
        if shown == wanted:
            return
        self.blockSignals(True)
        for i in reversed(range(self.count())):
            if isinstance(self.itemData(i), int):
                self.removeItem(i)
        for pos, s in enumerate(wanted):
            self.insertItem(pos, f"×{s} (restore)" if s == 1 else f"×{s}", s)
        keep = current if current in wanted or not isinstance(current, int) else max(s for s in wanted if s <= 4)
        # by comparison, not findData: Qt cannot match a Python object (a chosen target) and fell back to ×1
        at = next((i for i in range(self.count()) if self.itemData(i) == keep), -1)
        self.setCurrentIndex(max(0, at))
        self._previous = self.currentIndex()
        self.blockSignals(False)
        if keep != current:
            self.size_changed.emit()

    def target(self) -> TargetSize | None:
        data = self.currentData()
        return data if isinstance(data, TargetSize) else None

    def plan(self) -> SizePlan | None:
        """How the current target is reached for the current photo; None without a target, a photo, or a way."""
        target = self.target()
        if target is None or self._photo is None:
            return None
        try:
            return plan_size(self._photo, target, self.offered())
        except TargetError:
            return None

    def scale(self) -> int:
        """The model scale to render: the chosen scale, or the one the target needs (the largest offered when no
        scale reaches it)."""
        data = self.currentData()
        if isinstance(data, int):
            return data
        plan = self.plan()
        return plan.scale if plan is not None else max(self.offered())  # the largest this model makes

    def offered(self) -> tuple[int, ...]:
        """The model scales in the list (those the loaded model makes)."""
        return tuple(d for i in range(self.count()) if isinstance(d := self.itemData(i), int)) or SCALES

    def problem(self) -> str:
        return self._problem

    def set_photo_size(self, size: tuple[int, int] | None) -> None:
        self._photo = size
        self._check()

    def set_scale(self, scale: int) -> None:
        """Show a plain scale (undo, settings) without emitting a change."""
        if self.target() is not None:
            return  # a target stays chosen: its scale follows the photo
        self.blockSignals(True)
        self.setCurrentIndex(max(0, self.findData(scale)))
        self._previous = self.currentIndex()
        self.blockSignals(False)

    def set_target(self, target: TargetSize) -> None:
        """Choose ``target`` (it replaces the previous target entry) and emit the change."""
        for i in range(self.count()):
            if isinstance(self.itemData(i), TargetSize):
                self.removeItem(i)
                break
        at = self.findData(TargetKind.LONG_EDGE.value) - 1  # before the separator
        self.blockSignals(True)
        self.insertItem(at, target.describe(), target)
        self.setCurrentIndex(at)
        self.blockSignals(False)
        self._previous = at
        self._check()
        self.size_changed.emit()

    # -- internals ---------------------------------------------------------------------------------------------
    def _activated(self, index: int) -> None:
        """A user's pick: the "…" entries ask for a target (a cancelled dialog goes back to the previous entry)."""
        data = self.itemData(index)
        if not isinstance(data, str):
            return
        dlg = TargetDialog(data, self, self.target())
        if dlg.exec():
            self.set_target(dlg.value())
        else:
            self.blockSignals(True)
            self.setCurrentIndex(self._previous)
            self.blockSignals(False)

    def _index_changed(self, index: int) -> None:
        """A scale or a target entry became current (by the user or the program); the "…" entries wait for
        :meth:`_activated`."""
        if isinstance(self.itemData(index), str) or index == self._previous:
            return
        self._previous = index
        self._check()
        self.size_changed.emit()

    def _check(self) -> None:
        target = self.target()
        problem = ""
        if target is not None and self._photo is not None:
            try:
                plan_size(self._photo, target, self.offered())
            except TargetError as exc:
                problem = str(exc)
        if problem != self._problem:
            self._problem = problem
            self.problem_changed.emit(problem)
