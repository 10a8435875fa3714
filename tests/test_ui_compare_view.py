"""The compare view checked on the pixels it paints: alignment, pixel-grid zoom, divider, wheel zoom, original key."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop_sr.ui.compare_view import CompareView
from desktop_sr.ui.images import colormap, qimage_from_rgb, rgb_from_qimage
from desktop_sr.ui.main_window import MainWindow

W, H = 40, 30


def random_image(seed: int, w: int = W, h: int = H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def view(qtbot) -> CompareView:
    v = CompareView()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    return v


def screen(view: CompareView) -> np.ndarray:
    return rgb_from_qimage(view.grab().toImage())


def test_zoom_from_400_percent_is_pixel_grid_accurate(view):
    before = random_image(1)
    view.set_images(qimage_from_rgb(before), qimage_from_rgb(before))
    view.zoom_to(4.3, QPointF(137.4, 91.7))
    assert view.scale == 4.0  # snapped to a whole number
    assert view.offset.x() == int(view.offset.x()) and view.offset.y() == int(view.offset.y())
    shot = screen(view)
    ox, oy = int(view.offset.x()), int(view.offset.y())
    x0, y0, x1, y1 = view.visible_image_rect()
    checked = 0
    for y in range(y0 + 1, y1 - 1):
        for x in range(x0 + 1, x1 - 1):
            sx, sy = ox + 4 * x, oy + 4 * y
            if not (sx >= 0 and sx + 4 <= shot.shape[1] and sy >= 0 and sy + 4 <= shot.shape[0]):
                continue
            if abs(sx - view.divider_pos()) < 10 or sy < 40:  # skip the divider line and the labels
                continue
            block = shot[sy : sy + 4, sx : sx + 4].reshape(-1, 3)
            assert (block == before[y, x]).all(), (x, y)  # every photo pixel is exactly one 4 x 4 block
            checked += 1
    assert checked > 300
    view.zoom_to(view.scale * 1.25)
    assert view.scale == 5.0
    view.zoom_to(0.7)
    assert view.scale == pytest.approx(0.7)  # below 400 % any zoom is allowed


def test_split_divider_drags_and_shows_before_left_after_right(qtbot, view):
    before, after = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 255, np.uint8)
    before[..., 0] = 200  # red before, white after
    view.set_images(qimage_from_rgb(before), qimage_from_rgb(after))
    view.zoom_to(20.0)  # the photo covers the whole widget (with a faint pixel grid every 20 screen pixels)
    y = 310
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(300, y))
    qtbot.mouseMove(view, QPoint(150, y))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(150, y))
    assert view.divider == pytest.approx(0.25)
    shot = screen(view)
    assert tuple(shot[y, 110]) == (200, 0, 0) and tuple(shot[y, 210]) == (255, 255, 255)
    assert tuple(shot[y, 100]) == (153, 0, 0)  # a grid line: black at 60/255 over the pixel
    view.set_mode("split-h")
    view.divider = 0.5
    shot = screen(view)
    assert tuple(shot[155, 310]) == (200, 0, 0) and tuple(shot[265, 310]) == (255, 255, 255)


def test_side_by_side_panes_show_the_same_spot(view):
    img = random_image(2)
    view.set_mode("side")
    view.set_images(qimage_from_rgb(img), qimage_from_rgb(img))
    view.zoom_to(6.0, QPointF(120, 200))
    view.pan_by(-37, 21)
    shot = screen(view)
    half = view.pane_rect(1).left()
    left, right = shot[60:, 0 : half - 2], shot[60:, half : 2 * half - 2]
    assert np.array_equal(left[:, 2:], right[:, 2:])  # same photo point at the same place in both panes


def test_wheel_zooms_about_the_cursor(view):
    view.set_images(qimage_from_rgb(random_image(3)), None)
    cursor = QPointF(410, 170)
    under = view.widget_to_image(cursor)
    event = QWheelEvent(cursor, view.mapToGlobal(cursor), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    scale = view.scale
    QApplication.sendEvent(view, event)
    assert view.scale > scale
    after = view.widget_to_image(cursor)
    assert abs(after.x() - under.x()) < 1 / view.scale and abs(after.y() - under.y()) < 1 / view.scale


def test_a_coarser_after_is_stretched_onto_the_same_rectangle(view):
    before = random_image(4, 40, 30)
    small = np.repeat(np.repeat(random_image(5, 20, 15), 2, axis=0), 2, axis=1)
    view.set_images(qimage_from_rgb(before), qimage_from_rgb(small[::2, ::2]))
    view.divider = 0.0  # all "after"
    view.zoom_to(10.0)
    shot = screen(view)
    ox, oy = int(view.offset.x()), int(view.offset.y())
    for x, y in ((10, 8), (25, 20), (33, 12)):
        assert tuple(shot[oy + 10 * y + 5, ox + 10 * x + 5]) == tuple(small[y, x])


def test_detail_colormap_is_transparent_where_nothing_is_added():
    rgba = colormap(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert rgba.shape == (1, 3, 4) and rgba[0, 0, 3] == 0 and rgba[0, 1, 3] < rgba[0, 2, 3]


def test_hold_backslash_or_the_toolbar_button_shows_the_original(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "critical", lambda *a: pytest.fail(f"unexpected error dialog {a[1:]}"))
    w = MainWindow(settings_dir=tmp_path / "cfg", load_model=False)
    qtbot.addWidget(w)
    w.show()
    try:
        w.view.set_images(qimage_from_rgb(random_image(6)), qimage_from_rgb(random_image(7)))
        w.view.setFocus()
        qtbot.keyPress(w.view, Qt.Key.Key_Backslash)
        assert w.view.show_original and "Original" in w.view._after_label()
        qtbot.keyRelease(w.view, Qt.Key.Key_Backslash)
        assert not w.view.show_original
        w.menus.act_original.trigger()
        assert w.view.show_original
        w.menus.act_original.trigger()
        assert not w.view.show_original
    finally:
        w.close()
