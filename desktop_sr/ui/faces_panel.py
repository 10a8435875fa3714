"""The Faces dock panel and the face outlines on the result (issue 27).

Widgets only; the rules live in :mod:`desktop_sr.editor.face_restore` (``editor.faces``). :class:`FacesPanel` holds
the face model choice (the store's face models, with each one's licence in its tooltip and under the list before it
is used), the strength slider, CodeFormer's fidelity slider (shown only for a model that has one), the detected
faces with a checkbox each and a summary line. :class:`FaceOutlines` draws each face's box on the "after" side of
the compare view (solid: restored, dashed and dim: off), and a click on an outline switches that face.
:class:`FacesController` binds both to the editor both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..editor import EditorModel
from ..editor.face_restore import FacePanel, FaceRow
from ..engine.spec import ModelSpec
from .compare_view import CompareView
from .face_choice import FaceModel, face_models
from .scrolling import scrolling

NONE_LABEL = "None"
NO_MODEL_HINT = (
    "No face model yet: <a href='manage'>Model ▸ Models…</a> imports one (GFPGAN, RestoreFormer, CodeFormer), "
    "or <code>desktop-sr models get codeformer</code> downloads one."
)
#: The faces list grows to this many rows, then scrolls.
LIST_ROWS = 6
#: How far a press may move and still be a click on an outline (widget pixels).
CLICK_SLOP = 4


class _ListingCombo(QComboBox):
    """A combo box that asks for its items again each time it opens (a model imported meanwhile is there)."""

    def __init__(self, refresh: Callable[[], None]) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802
        self._refresh()
        super().showPopup()


def _percent_slider(tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(0, 100)
    s.setPageStep(10)
    s.setToolTip(tip)
    return s


class FacesPanel(QWidget):
    """The Faces panel's widgets. Signals carry what the user did; :meth:`show_state` shows the editor's state."""

    model_chosen = Signal(object)  # ModelSpec or None
    strength_changed = Signal(float)
    fidelity_changed = Signal(float)
    face_switched = Signal(int, bool)  # face number (from 1), on
    manage_models = Signal()

    def __init__(self, models_dir: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._models_dir = models_dir
        self._models: list[FaceModel] = []
        self.model = _ListingCombo(self.refresh_models)
        self.model.setToolTip("The face model that restores the faces of the result (None: faces as rendered)")
        self.licence = QLabel()
        self.licence.setWordWrap(True)
        self.licence.setStyleSheet("color: palette(mid)")
        self.hint = QLabel(NO_MODEL_HINT)
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.hint.linkActivated.connect(lambda _link: self.manage_models.emit())
        self.strength = _percent_slider("How much of the restored face is mixed in; outside the faces nothing changes")
        self.strength_value = QLabel("100 %")
        self.fidelity = _percent_slider(
            "CodeFormer's fidelity weight: low = the model's own face (more repair), high = closer to the photo\n"
            "(a change runs the face model again)"
        )
        self.fidelity_value = QLabel("50 %")
        self.faces = QListWidget()
        self.faces.setToolTip(
            "The faces found in the result: untick one to leave it as rendered (or click its outline)"
        )
        self.summary = QLabel()
        self.summary.setWordWrap(True)

        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(self.strength_value)
        self.fidelity_row = QWidget()
        fidelity_lay = QHBoxLayout(self.fidelity_row)
        fidelity_lay.setContentsMargins(0, 0, 0, 0)
        fidelity_lay.addWidget(self.fidelity, 1)
        fidelity_lay.addWidget(self.fidelity_value)
        self.fidelity_label = QLabel("Fidelity")
        form = QFormLayout()
        form.addRow("Face model", self.model)
        form.addRow(self.licence)
        form.addRow(self.hint)
        form.addRow("Strength", strength_row)
        form.addRow(self.fidelity_label, self.fidelity_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.faces)
        layout.addWidget(self.summary)
        layout.addStretch(1)

        self.model.currentIndexChanged.connect(self._model_picked)
        self.strength.valueChanged.connect(self._strength_moved)
        self.fidelity.sliderReleased.connect(lambda: self.fidelity_changed.emit(self.fidelity.value() / 100))
        self.fidelity.valueChanged.connect(self._fidelity_moved)
        self.faces.itemChanged.connect(self._item_changed)
        self.refresh_models()
        self.show_state(None)

    # -- the model list ---------------------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """List the store's face models again, keeping the one chosen."""
        chosen = self.current_spec()
        self._models = face_models(self._models_dir())
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem(NONE_LABEL, None)
        for i, m in enumerate(self._models, start=1):
            # the licence's gist in the list itself, seen before the model is chosen (the whole text: its tooltip)
            self.model.addItem(f"{m.name} (non-commercial)" if "non-commercial" in m.licence else m.name, m.spec)
            self.model.setItemData(i, f"Licence: {m.licence}" if m.licence else m.name, Qt.ItemDataRole.ToolTipRole)
        self._select(chosen)
        self.model.blockSignals(False)
        self.hint.setVisible(not self._models)

    def current_spec(self) -> ModelSpec | None:
        data = self.model.currentData()
        return data if isinstance(data, ModelSpec) else None

    def _select(self, spec: ModelSpec | None) -> None:
        index = self.model.findData(spec) if spec is not None else 0
        if index < 0:  # a model no longer in the store (or chosen elsewhere): listed by its name
            self.model.addItem(spec.name or "face model", spec)  # type: ignore[union-attr]
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)
        self._show_licence(spec)

    def _show_licence(self, spec: ModelSpec | None) -> None:
        found = next((m for m in self._models if m.spec == spec), None)
        text = f"Licence: {found.licence}" if found is not None and found.licence else ""
        self.licence.setText(text)
        self.licence.setVisible(bool(text))

    # -- the user -> signals ----------------------------------------------------------------------------------------
    def _model_picked(self) -> None:
        spec = self.current_spec()
        self._show_licence(spec)
        self.model_chosen.emit(spec)

    def _strength_moved(self, value: int) -> None:
        self.strength_value.setText(f"{value} %")
        self.strength_changed.emit(value / 100)

    def _fidelity_moved(self, value: int) -> None:
        self.fidelity_value.setText(f"{value} %")
        if not self.fidelity.isSliderDown():  # keys and clicks; a drag runs the model once, on release
            self.fidelity_changed.emit(value / 100)

    def _item_changed(self, item: QListWidgetItem) -> None:
        number = int(item.data(Qt.ItemDataRole.UserRole))
        self.face_switched.emit(number, item.checkState() == Qt.CheckState.Checked)

    # -- the editor -> widgets --------------------------------------------------------------------------------------
    def show_state(self, panel: FacePanel | None) -> None:
        """Show the editor's Faces state (None: nothing yet)."""
        for w in (self.model, self.strength, self.fidelity, self.faces):
            w.blockSignals(True)
        try:
            edit = panel.edit if panel is not None else None
            spec = edit.model if edit is not None else None
            if self.current_spec() != spec:
                self._select(spec)
            strength = round((edit.strength if edit is not None else 1.0) * 100)
            if self.strength.value() != strength:
                self.strength.setValue(strength)
            self.strength_value.setText(f"{strength} %")
            fidelity = round((edit.fidelity if edit is not None else 0.5) * 100)
            if self.fidelity.value() != fidelity and not self.fidelity.isSliderDown():
                self.fidelity.setValue(fidelity)
                self.fidelity_value.setText(f"{fidelity} %")
            on = spec is not None
            self.strength.setEnabled(on)
            listed = next((m for m in self._models if m.spec == spec), None)
            has_fidelity = on and (
                (panel is not None and panel.has_fidelity) or (listed is not None and listed.has_fidelity)
            )
            self.fidelity_row.setVisible(has_fidelity)
            self.fidelity_label.setVisible(has_fidelity)
            rows = panel.rows if panel is not None and on else ()
            self._show_rows(rows)
            self.summary.setText(panel.summary if panel is not None else "")
            self.summary.setVisible(bool(self.summary.text()))
        finally:
            for w in (self.model, self.strength, self.fidelity, self.faces):
                w.blockSignals(False)

    def _show_rows(self, rows: tuple[FaceRow, ...]) -> None:
        """The faces' checkboxes: ticks updated in place (a click's own item stays), the list rebuilt only when
        other faces were found."""
        labels = [self.faces.item(i).text() for i in range(self.faces.count())]
        if labels != [row.label for row in rows]:
            self.faces.clear()
            for row in rows:
                item = QListWidgetItem(row.label)
                item.setData(Qt.ItemDataRole.UserRole, row.number)
                if row.too_small:
                    item.setFlags(Qt.ItemFlag.ItemIsUserCheckable)  # listed, not enabled: nothing to switch
                    item.setToolTip("Too small to restore: a face model would replace it rather than restore it")
                else:
                    item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                self.faces.addItem(item)
        for i, row in enumerate(rows):
            state = Qt.CheckState.Checked if row.on and not row.too_small else Qt.CheckState.Unchecked
            item = self.faces.item(i)
            if item.checkState() != state:
                item.setCheckState(state)
        self.faces.setVisible(bool(rows))
        shown = min(max(len(rows), 1), LIST_ROWS)  # as tall as its faces, up to LIST_ROWS; then it scrolls
        row_height = max(self.faces.sizeHintForRow(0), self.fontMetrics().height() + 2)
        self.faces.setFixedHeight(shown * row_height + 2 * self.faces.frameWidth() + 2)


class FaceOutlines(QWidget):
    """A transparent layer over the compare view: each detected face's box on the "after" side."""

    def __init__(self, view: CompareView) -> None:
        super().__init__(view)
        self.view = view
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.panel: FacePanel | None = None
        self.setGeometry(view.rect())

    def boxes(self, *, too_small: bool = False) -> list[tuple[int, QRectF, bool]]:
        """Each face that can be switched (with ``too_small``, also those too small to restore): its number, its box
        in widget pixels, whether it is on."""
        panel, v = self.panel, self.view
        if panel is None or panel.size is None or panel.edit.model is None or not v.image_size()[0]:
            return []
        ratio = v.image_size()[0] / panel.size[0]  # the view's image may be at another scale for a moment
        pane = 1 if v.mode == "side" else 0
        out = []
        for row in panel.rows:
            if row.too_small and not too_small:
                continue
            x0, y0, x1, y1 = (c * ratio for c in row.face.box)
            tl = v.image_to_widget(QPointF(x0, y0), pane)
            br = v.image_to_widget(QPointF(x1, y1), pane)
            out.append((row.number, QRectF(tl, br), row.on))
        return out

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if self.view.show_original:
            return
        boxes = self.boxes(too_small=True)
        if not boxes:
            return
        small = {row.number for row in self.panel.rows if row.too_small} if self.panel is not None else set()
        p = QPainter(self)
        p.setClipRect(self.view.after_area())
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for number, rect, on in boxes:
            if number in small:  # listed, not restored: a dotted hint of where it is
                style, colour = Qt.PenStyle.DotLine, QColor(200, 200, 200, 110)
            elif on:
                style, colour = Qt.PenStyle.SolidLine, QColor(80, 220, 120, 230)
            else:
                style, colour = Qt.PenStyle.DashLine, QColor(220, 220, 220, 150)
            p.setPen(QPen(QColor(0, 0, 0, 140), 3, style))
            p.drawRect(rect)
            p.setPen(QPen(colour, 1.5, style))
            p.drawRect(rect)
            p.drawText(rect.topLeft() + QPointF(4, -4), str(number))
        p.end()


class FacesController(QObject):
    """The panel and the outlines <-> ``editor.faces``."""

    def __init__(
        self, view: CompareView, editor: EditorModel, panel: FacesPanel, blocked: Callable[[], bool] = lambda: False
    ) -> None:
        """``blocked``: clicks on the view belong to another tool now (the brush paints)."""
        super().__init__(view)
        self.view, self.editor, self.panel, self.blocked = view, editor, panel, blocked
        self.dock: QDockWidget | None = None
        self.outlines = FaceOutlines(view)
        self._press: QPointF | None = None
        faces = editor.faces
        panel.model_chosen.connect(faces.choose)
        panel.strength_changed.connect(faces.set_strength)
        panel.fidelity_changed.connect(faces.set_fidelity)
        panel.face_switched.connect(faces.set_face)
        faces.changed.connect(self._changed)
        view.view_changed.connect(self.outlines.update)
        view.installEventFilter(self)

    def _changed(self, state: FacePanel) -> None:
        self.panel.show_state(state)
        self.outlines.panel = state
        self.outlines.update()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        """A click (no drag) on a face's outline on the "after" side switches it; the view pans as before."""
        kind = event.type()
        if kind == QEvent.Type.Resize:
            self.outlines.setGeometry(self.view.rect())
            return False
        if not isinstance(event, QMouseEvent) or event.button() != Qt.MouseButton.LeftButton or self.blocked():
            return False
        if kind == QEvent.Type.MouseButtonPress:
            self._press = event.position()
        elif kind == QEvent.Type.MouseButtonRelease and self._press is not None:
            start, self._press = self._press, None
            moved = (event.position() - start).manhattanLength()
            if moved <= CLICK_SLOP and self.view.after_area().contains(event.position()):
                for number, rect, on in self.outlines.boxes():
                    if rect.contains(event.position()):
                        self.editor.faces.set_face(number, not on)
                        break
        return False


def install_faces(
    window: QMainWindow,
    view: CompareView,
    editor: EditorModel,
    models_dir: Callable[[], Path | None],
    manage_models: Callable[[], object],
    blocked: Callable[[], bool] = lambda: False,
) -> FacesController:
    """Add the Faces panel as a dock on the right and wire it to the view and the editor."""
    panel = FacesPanel(models_dir, window)
    dock = QDockWidget("Faces", window)
    dock.setObjectName("faces")
    dock.setWidget(scrolling(panel))  # a small window scrolls the panel rather than clip it
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    panel.manage_models.connect(manage_models)
    controller = FacesController(view, editor, panel, blocked)
    controller.dock = dock
    panel.show_state(editor.faces.panel())
    return controller
