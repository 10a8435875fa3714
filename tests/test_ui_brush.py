"""The strength brush in the window (issue 19), driven with the mouse through pytest-qt on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from desktop_sr.editor.jobs import ModelLoaded
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.ui.images import rgb_from_qimage
from desktop_sr.ui.main_window import MainWindow

DATA = Path(__file__).parent / "data"


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("DESKTOP_SR_MASKS_DIR", str(tmp_path / "masks"))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a: None)
    w = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    yield w
    w.close()


def exact_now(window: MainWindow) -> bool:
    e = window.editor
    return e.shown == "exact" and e.shown_params == e.params and e.blender is not None


def screen_point(window: MainWindow, x: float, y: float) -> QPoint:
    pane = 1 if window.view.mode == "side" else 0
    return window.view.image_to_widget(QPointF(x, y), pane).toPoint()


def test_a_brush_stroke_changes_mask_and_result_only_where_painted_and_undo_restores(
    qtbot, window, tiny_model, tmp_path
):
    photo = tmp_path / "photo.png"
    Image.open(DATA / "astronaut_128.png").convert("RGB").crop((0, 0, 96, 64)).save(photo)
    with qtbot.waitSignal(window.worker.result, timeout=60000, check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    window.open_path(photo)
    qtbot.waitUntil(lambda: exact_now(window), timeout=120000)  # exact, and the corners for instant previews
    view = window.view
    view.set_mode("side")  # the whole result on the right: the stroke can go anywhere on it
    view.fit()
    before = rgb_from_qimage(view.after)
    assert before.shape == (256, 384, 3)

    window.brush.panel.size.setValue(60)
    window.brush.panel.feather.setValue(30)
    qtbot.keyClick(window, Qt.Key.Key_B)  # the brush tool
    assert window.brush.active
    start, end = screen_point(window, 60, 60), screen_point(window, 140, 60)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 9):
        qtbot.mouseMove(view, start + (end - start) * i / 8)
    assert window.editor.shown == "preview"  # the blend is on screen while painting
    assert window.brush.layer.image is not None  # the mask overlay follows the stroke
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)

    mask = window.editor.masks.values()
    assert mask is not None
    h, w = mask.shape  # the photo's grid: 96 x 64
    assert mask[int(60 / 4), int(100 / 4)] == 0.0 and mask[h - 5, w - 5] == 1.0
    painted = window.editor.params
    assert painted.maps is not None
    qtbot.waitUntil(lambda: window.editor.shown == "exact" and window.editor.shown_params == painted, timeout=120000)
    after = rgb_from_qimage(view.after)
    diff = np.abs(after.astype(int) - before.astype(int)).mean(axis=2)
    assert diff[40:80, 70:130].mean() > 4  # under the stroke: no invented detail any more
    assert diff[170:, 250:].mean() < diff[40:80, 70:130].mean() / 8  # far from it: (nearly) as before

    window.menus.act_undo.trigger()
    qtbot.waitUntil(lambda: window.editor.shown == "exact" and window.editor.params.maps is None, timeout=60000)
    assert window.editor.masks.values() is None and window.brush.layer.image is None
    assert np.array_equal(rgb_from_qimage(view.after), before)
