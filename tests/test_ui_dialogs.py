"""Settings file handling, the export dialog (names, formats, never overwriting silently) and the model dialog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from desktop_sr.editor.history import Change
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.imaging import SaveOptions
from desktop_sr.settings import VERSION, Settings, config_dir, load_settings, save_settings
from desktop_sr.ui.controls import ControlsPanel
from desktop_sr.ui.export_dialog import ExportDialog, suggest_name
from desktop_sr.ui.model_dialog import ChooseModelDialog


def test_settings_round_trip_and_bad_values(tmp_path):
    s = Settings(pix=0.35, scale=2, recent_files=["/a.jpg"], compare_mode="side")
    save_settings(s, tmp_path)
    loaded, warning = load_settings(tmp_path)
    assert warning is None and loaded == s
    raw = json.loads((tmp_path / "settings.json").read_text())
    assert raw["version"] == VERSION
    raw.update(pix="lots", scale=None, unknown_key=1)  # wrong types and unknown keys: defaults, no crash
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    loaded, warning = load_settings(tmp_path)
    assert warning is None and loaded.pix == 1.0 and loaded.scale == 4 and loaded.compare_mode == "side"
    (tmp_path / "settings.json").write_text("[1, 2]")
    loaded, warning = load_settings(tmp_path)
    assert loaded == Settings() and warning and "unreadable" in warning


def test_config_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert config_dir() == tmp_path / "elsewhere"


def test_recent_files_are_unique_newest_first_and_bounded():
    s = Settings()
    for i in range(15):
        s.add_recent(f"/p/{i}.jpg")
    s.add_recent("/p/12.jpg")
    assert s.recent_files[0] == str(Path("/p/12.jpg")) and len(s.recent_files) == 10
    assert len(set(s.recent_files)) == 10


def test_suggested_names():
    src = Path("/photos/grandma 1952.jpg")
    assert suggest_name("{stem}_x{scale}", src, 4, "png") == "grandma 1952_x4.png"
    assert suggest_name("{stem}-{oops}", src, 2, "jpeg") == "grandma 1952_x2.jpg"  # a bad template falls back
    assert suggest_name("../{stem}", src, 3, "tiff").endswith("_grandma 1952.tif")  # no escaping the folder


@pytest.fixture
def source(tmp_path) -> Path:
    p = tmp_path / "shot.jpg"
    p.write_bytes(b"not read by the dialog")
    return p


def test_export_dialog_formats_and_options(qtbot, source):
    dlg = ExportDialog(None, source, 4, str(source.parent), fmt="png", bit_depth=16)
    qtbot.addWidget(dlg)
    assert dlg.target() == source.parent / "shot_x4.png"
    assert dlg.options() == SaveOptions(format="png", bit_depth=16, quality=95)
    dlg.format.setCurrentIndex(dlg.format.findData("jpeg"))
    assert dlg.target().suffix == ".jpg" and not dlg.depth.isEnabled() and dlg.quality.isEnabled()
    dlg.quality.setValue(80)
    assert dlg.options() == SaveOptions(format="jpeg", bit_depth=8, quality=80)
    dlg.format.setCurrentIndex(dlg.format.findData("tiff"))
    assert dlg.target().suffix == ".tif" and dlg.depth.isEnabled()


def test_export_dialog_never_overwrites_without_asking(qtbot, source, monkeypatch):
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or answer[0])
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: asked.append(text))
    dlg = ExportDialog(None, source, 4, str(source.parent))
    qtbot.addWidget(dlg)
    existing = source.parent / "shot_x4.png"
    existing.write_bytes(b"old")
    dlg._accept()
    assert len(asked) == 1 and "exists" in asked[0] and dlg.result() == 0  # said no: still open
    answer[0] = QMessageBox.StandardButton.Yes
    dlg._accept()
    assert dlg.result() == ExportDialog.DialogCode.Accepted
    dlg2 = ExportDialog(None, source, 4, str(source.parent))
    qtbot.addWidget(dlg2)
    dlg2.path.setText(str(source))
    dlg2._accept()
    assert "original" in asked[-1] and dlg2.result() == 0  # the source photo is never a target


def test_model_dialog_checks_paths_and_builds_a_pisa_spec(qtbot, tmp_path, tiny_model):
    base, lora = tmp_path / "sd21", tmp_path / "pisa_sr.pkl"
    dlg = ChooseModelDialog(None, pisa_spec(base, lora))  # the last model: its family and files are proposed
    qtbot.addWidget(dlg)
    assert dlg.current_family().kind == "pisa-sr" and [f.edit.text() for f in dlg.fields] == [str(base), str(lora)]
    dlg._accept()
    assert "not found" in dlg.error.text() and str(base) in dlg.error.text() and dlg.result() == 0
    base.mkdir()
    dlg._accept()
    assert "missing" in dlg.error.text() and dlg.result() == 0  # an empty folder is no SD-2.1-base
    dlg.fields[0].edit.setText(str(tiny_model["base"]))
    dlg._accept()
    assert "not found" in dlg.error.text() and str(lora) in dlg.error.text()
    lora.write_bytes(b"x")
    dlg._accept()
    assert dlg.result() == ChooseModelDialog.DialogCode.Accepted
    assert dlg.spec() == pisa_spec(tiny_model["base"], lora)
    dlg.family.setCurrentIndex(dlg.family.findData("community"))  # another family: its own one field
    assert [f.role.label for f in dlg.fields] == ["Upscaler weights"]


def test_model_dialog_proposes_a_kind_a_model_needs_first_and_the_bundled_models_own_weights_last(qtbot):
    dlg = ChooseModelDialog(None)
    qtbot.addWidget(dlg)
    kinds = [dlg.family.itemData(i) for i in range(dlg.family.count())]
    assert kinds[0] != "bundled" and kinds[-1] == "bundled" and dlg.current_family().kind == kinds[0]
    assert "your own weights" in dlg.family.itemText(kinds.index("bundled"))
    dlg.chooser.set_family("bundled")
    assert [f.role.label for f in dlg.fields] == ["Real-ESRGAN x4plus weights"]


def test_controls_steps_reset_and_realism_per_model(qtbot):
    c = ControlsPanel()
    qtbot.addWidget(c)
    seen = []
    c.changed.connect(lambda p, kind: seen.append((p, kind)))
    c.pix.slider.setValue(27)
    assert c.params().pix == 1.35 and seen[-1][1] is Change.STRENGTH
    c.pix.spin.setValue(0.4)
    assert c.pix.slider.value() == 8
    qtbot.mouseDClick(c.pix.slider, Qt.MouseButton.LeftButton)
    assert c.params().pix == 1.0  # double-click resets
    c.configure_for_model(True, True, (1,))  # the official weights: trained at t = 1 only
    labels = [c.realism.itemText(i) for i in range(c.realism.count())]
    assert labels == ["Default (t = 1)", "Fidelity (t = 250) — experimental", "Neutral (t = 500) — experimental",
                      "Realism (t = 750) — experimental", "Custom… — experimental"]  # fmt: skip
    assert "trained at t = 1 only" in c.realism.toolTip()
    assert not c.realism_note.isVisibleTo(c)  # nothing to warn about at t = 1
    c.realism.setCurrentIndex(c.realism.findData(-1))
    c.custom_t.setValue(320)
    assert c.params().realism == 320 and seen[-1][1] is Change.OTHER
    assert c.realism_note.isVisibleTo(c) and "Experimental" in c.realism_note.text()
    c.configure_for_model(True, True, (250, 500, 750))  # a realism-grouped model: exactly its levels
    assert [c.realism.itemData(i) for i in range(c.realism.count())] == [250, 500, 750]
    assert "experimental" not in c.realism.currentText() and "trained for exactly" in c.realism_note.text()
    c.configure_for_model(False, False, ())  # e.g. the bundled upscaler
    assert not c.realism.isEnabled() and "no realism" in c.realism.toolTip()
    assert c.params().realism == 1 and not c.prompt.isEnabled()
    c.configure_for_model(True, True, (250, 500, 750))
    assert c.realism.isEnabled() and "Realism level" in c.realism.toolTip()
