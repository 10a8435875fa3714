"""The Faces dock panel in the window (issue 27), offscreen: it lists the store's face models with their licence,
lists the faces found once a model is chosen, and its slider, checkboxes and the outlines drive the editor.

The window's worker runs a numpy session (tests/fake_session.py) and a counting stand-in for the face network; the
detection, alignment and paste-back are the engine's."""

from __future__ import annotations

import numpy as np
import pytest
from fake_session import FakeSession
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from desktop_sr.editor import Shown
from desktop_sr.editor.face_edit import FaceEdit
from desktop_sr.editor.face_restore import FacePanel
from desktop_sr.engine.faces import FaceRestoration
from desktop_sr.engine.faces import landmarks as lm
from desktop_sr.engine.loader import ModelSpec
from desktop_sr.ui import faces_panel
from desktop_sr.ui.face_choice import FaceModel
from desktop_sr.ui.images import rgb_from_qimage

pytest.importorskip("cv2", reason="the face detector is OpenCV 4's (the faces and test extras install it)")
if not lm.available():
    pytest.skip("OpenCV 5 has no Haar cascades (the test extra pins opencv-python<5)", allow_module_level=True)
skimage_data = pytest.importorskip("skimage.data", reason="the astronaut ships in scikit-image")

SPEC = ModelSpec(kind="faces", name="Inverted")


class Inverted:
    name, architecture, has_fidelity, licence = "Inverted", "test", False, "none"

    def __init__(self) -> None:
        self.calls = 0

    def restore(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        self.calls += 1
        return 1.0 - crop


def test_the_faces_panel_lists_the_faces_and_drives_the_editor(qtbot, window, tmp_path, monkeypatch):
    photo = tmp_path / "head.png"
    Image.fromarray(skimage_data.astronaut()[:256, 100:356]).resize((80, 80), Image.Resampling.LANCZOS).save(photo)
    monkeypatch.setattr(faces_panel, "face_models", lambda d: [FaceModel("inv", "Inverted", SPEC, "Test: none")])
    restorer = Inverted()
    restoration = FaceRestoration(restorer)
    window.worker.executor.open_model = lambda job: FakeSession(job.spec.name)
    window.worker.executor.open_faces = lambda spec, device: restoration
    editor, panel = window.editor, window.faces.panel
    panel.refresh_models()
    assert window.faces.dock.isVisible() and window.faces.dock.windowTitle() == "Faces"
    assert [panel.model.itemText(i) for i in range(panel.model.count())] == ["None", "Inverted"]
    assert panel.model.itemData(1, Qt.ItemDataRole.ToolTipRole) == "Licence: Test: none"  # before it is used
    assert not panel.hint.isVisible() and not panel.strength.isEnabled()

    # a CodeFormer-like model offers its fidelity weight as soon as it is chosen (the store recorded it at import),
    # not only after its first restoration
    weighted = FaceModel("w", "Weighted", ModelSpec(kind="faces", name="Weighted"), "Test: none", has_fidelity=True)
    panel._models.append(weighted)
    chosen = FacePanel(FaceEdit(model=weighted.spec), rows=(), summary="", has_fidelity=False, busy=False, size=None)
    panel.show_state(chosen)
    assert panel.fidelity_row.isVisibleTo(panel)
    panel._models.remove(weighted)
    panel.show_state(None)
    assert not panel.fidelity_row.isVisibleTo(panel)

    window.load_model(ModelSpec(kind="fake", name="fake"))
    window.open_path(photo)
    qtbot.waitUntil(lambda: editor.shown is Shown.EXACT and not editor.busy, timeout=20000)
    plain = rgb_from_qimage(window.view.after)
    panel.model.setCurrentIndex(1)
    assert panel.licence.text() == "Licence: Test: none"
    qtbot.waitUntil(lambda: panel.faces.count() == 1 and panel.summary.text() == "1 face restored", timeout=20000)
    item = panel.faces.item(0)
    assert item.text().startswith("Face 1 (") and item.checkState() == Qt.CheckState.Checked
    assert not panel.fidelity_row.isVisible() and restorer.calls == 1
    restored = rgb_from_qimage(window.view.after)
    x0, y0, x1, y1 = editor.faces.rows()[0].face.box
    full = np.abs(restored.astype(int) - plain.astype(int))[y0:y1, x0:x1].mean()
    assert full > 30

    panel.strength.setValue(40)  # the slider drives the editor, and the view follows at once (no job)
    assert editor.faces.edit.strength == 0.4 and panel.strength_value.text() == "40 %"
    weaker = rgb_from_qimage(window.view.after)
    assert 0.2 * full < np.abs(weaker.astype(int) - plain.astype(int))[y0:y1, x0:x1].mean() < 0.6 * full
    item.setCheckState(Qt.CheckState.Unchecked)  # off: the face as rendered
    assert np.array_equal(rgb_from_qimage(window.view.after), plain)
    ((number, _box, on),) = window.faces.outlines.boxes()
    assert number == 1 and not on  # drawn dashed on the result
    window.menus.act_undo.trigger()
    assert panel.faces.item(0).checkState() == Qt.CheckState.Checked and restorer.calls == 1

    # a click on the outline (on the "after" side) switches the face
    window.view.set_mode("side")
    window.view.fit()
    ((_n, box, _on),) = window.faces.outlines.boxes()
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=box.center().toPoint())
    assert panel.faces.item(0).checkState() == Qt.CheckState.Unchecked
    assert window.faces.outlines.boxes()[0][1].contains(QPointF(box.center()))
