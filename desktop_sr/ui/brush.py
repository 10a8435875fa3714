"""The strength brush in the compare view: paint "less invention" or "more detail" over the result (issue 19).

Widgets only; the painting rules live in :mod:`desktop_sr.editor.mask` and :mod:`desktop_sr.editor.masking`.
:class:`BrushPanel` holds the tool's settings (mode, size, feather, strength), the mask overlay toggle and the
starting masks; :class:`BrushController` turns mouse drags on the compare view into strokes while the brush is on
(right-drag still pans, the wheel still zooms) and draws the mask overlay and the brush outline on a transparent
layer over the view, in the view's own transform, on the "after" side only.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeySequence, QMouseEvent, QPainter, QPaintEvent, QPen, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..editor import EditorModel
from ..editor.mask import MODE_LABELS, MODES, Brush
from .compare_view import CompareView
from .images import qimage_from_rgb
from .scrolling import scrolling

#: Overlay colours: blue where invention is held back, orange where more detail is asked for.
LESS_RGB, MORE_RGB = (40, 140, 255), (255, 150, 30)
OVERLAY_ALPHA = 170


def mask_overlay(values: np.ndarray) -> np.ndarray:
    """H x W multipliers -> RGBA uint8: transparent at 1, coloured by how far from 1 and in which direction."""
    v = np.asarray(values, np.float32)
    less = np.clip(1.0 - v, 0.0, 1.0)
    more = np.clip(v - 1.0, 0.0, 1.0)
    rgba = np.zeros(v.shape + (4,), np.float32)
    for c in range(3):
        rgba[..., c] = np.where(less >= more, LESS_RGB[c], MORE_RGB[c])
    rgba[..., 3] = np.maximum(less, more) * OVERLAY_ALPHA
    return rgba.round().astype(np.uint8)


def _slider(lo: int, hi: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


class BrushPanel(QWidget):
    """The brush's controls. ``toggled(bool)``: brush on/off; the other actions are plain signals."""

    toggled = Signal(bool)
    overlay_toggled = Signal(bool)
    from_detail = Signal()
    protect_faces = Signal()
    clear_mask = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.btn_brush = QPushButton("Brush")
        self.btn_brush.setCheckable(True)
        self.btn_brush.setToolTip("Paint where detail may be invented (B). Right-drag pans while it is on.")
        self.btn_brush.toggled.connect(self.toggled)
        self.modes = QButtonGroup(self)
        row = QHBoxLayout()
        for i, mode in enumerate(MODES):
            rb = QRadioButton(MODE_LABELS[mode])
            rb.setProperty("mode", mode)
            self.modes.addButton(rb, i)
            row.addWidget(rb)
        self.modes.button(0).setChecked(True)
        self.modes.button(0).setToolTip("Lower the semantic strength: keep text, faces and logos as they are")
        self.modes.button(1).setToolTip("Raise the semantic strength: more texture on foliage, fur, fabric")
        self.modes.button(2).setToolTip("Back to the global strength")
        self.size = _slider(4, 800, 120, "Brush diameter in pixels of the result")
        self.feather = _slider(0, 100, 50, "Soft edge: 0 = hard, 100 = soft all the way from the centre")
        self.strength = _slider(1, 100, 100, "How far one stroke goes: 100 = no invention (or twice the detail)")
        self.show_mask = QCheckBox("Show mask")
        self.show_mask.setChecked(True)
        self.show_mask.setToolTip("Blue: less invention; orange: more detail (M)")
        self.show_mask.toggled.connect(self.overlay_toggled)
        buttons = QHBoxLayout()
        for text, signal, tip in (
            ("From detail map", self.from_detail, "Less invention wherever the detail map is strong"),
            ("Protect faces", self.protect_faces, "Find faces and paint less invention over them"),
            ("Clear mask", self.clear_mask, "Back to the global strengths everywhere"),
        ):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(signal)
            buttons.addWidget(b)
        form = QFormLayout()
        form.addRow(self.btn_brush)
        form.addRow(row)
        form.addRow("Size", self.size)
        form.addRow("Feather", self.feather)
        form.addRow("Strength", self.strength)
        form.addRow(self.show_mask)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def brush(self) -> Brush:
        mode = str(self.modes.checkedButton().property("mode"))
        return Brush(mode, float(self.size.value()), self.feather.value() / 100, self.strength.value() / 100)

    def set_mode(self, mode: str) -> None:
        self.modes.button(MODES.index(mode)).setChecked(True)


class MaskLayer(QWidget):
    """A transparent layer over the compare view: the mask overlay on the "after" side and the brush outline."""

    def __init__(self, view: CompareView) -> None:
        super().__init__(view)
        self.view = view
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.image: QImage | None = None
        self.visible_overlay = True
        self.cursor_at: QPointF | None = None
        self.cursor_px = 0.0  # brush diameter in image pixels
        self.setGeometry(view.rect())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        v = self.view
        w, h = v.image_size()
        if not w:
            return
        p = QPainter(self)
        pane = 1 if v.mode == "side" else 0
        if self.image is not None and self.visible_overlay and not v.show_original:
            p.save()
            p.setClipRect(self.view.after_area())
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(QRectF(v.image_to_widget(QPointF(0, 0), pane), QSizeF(w, h) * v.scale), self.image)
            p.restore()
        if self.cursor_at is not None:
            r = self.cursor_px / 2 * v.scale
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setBrush(Qt.BrushStyle.NoBrush)
            for color, width in ((QColor(0, 0, 0, 160), 3), (QColor(255, 255, 255, 230), 1)):
                p.setPen(QPen(color, width))
                p.drawEllipse(self.cursor_at, r, r)
        p.end()


class BrushController(QObject):
    """Mouse on the compare view -> the editor's stroke intents; the editor's mask -> the overlay layer."""

    def __init__(self, view: CompareView, editor: EditorModel, panel: BrushPanel) -> None:
        super().__init__(view)
        self.view, self.editor, self.panel = view, editor, panel
        self.dock: QDockWidget | None = None  # the dock the panel sits in (install_brush sets it)
        self.layer = MaskLayer(view)
        self.layer.cursor_px = float(panel.size.value())
        self.active = False
        self.painting = False
        self._pan_from: QPointF | None = None
        view.installEventFilter(self)
        panel.toggled.connect(self.set_active)
        panel.overlay_toggled.connect(self._overlay_toggled)
        panel.from_detail.connect(lambda: editor.masks.from_detail())
        panel.protect_faces.connect(editor.masks.protect_faces)
        panel.clear_mask.connect(lambda: editor.masks.set(None))
        panel.size.valueChanged.connect(self._size_changed)
        editor.masks.changed.connect(self._mask_changed)
        view.view_changed.connect(self.layer.update)

    # -- state ------------------------------------------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        self.active = on
        if self.panel.btn_brush.isChecked() != on:
            self.panel.btn_brush.setChecked(on)
        self.view.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
        if not on:
            self.layer.cursor_at = None
            if self.painting:
                self.painting = False
                self.editor.masks.end_stroke()
        self.layer.update()

    def _overlay_toggled(self, on: bool) -> None:
        self.layer.visible_overlay = on
        self.layer.update()

    def _size_changed(self, value: int) -> None:
        self.layer.cursor_px = float(value)
        self.layer.update()

    def _mask_changed(self, values: np.ndarray | None) -> None:
        self.layer.image = None if values is None else qimage_from_rgb(mask_overlay(values))
        self.layer.update()

    # -- events -----------------------------------------------------------------------------------------------------
    def _image_point(self, event: QMouseEvent) -> QPointF:
        return self.view.widget_to_image(event.position())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if kind == QEvent.Type.Resize:
            self.layer.setGeometry(self.view.rect())
            return False
        if not self.active or not isinstance(event, QMouseEvent):
            if kind == QEvent.Type.Leave:
                self.layer.cursor_at = None
                self.layer.update()
            return False
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() == Qt.MouseButton.RightButton:
                self._pan_from = event.position()
                return True
            if event.button() == Qt.MouseButton.LeftButton and self.editor.photo is not None:
                pt = self._image_point(event)
                self.painting = True
                self.editor.masks.begin_stroke(self.panel.brush(), pt.x(), pt.y())
                return True
        elif kind == QEvent.Type.MouseMove:
            self.layer.cursor_at = event.position()
            self.layer.cursor_px = float(self.panel.size.value())
            if self._pan_from is not None:
                delta = event.position() - self._pan_from
                self._pan_from = event.position()
                self.view.pan_by(delta.x(), delta.y())
            elif self.painting:
                pt = self._image_point(event)
                self.editor.masks.stroke_to(pt.x(), pt.y())
            self.layer.update()
            return True
        elif kind == QEvent.Type.MouseButtonRelease:
            if event.button() == Qt.MouseButton.RightButton:
                self._pan_from = None
                return True
            if event.button() == Qt.MouseButton.LeftButton and self.painting:
                self.painting = False
                self.editor.masks.end_stroke()
                return True
        return False


def install_brush(window: QMainWindow, view: CompareView, editor: EditorModel) -> BrushController:
    """Add the brush panel as a dock under the adjustments and wire it to the view and the editor."""
    panel = BrushPanel(window)
    dock = QDockWidget("Local strength", window)
    dock.setObjectName("brush")
    dock.setWidget(scrolling(panel))
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    controller = BrushController(view, editor, panel)
    controller.dock = dock
    QShortcut(QKeySequence("B"), window, lambda: controller.set_active(not controller.active))
    QShortcut(QKeySequence("M"), window, lambda: panel.show_mask.toggle())
    QShortcut(QKeySequence("["), window, lambda: panel.size.setValue(round(panel.size.value() / 1.25)))
    QShortcut(QKeySequence("]"), window, lambda: panel.size.setValue(round(panel.size.value() * 1.25)))
    return controller
