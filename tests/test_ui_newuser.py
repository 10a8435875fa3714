"""The GUI half of issue 16, driven as a new user would (pytest-qt, offscreen, tiny random models).

Every control acts or says it does not; error messages are never cut off unseen and a failed open leaves no busy
state; the save dialog proposes an absolute path and has the batch dialog's output options; the batch dialog starts
neutral and labels its bars; long renders ask first and show rate and time left; Model ▸ Get PiSA-SR… works offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from device_target import TARGET
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from desktop_sr.editor.jobs import ModelLoaded, Rendered
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled import bundled_spec
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.imaging import SaveOptions, read_photo
from desktop_sr.ui.controls import ControlsPanel
from desktop_sr.ui.export_dialog import ExportDialog
from desktop_sr.ui.output_options import OutputOptions

DATA = Path(__file__).parent / "data"
BUNDLED_NOTE = "the colour fix is off for the bundled model (it would make the preview inexact)"


def background(widget, y_frac: float = 0.5) -> tuple[int, int, int]:
    """The colour inside a widget's box, away from its text (right edge, middle)."""
    image = widget.grab().toImage()
    c = image.pixelColor(image.width() - 6, int(image.height() * y_frac))
    return c.red(), c.green(), c.blue()


# --- 1, 2: controls that do nothing say so -----------------------------------------------------------------------


def test_colour_fix_and_description_are_off_with_the_reason_and_look_it(qtbot):
    c = ControlsPanel()
    qtbot.addWidget(c)
    c.show()
    enabled_look = background(c.prompt)
    c.configure_for_model(False, False, (), supports_color_fix=False, color_fix_note=BUNDLED_NOTE)
    assert not c.color_fix.isEnabled() and "preview inexact" in c.color_fix.toolTip()
    assert c.color_fix_note.isVisible() and c.color_fix_note.text().startswith("The colour fix is off")
    assert not c.prompt.isEnabled() and "does not read descriptions" in c.prompt.toolTip()
    assert c.prompt_note.isVisible() and "Not used by this model" in c.prompt_note.text()
    disabled_look = background(c.prompt)
    assert sum(abs(a - b) for a, b in zip(enabled_look, disabled_look, strict=True)) > 20  # greyed, not white
    c.configure_for_model(True, True, (1,))  # PiSA-SR: both act again, no notes
    assert c.color_fix.isEnabled() and c.prompt.isEnabled()
    assert not c.color_fix_note.isVisible() and not c.prompt_note.isVisible()
    assert "AdaIN" in c.color_fix.toolTip()


def test_the_window_follows_the_loaded_models_colour_fix(qtbot, window, tiny_model):
    def loaded(j, r):
        return isinstance(r, ModelLoaded)

    with qtbot.waitSignal(window.worker.result, timeout=120000, check_params_cb=loaded):
        window.load_model(bundled_spec())  # the real bundled upscaler: no colour fix, no description
    c = window.controls
    assert not c.color_fix.isEnabled() and c.color_fix_note.isVisible() and "bundled" in c.color_fix_note.text()
    assert not c.prompt.isEnabled() and c.prompt_note.isVisible()
    with qtbot.waitSignal(window.worker.result, timeout=60000, check_params_cb=loaded):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    assert c.color_fix.isEnabled() and not c.color_fix_note.isVisible()
    assert c.prompt.isEnabled() and not c.prompt_note.isVisible()


# --- 3: the status bar -------------------------------------------------------------------------------------------


def test_a_failed_open_leaves_no_busy_state_and_its_whole_message_is_reachable(qtbot, window, tmp_path):
    bad = tmp_path / ("IMG_2041 holiday in the mountains, scanned from the family album " * 3 + ".jpg")
    bad.write_bytes((DATA / "astronaut_64.png").read_bytes()[:300])
    window.resize(700, 500)
    window.open_path(bad)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=20000)
    title, message, busy_bar, badge = window.errors[0]
    assert not busy_bar and "rendering" not in badge  # not even while the error dialog is up
    assert not window.status.progress.isVisible() and "rendering" not in window.status.lbl_badge.text()
    status = window.statusBar()
    assert "damaged or truncated" in status.currentMessage()  # the whole text, not "damaged or trunca"
    label = status.message
    assert label.is_elided() and label.text().endswith("…")  # it does not fit: elided, visibly
    assert "damaged or truncated" in label.toolTip()
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=QPoint(5, label.height() // 2))
    assert label.dialog is not None and "damaged or truncated" in label.dialog.text()
    label.dialog.close()


# --- 4: the save dialog ------------------------------------------------------------------------------------------


def test_save_dialog_proposes_an_absolute_path(qtbot, tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "shot.jpg")
    monkeypatch.chdir(tmp_path)
    dlg = ExportDialog(None, Path("photos/shot.jpg"), 4, "")  # opened with a relative path, no folder saved to yet
    qtbot.addWidget(dlg)
    assert dlg.target().is_absolute() and dlg.target() == tmp_path / "photos" / "shot_x4.png"
    assert Path(dlg.path.text()).is_absolute()
    (tmp_path / "exports").mkdir()
    dlg2 = ExportDialog(None, Path("photos/shot.jpg"), 4, str(tmp_path / "exports"))  # the last folder saved to
    qtbot.addWidget(dlg2)
    assert dlg2.target() == tmp_path / "exports" / "shot_x4.png"
    dlg3 = ExportDialog(None, Path("photos/shot.jpg"), 4, str(tmp_path / "gone"))  # a folder since deleted
    qtbot.addWidget(dlg3)
    assert dlg3.target() == tmp_path / "photos" / "shot_x4.png"


def test_save_dialog_has_the_batch_dialogs_output_options_and_warns_about_transparency(qtbot, tmp_path):
    from desktop_sr.ui.batch_dialog import BatchDialog

    src = tmp_path / "logo.png"
    dlg = ExportDialog(None, src, 2, str(tmp_path), fmt="png", transparency=True)
    qtbot.addWidget(dlg)
    dlg.show()
    batch = BatchDialog(None, model_spec=None, params=RenderParams(), current_photo=None,
                        settings_dir=tmp_path / "config")  # fmt: skip
    qtbot.addWidget(batch)
    assert isinstance(dlg.output, OutputOptions) and isinstance(batch.output_options, OutputOptions)
    assert not dlg.output.alpha_note.isVisible()  # PNG keeps transparency
    dlg.format.setCurrentIndex(dlg.format.findData("jpeg"))
    assert dlg.output.alpha_note.isVisible() and "flattened onto white" in dlg.output.alpha_note.text()
    dlg.keep_meta.setChecked(False)
    dlg.quality.setValue(80)
    assert dlg.options() == SaveOptions(format="jpeg", bit_depth=8, quality=80, keep_metadata=False)
    for box in (batch.output_options,):  # the same choices give the same options in the batch dialog
        box.format.setCurrentIndex(box.format.findData("jpeg"))
        box.keep_meta.setChecked(False)
        box.quality.setValue(80)
        assert box.save_options().keep_metadata is False and box.save_options().format == "jpeg"
        assert "flattened onto white" in box.alpha_note.text()  # said for the photos that have transparency
    dlg.format.setCurrentIndex(dlg.format.findData("webp"))
    assert dlg.output.alpha_note.isHidden()


def test_export_with_metadata_stripped_writes_no_exif(qtbot, window, tiny_model, tmp_path):
    src = tmp_path / "cam.jpg"
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    Image.open(DATA / "astronaut_64.png").convert("RGB").crop((0, 0, 40, 32)).save(src, exif=exif.tobytes())
    with qtbot.waitSignal(window.worker.result, timeout=60000, check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    with qtbot.waitSignal(window.worker.result, timeout=60000,
                          check_params_cb=lambda j, r: isinstance(r, Rendered) and r.region is None):  # fmt: skip
        window.open_path(src)
    dlg = ExportDialog(window, src, 4, window.settings.export_folder, fmt="png")
    qtbot.addWidget(dlg)
    dlg.keep_meta.setChecked(False)
    out = dlg.target()
    window.export_to(out, dlg.options())
    qtbot.waitUntil(lambda: "Saved" in window.statusBar().currentMessage(), timeout=60000)
    with Image.open(out) as im:
        assert im.size == (160, 128) and not im.getexif()
    assert read_photo(src).exif  # the source keeps its own


# --- 5: the batch dialog -----------------------------------------------------------------------------------------


def test_batch_dialog_opens_with_a_neutral_hint_not_an_error(qtbot, tmp_path):
    from desktop_sr.ui.batch_dialog import BatchDialog

    dlg = BatchDialog(None, model_spec=bundled_spec(), params=RenderParams(), current_photo=None,
                      settings_dir=tmp_path / "config")  # fmt: skip
    qtbot.addWidget(dlg)
    text = dlg.plan_label.text()
    assert "choose an output folder" in text and "color" not in text  # plain words, no red
    assert dlg.file_bar.format() == "Not started" and dlg.total_bar.format() == "Not started"
    assert not dlg.start()  # the user tries to start: now it is a problem, in red
    assert "color:#b00020" in dlg.plan_label.text() and "choose an output folder" in dlg.plan_label.text()


def test_batch_progress_is_labelled_with_rate_and_time_left(qtbot, tmp_path, tiny_model):
    from desktop_sr.engine.tile_settings import TileSettings
    from desktop_sr.ui.batch_dialog import BatchDialog
    from desktop_sr.ui.batch_worker import TileProgress

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.open(DATA / "astronaut_64.png").convert("RGB").crop((i, 0, 32 + i, 32)).save(folder / f"p{i}.png")
    small = TileSettings(unet_tile=16, unet_overlap=4, vae_tile=16, vae_overlap=4)  # several tiles per photo
    dlg = BatchDialog(None, model_spec=pisa_spec(tiny_model["base"], tiny_model["pkl"]),
                      params=RenderParams(scale=2), current_photo=None, settings_dir=tmp_path / "config",
                      device=TARGET.device, tiles=small, model_device=TARGET.device)  # fmt: skip
    qtbot.addWidget(dlg)
    dlg.set_inputs([folder])
    dlg.output.setText(str(tmp_path / "out"))
    seen: list[tuple[str, str, str]] = []

    def watch(_job, news):
        if isinstance(news, TileProgress):
            seen.append((dlg.file_bar.format(), dlg.total_bar.format(), dlg.eta_label.text()))

    assert dlg.start()
    dlg.worker.result.connect(watch)
    with qtbot.waitSignal(dlg.finished_batch, timeout=120000):
        pass
    first_unet = next(s for s in seen if "model tiles" in s[0])
    assert first_unet[0].startswith("Current photo: model tiles 1 of ")
    assert first_unet[1] == "Photo 1 of 2 (0 done)"
    assert "s/tile" in first_unet[2] and "left" in first_unet[2]  # from the first tile on
    assert any(s[1] == "Photo 2 of 2 (1 done)" for s in seen)
    assert dlg.cost_book.seconds_per_megapixel(dlg.model_spec.name, "cpu") is not None  # measured for next time


# --- 6: long renders ---------------------------------------------------------------------------------------------


def test_a_long_render_asks_with_its_estimate_and_shows_its_time_left(qtbot, window, tiny_model, photo_path,
                                                                      monkeypatch):  # fmt: skip
    spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    with qtbot.waitSignal(window.worker.result, timeout=60000, check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):
        window.load_model(spec)
    from desktop_sr.render_cost import render_work

    work = render_work(spec.kind, 48, 40, 4)  # an earlier render of a photo this size took over 16 minutes here
    window.editor.gate.book.record(spec.name, window.editor.model_info.device, work, 1000.0)
    asked: list[str] = []

    def question(parent, title, text, *a):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    details: list[str] = []
    window.editor.progress.connect(lambda p: details.append(window.status.lbl_eta.text()))
    window.open_path(photo_path)
    qtbot.waitUntil(lambda: window.editor.shown == "exact", timeout=60000)
    assert len(asked) == 1 and "will take " in asked[0] and "min" in asked[0] and "192 × 160" in asked[0]
    assert any("s/tile" in d and "left" in d for d in details)
    qtbot.waitUntil(lambda: not window.worker.busy, timeout=60000)
    assert not window.status.lbl_eta.isVisible()


# --- 7: Model ▸ Get PiSA-SR… -------------------------------------------------------------------------------------


def test_get_pisa_offline_says_what_to_copy_where_and_imports_a_saved_pkl(qtbot, window, tiny_model, tmp_path):
    from desktop_sr.models.registry import ModelStore

    assert window.menus.act_get_pisa.text() == "&Get PiSA-SR…"
    window.menus.act_get_pisa.trigger()
    from desktop_sr.ui.get_pisa_dialog import GetPisaDialog

    dlg = next(w for w in window.findChildren(GetPisaDialog))
    assert not dlg.online  # the tests run with HF_HUB_OFFLINE=1
    stage = tmp_path / "models" / "get-pisa"
    text = dlg.offline_text.toPlainText()
    assert dlg.offline_box.isVisible() and str(stage / "stable-diffusion-2-1-base") in text
    assert str(stage / "pisa_sr.pkl") in text and "drive.google.com" in text
    assert not dlg.btn_download.isEnabled() and not dlg.btn_import.isEnabled()

    saved = tmp_path / "Downloads" / "pisa_sr.pkl"
    saved.parent.mkdir()
    shutil.copy(tiny_model["pkl"], saved)
    dlg.base_path.setText(str(tiny_model["base"]))
    dlg.adapter_path.setText(str(saved))
    assert dlg.btn_import.isEnabled()
    with qtbot.waitSignal(window.worker.result, timeout=120000,
                          check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):  # fmt: skip
        qtbot.mouseClick(dlg.btn_import, Qt.MouseButton.LeftButton)  # runs on the worker; made default, loaded
    sha = hashlib.sha256(saved.read_bytes()).hexdigest()
    assert sha in dlg.status.text()
    (entry,) = ModelStore(tmp_path / "models").entries()
    assert entry.name == "PiSA-SR" and sha in {f.sha256 for f in entry.files}
    assert window.editor.model_info is not None and window.editor.model_info.kind == "pisa-sr"
    dlg.close()


def test_get_pisa_finds_the_two_copies_and_refuses_a_wrong_file(qtbot, tmp_path, tiny_model, monkeypatch):
    from desktop_sr.models.registry import ModelStore
    from desktop_sr.ui.get_pisa_dialog import GetPisaDialog

    monkeypatch.setattr(QMessageBox, "warning", lambda *a: None)
    stage = tmp_path / "models" / "get-pisa"
    shutil.copytree(tiny_model["base"], stage / "stable-diffusion-2-1-base")
    (stage / "pisa_sr.pkl").write_bytes(b"\x80\x04not really a checkpoint")
    dlg = GetPisaDialog(None, str(tmp_path / "models"), online=False)
    qtbot.addWidget(dlg)
    dlg.show()
    assert dlg.base_status.text().startswith("✔") and dlg.adapter_status.text().startswith("✔")
    assert not dlg.offline_box.isVisible() and dlg.btn_import.isEnabled()  # both copied where it said
    with qtbot.waitSignal(dlg.runner.failed, timeout=120000):
        dlg.start_import()
    assert "pisa_sr.pkl" in dlg.status.text()
    assert ModelStore(tmp_path / "models").entries() == []  # nothing half-imported
    assert os.path.exists(stage / "pisa_sr.pkl")  # the user's file is left alone
