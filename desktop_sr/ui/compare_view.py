"""The before/after compare view: one transform shared by both images, so the same photo point is always at the
same place. Modes: split with a draggable divider (vertical or horizontal), side by side, and hold-to-see-original.

Coordinates: ``scale`` is screen pixels per image pixel; ``offset`` is where image (0, 0) lands in the widget
(in side-by-side mode, in each half). Both are in output-image pixels: the "before" (bicubic at the output size)
defines the size, and any "after" (an instant preview on a coarser grid, or the previous result while a new scale
renders) is stretched onto that same rectangle, so nothing jumps when the exact result arrives.

Zooming in uses nearest-neighbour so pixels stay sharp squares. From 400 % the zoom snaps to whole numbers and the
offset to whole screen pixels, so every photo pixel is exactly an N x N block (pixel-grid accurate); from 800 % a
faint grid outlines the pixels. Zooming out uses smooth filtering.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QWidget

from ..engine.api import Rect

MODES = ("split-v", "split-h", "side")
MIN_SCALE, MAX_SCALE = 0.02, 32.0
GRID_ACCURATE_FROM = 4.0  # zoom from which scale is a whole number and the offset whole pixels
GRID_LINES_FROM = 8.0


def snap_scale(scale: float, *, down: bool = False) -> float:
    """Clamp the zoom and, from 400 %, make it a whole number so photo pixels map to equal screen blocks."""
    scale = max(MIN_SCALE, min(MAX_SCALE, scale))
    if scale >= GRID_ACCURATE_FROM:
        scale = float(math.floor(scale) if down else round(scale))
    return scale


class CompareView(QWidget):
    view_changed = Signal()  # zoom or pan changed (the controller renders the visible region first)
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 240)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.overlay: QImage | None = None
        # A/B: a pinned result (another model's or other settings') shown on the "before" side instead of the
        # original; ``before`` still defines the layout and is what "show original" shows.
        self.reference: QImage | None = None
        self.reference_label = ""
        self.mode = "split-v"
        self.divider = 0.5  # fraction of the widget (split modes)
        self.show_original = False
        self.show_overlay = True
        self.scale = 1.0
        self.offset = QPointF(0, 0)
        self.placeholder = "Open a photo (File ▸ Open, or drop it here)"
        self.badge = ""  # e.g. "Preview" / "Exact", drawn on the after side
        self.no_model_hint = ""  # shown on the after side when there is nothing that could render it
        self.prompt_widget: QWidget | None = None  # e.g. a "Choose model…" button, kept centred by the view
        self._drag: str | None = None
        self._last = QPointF()
        self._fitted = True

    # -- content --------------------------------------------------------------------------------------------------
    def image_size(self) -> tuple[int, int]:
        """The output size everything is laid out at: the "before" defines it (the after may be coarser)."""
        img = self.before if self.before is not None else self.after
        return (img.width(), img.height()) if img is not None else (0, 0)

    def set_images(self, before: QImage | None, after: QImage | None, *, keep_view: bool = True) -> None:
        old = self.image_size()
        self.before, self.after = before, after
        new = self.image_size()
        self.place_prompt()
        if not keep_view or old == (0, 0) or self._fitted:
            self.fit()
        elif old != new and old[0]:
            # the scale factor changed: keep the same photo point under the centre
            ratio = new[0] / old[0]
            centre = QPointF(self.pane_rect().center())
            img_pt = (centre - self.offset) / self.scale
            self.scale = snap_scale(self.scale / ratio)
            self.offset = centre - img_pt * ratio * self.scale
            self._clamp()
        self.update()

    def set_reference(self, image: QImage | None, label: str = "") -> None:
        """Compare against ``image`` (same size as the result) instead of the original; None goes back."""
        self.reference, self.reference_label = image, label if image is not None else ""
        self.update()

    def set_after(self, after: QImage | None) -> None:
        self.after = after
        self.update()

    def paste_after(self, part: QImage, x: int, y: int) -> None:
        """Draw a freshly rendered region into the current result (visible part first).

        A coarser result on screen (preview or previous scale) is first stretched to the output size, so the rest
        of the picture stays what the user saw instead of flashing back to the original.
        """
        w, h = self.image_size()
        if self.after is None:
            base = self.before.copy() if self.before is not None else part
            self.after = base.convertToFormat(QImage.Format.Format_RGB888)
        elif (self.after.width(), self.after.height()) != (w, h):
            smooth = Qt.TransformationMode.SmoothTransformation
            self.after = self.after.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, smooth).convertToFormat(
                QImage.Format.Format_RGB888
            )
        p = QPainter(self.after)
        p.drawImage(x, y, part)
        p.end()
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.fit() if self._fitted else self._clamp()
        self.update()

    # -- geometry -------------------------------------------------------------------------------------------------
    def pane_rect(self, index: int = 0) -> QRect:
        """The area one image is laid out in: the whole widget, or one half in side-by-side mode."""
        r = self.rect()
        if self.mode != "side":
            return r
        half = r.width() // 2
        return QRect(r.left() + index * half, r.top(), half, r.height())

    def image_to_widget(self, pt: QPointF, pane: int = 0) -> QPointF:
        origin = QPointF(self.pane_rect(pane).topLeft()) - QPointF(self.pane_rect(0).topLeft())
        return self.offset + pt * self.scale + origin

    def widget_to_image(self, pt: QPointF) -> QPointF:
        pane = 1 if self.mode == "side" and pt.x() >= self.pane_rect(1).left() else 0
        origin = QPointF(self.pane_rect(pane).topLeft()) - QPointF(self.pane_rect(0).topLeft())
        return (pt - origin - self.offset) / self.scale

    def visible_image_rect(self) -> Rect | None:
        """The part of the photo that is on screen, in image pixels; None if nothing is shown."""
        w, h = self.image_size()
        if not w:
            return None
        pane = self.pane_rect(0)
        tl = (QPointF(pane.topLeft()) - QPointF(pane.topLeft()) - self.offset) / self.scale
        br = (QPointF(pane.width(), pane.height()) - self.offset) / self.scale
        x0, y0 = max(0, int(tl.x())), max(0, int(tl.y()))
        x1, y1 = min(w, int(br.x()) + 1), min(h, int(br.y()) + 1)
        return Rect(x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def fit(self) -> None:
        w, h = self.image_size()
        self._fitted = True
        if not w:
            return
        pane = self.pane_rect(0)
        self.scale = snap_scale(min(pane.width() / w, pane.height() / h), down=True)
        self.offset = QPointF((pane.width() - w * self.scale) / 2, (pane.height() - h * self.scale) / 2)
        self._snap_offset()
        self._emit()

    def zoom_to(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (widget coordinates; default the pane centre) fixed."""
        if not self.image_size()[0]:
            return
        pane = self.pane_rect(0)
        anchor = anchor if anchor is not None else QPointF(pane.width() / 2, pane.height() / 2)
        if self.mode == "side" and anchor.x() >= self.pane_rect(1).left():
            anchor = anchor - QPointF(self.pane_rect(1).left() - pane.left(), 0)
        img_pt = (anchor - self.offset) / self.scale
        self.scale = snap_scale(scale)
        self.offset = anchor - img_pt * self.scale
        self._fitted = False
        self._clamp()
        self._emit()

    def actual_size(self) -> None:
        self.zoom_to(1.0)

    def pan_by(self, dx: float, dy: float) -> None:
        self.offset += QPointF(dx, dy)
        self._fitted = False
        self._clamp()
        self._emit()

    def _clamp(self) -> None:
        """Keep at least a quarter of the pane covered by the photo so it cannot be lost off-screen."""
        w, h = self.image_size()
        if not w:
            return
        pane = self.pane_rect(0)
        iw, ih = w * self.scale, h * self.scale
        mx, my = pane.width() * 0.25, pane.height() * 0.25
        x = min(max(self.offset.x(), mx - iw), pane.width() - mx)
        y = min(max(self.offset.y(), my - ih), pane.height() - my)
        self.offset = QPointF(x, y)
        self._snap_offset()

    def _snap_offset(self) -> None:
        """Whole screen pixels when zoomed in, so nearest-neighbour blocks all have the same size."""
        if self.scale >= 1.0:
            self.offset = QPointF(round(self.offset.x()), round(self.offset.y()))

    def _emit(self) -> None:
        self.update()
        self.view_changed.emit()
        self.zoom_changed.emit(self.scale)

    def resizeEvent(self, event: object) -> None:  # noqa: N802
        if self._fitted:
            self.fit()
        self.place_prompt()
        super().resizeEvent(event)  # type: ignore[arg-type]

    def place_prompt(self) -> None:
        """Centre the prompt widget under the placeholder text, or near the bottom once a photo is shown."""
        w = self.prompt_widget
        if w is None:
            return
        w.adjustSize()
        y = self.height() // 2 + 40 if self.before is None else self.height() - w.height() - 24
        w.move((self.width() - w.width()) // 2, max(0, y))

    # -- painting -------------------------------------------------------------------------------------------------
    def _draw(self, p: QPainter, img: QImage | None, pane: int, clip: QRectF) -> None:
        if img is None:
            return
        p.save()
        p.setClipRect(clip)
        origin = QPointF(self.pane_rect(pane).topLeft())
        w, h = self.image_size()
        target = QRectF(origin + self.offset, QSizeF(w, h) * self.scale)  # coarser images are stretched onto it
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale < 1.0)
        p.drawImage(target, img)
        p.restore()

    def _draw_grid(self, p: QPainter, pane: int, clip: QRectF) -> None:
        if self.scale < GRID_LINES_FROM:
            return
        w, h = self.image_size()
        p.save()
        p.setClipRect(clip)
        p.setPen(QPen(QColor(0, 0, 0, 60), 1))
        origin = QPointF(self.pane_rect(pane).topLeft()) + self.offset
        x0, y0, x1, y1 = self.visible_image_rect() or (0, 0, w, h)
        for x in range(x0, x1 + 1):
            sx = origin.x() + x * self.scale
            p.drawLine(QPointF(sx, origin.y() + y0 * self.scale), QPointF(sx, origin.y() + y1 * self.scale))
        for y in range(y0, y1 + 1):
            sy = origin.y() + y * self.scale
            p.drawLine(QPointF(origin.x() + x0 * self.scale, sy), QPointF(origin.x() + x1 * self.scale, sy))
        p.restore()

    def _label(self, p: QPainter, text: str, pos: QPointF) -> None:
        if not text:
            return
        fm = p.fontMetrics()
        r = QRectF(pos, fm.size(0, text).toSizeF()).adjusted(-6, -3, 6, 3)
        p.fillRect(r, QColor(0, 0, 0, 150))
        p.setPen(QColor("white"))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)

    def divider_pos(self) -> float:
        r = self.rect()
        return r.width() * self.divider if self.mode == "split-v" else r.height() * self.divider

    def after_area(self) -> QRectF:
        """The widget area the after side is drawn in (where overlays on the result paint and take clicks)."""
        full = QRectF(self.rect())
        if self.mode == "side":
            return QRectF(self.pane_rect(1))
        d = self.divider_pos()
        if self.mode == "split-v":
            return QRectF(d, 0, full.width() - d, full.height())
        return QRectF(0, d, full.width(), full.height() - d)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 38, 40))
        if self.before is None and self.after is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            p.end()
            return
        after = self.before if self.show_original or self.after is None else self.after
        before = self.reference if self.reference is not None else self.before
        before_label = f"Before · {self.reference_label}" if self.reference is not None else "Before"
        full = QRectF(self.rect())
        overlay = self.overlay if self.show_overlay and not self.show_original else None
        if self.mode == "side":
            left, right = QRectF(self.pane_rect(0)), QRectF(self.pane_rect(1))
            self._draw(p, before, 0, left)
            self._draw(p, after, 1, right)
            self._dim_stand_in(p, right)
            self._draw(p, overlay, 1, right)
            for i, clip in ((0, left), (1, right)):
                self._draw_grid(p, i, clip)
            p.setPen(QPen(QColor(20, 20, 20), 2))
            p.drawLine(right.topLeft(), right.bottomLeft())
            self._label(p, before_label, left.topLeft() + QPointF(12, 10))
            self._label(p, self._after_label(), right.topLeft() + QPointF(12, 10))
        else:
            d = self.divider_pos()
            if self.mode == "split-v":
                first, second = QRectF(0, 0, d, full.height()), QRectF(d, 0, full.width() - d, full.height())
            else:
                first, second = QRectF(0, 0, full.width(), d), QRectF(0, d, full.width(), full.height() - d)
            self._draw(p, before, 0, first)
            self._draw(p, after, 0, second)
            self._dim_stand_in(p, second)
            self._draw(p, overlay, 0, second)
            self._draw_grid(p, 0, full)
            p.setPen(QPen(QColor(255, 255, 255, 220), 2))
            if self.mode == "split-v":
                p.drawLine(QPointF(d, 0), QPointF(d, full.height()))
                p.setBrush(QColor(255, 255, 255, 220))
                p.drawEllipse(QPointF(d, full.height() / 2), 7, 7)
            else:
                p.drawLine(QPointF(0, d), QPointF(full.width(), d))
                p.setBrush(QColor(255, 255, 255, 220))
                p.drawEllipse(QPointF(full.width() / 2, d), 7, 7)
            self._label(p, before_label, first.topLeft() + QPointF(12, 10))
            self._label(p, self._after_label(), second.topLeft() + QPointF(12, 10))
        p.end()

    def _dim_stand_in(self, p: QPainter, area: QRectF) -> None:
        """With no result yet the "after" side shows the original as a stand-in: dim it so nobody mistakes it."""
        if self.after is None and not self.show_original:
            p.fillRect(area, QColor(38, 38, 40, 150))

    def _after_label(self) -> str:
        if self.show_original:
            return "Original (release to compare)"
        if self.no_model_hint:
            return f"After: {self.no_model_hint}"
        if self.after is None:
            return f"After · {self.badge}" if self.badge else "After: not rendered yet"
        text = f"After · {self.badge}" if self.badge else "After"
        return text + " · detail map" if self.show_overlay and self.overlay is not None else text

    # -- interaction ----------------------------------------------------------------------------------------------
    def _near_divider(self, pos: QPointF) -> bool:
        if self.mode == "side":
            return False
        d = self.divider_pos()
        return abs((pos.x() if self.mode == "split-v" else pos.y()) - d) <= 8

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = "divider" if self._near_divider(event.position()) else "pan"
            self._last = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor if self._drag == "pan" else self.cursor())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._drag == "divider":
            extent = self.width() if self.mode == "split-v" else self.height()
            value = pos.x() if self.mode == "split-v" else pos.y()
            self.divider = min(1.0, max(0.0, value / max(1, extent)))
            self.update()
        elif self._drag == "pan":
            delta = pos - self._last
            self._last = pos
            self.pan_by(delta.x(), delta.y())
        elif self._near_divider(pos):
            self.setCursor(Qt.CursorShape.SplitHCursor if self.mode == "split-v" else Qt.CursorShape.SplitVCursor)
        else:
            self.setCursor(Qt.CursorShape.OpenHandCursor if self.image_size()[0] else Qt.CursorShape.ArrowCursor)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = None
        self.unsetCursor()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_to(self.scale * (1.25**steps), event.position())
