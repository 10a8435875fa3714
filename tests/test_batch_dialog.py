"""The batch dialog (pytest-qt, offscreen): plan preview with conflicts, template errors, seeding from the window,
and a cancel that stops the worker within one tile without leaving a partial file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from device_target import TARGET
from PySide6.QtCore import Qt  # noqa: E402

from desktop_sr.engine.api import RenderParams  # noqa: E402
from desktop_sr.engine.backends.bundled import bundled_spec
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.tile_settings import TileSettings  # noqa: E402
from desktop_sr.ui.batch_dialog import CONFLICT_COLOUR, BatchDialog  # noqa: E402
from desktop_sr.ui.batch_worker import TileProgress  # noqa: E402


def photos(folder: Path, n: int, seed: int, size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


def make_dialog(qtbot, tmp_path, spec=None, **kw) -> BatchDialog:
    kw.setdefault("params", RenderParams(pix=0.7, sem=1.3, realism=250, scale=2))
    kw.setdefault("current_photo", None)
    dlg = BatchDialog(None, model_spec=spec, settings_dir=tmp_path / "config", **kw)
    qtbot.addWidget(dlg)
    return dlg


def test_preview_highlights_conflicts_and_seeds_from_the_window(qtbot, tmp_path):
    srcs = photos(tmp_path / "in", 3, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img1_x2.png").write_bytes(b"earlier export")
    spec = pisa_spec(tmp_path / "sd", tmp_path / "l.pkl", name="tiny")
    dlg = make_dialog(qtbot, tmp_path, spec, current_photo=srcs[2])
    assert (dlg.pix.value(), dlg.sem.value(), dlg.realism.value(), dlg.scale.currentData()) == (0.7, 1.3, 250, 2)
    qtbot.mouseClick(dlg.btn_add_current, Qt.MouseButton.LeftButton)
    dlg.add_paths([tmp_path / "in"])
    dlg.output.setText(str(out))
    dlg.conflict.setCurrentIndex(2)  # keep both: "name (1)"
    plan = dlg.refresh_plan()
    assert plan is not None and [i.source.name for i in plan.items] == ["img2.png", "img0.png", "img1.png"]
    rows = {dlg.table.item(r, 0).text(): r for r in range(dlg.table.rowCount())}
    r = rows[str(srcs[1].absolute())]
    assert dlg.table.item(r, 1).text() == "img1_x2 (1).png" and "exists" in dlg.table.item(r, 2).text()
    assert dlg.table.item(r, 0).background().color() == CONFLICT_COLOUR
    r0 = rows[str(srcs[0].absolute())]
    assert dlg.table.item(r0, 0).background().color() != CONFLICT_COLOUR
    assert "1 conflict" in dlg.plan_label.text() and dlg.btn_start.isEnabled()


def test_invalid_template_blocks_start_with_a_clear_message(qtbot, tmp_path):
    photos(tmp_path / "in", 1, seed=2)
    dlg = make_dialog(qtbot, tmp_path, pisa_spec(tmp_path / "sd", tmp_path / "l.pkl"))
    dlg.set_inputs([tmp_path / "in"])
    dlg.output.setText(str(tmp_path / "out"))
    dlg.template.setText("{stem}/{scale}")
    assert dlg.refresh_plan() is None
    assert "path separator" in dlg.plan_label.text() and not dlg.btn_start.isEnabled()
    assert dlg.start() is False and dlg.worker is None and not (tmp_path / "out").exists()
    dlg.template.setText("{stem}_{pix}")
    assert dlg.refresh_plan() is not None and dlg.btn_start.isEnabled()


def test_without_a_model_start_stays_disabled(qtbot, tmp_path):
    photos(tmp_path / "in", 1, seed=3)
    dlg = make_dialog(qtbot, tmp_path, None)
    dlg.set_inputs([tmp_path / "in"])
    dlg.output.setText(str(tmp_path / "out"))
    assert dlg.refresh_plan() is not None and not dlg.btn_start.isEnabled()
    assert "model" in dlg.btn_start.toolTip().lower()


def test_open_output_folder_uses_the_desktop(qtbot, tmp_path, monkeypatch):
    from desktop_sr.ui import batch_dialog

    opened = []
    monkeypatch.setattr(batch_dialog.QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    dlg = make_dialog(qtbot, tmp_path)
    dlg.output.setText(str(tmp_path))
    assert dlg.open_output_folder() and opened[0].toLocalFile() == str(tmp_path)


def test_cancel_from_the_dialog_stops_within_one_tile_and_leaves_no_partial_file(qtbot, tmp_path, tiny_model):
    srcs = photos(tmp_path / "in", 3, seed=4)
    out = tmp_path / "out"
    spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    small = TileSettings(unet_tile=8, unet_overlap=2, vae_tile=16, vae_overlap=4)  # many tiles
    dlg = make_dialog(qtbot, tmp_path, spec, params=RenderParams(scale=4), device=TARGET.device, tiles=small)
    dlg.set_inputs([tmp_path / "in"])
    dlg.output.setText(str(out))
    assert dlg.refresh_plan() is not None
    qtbot.mouseClick(dlg.btn_start, Qt.MouseButton.LeftButton)
    worker = dlg.worker
    assert worker is not None and dlg.running and not dlg.btn_start.isEnabled()

    # Cancel in the middle of the second photo's UNet tiles.
    with qtbot.waitSignal(
        worker.result,
        timeout=60000,
        check_params_cb=lambda _job, news: (
            isinstance(news, TileProgress)
            and (p := news.progress).index == 1
            and p.stage.startswith("unet")
            and p.tile_done == 2
        ),
    ):
        pass
    assert dlg.current_label.text().startswith("2 of 3: img1.png")
    with qtbot.waitSignal(dlg.finished_batch, timeout=60000) as done:
        qtbot.mouseClick(dlg.btn_cancel, Qt.MouseButton.LeftButton)
    summary = done.args[0]
    assert summary.cancelled and [r.status for r in summary.results] == ["written", "cancelled"]
    assert worker.tiles_after_cancel <= 1  # counted on the worker thread as the engine reported them
    # The first photo's result is whole; the cancelled one left nothing, not even a temp file.
    results = sorted(p.name for p in out.iterdir() if not p.name.startswith(".desktop-sr-batch"))
    assert results == ["img0_x4.png"]
    with Image.open(out / "img0_x4.png") as im:
        assert im.size == (128, 128)
    assert dlg.worker is None and dlg.current_label.text() == "Cancelled."
    assert dlg.btn_start.isEnabled() and not dlg.btn_cancel.isEnabled()
    assert "1 written" in dlg.summary_text.toPlainText()
    # Planning again shows the finished photo as done and the rest still to do.
    plan = dlg.refresh_plan()
    assert plan is not None and [i.action for i in plan.items] == ["done", "write", "write"]
    assert srcs[0].exists()


def test_the_main_window_opens_the_dialog_with_its_photo_and_sliders(qtbot, tmp_path, monkeypatch):
    from desktop_sr.ui.main_window import MainWindow

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    window = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(window)
    try:
        window.editor.photo_path = photos(tmp_path / "in", 1, seed=5)[0]
        window.editor.set_params(RenderParams(pix=0.4, sem=1.6, scale=3))
        window.open_batch_dialog()
        (dlg,) = window.findChildren(BatchDialog)
        assert dlg.isVisible() and not dlg.isModal()  # the window stays usable
        assert (dlg.pix.value(), dlg.sem.value(), dlg.scale.currentData()) == (0.4, 1.6, 3)
        assert dlg.btn_add_current.isEnabled() and dlg.current_photo == window.editor.photo_path
        dlg.close()
    finally:
        window.close()


def test_one_batch_dialog_and_realism_follows_the_model(qtbot, tmp_path, monkeypatch):
    from desktop_sr.engine.api import ModelInfo
    from desktop_sr.ui.main_window import MainWindow

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    window = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(window)
    try:
        window.editor.model_spec = bundled_spec()
        window.editor.model_info = ModelInfo("Real-ESRGAN x4plus (bundled)", "bundled", "cpu", "fp32", False, False)
        window.open_batch_dialog()
        window.open_batch_dialog()  # brings the open one to the front instead of a second batch
        (dlg,) = window.findChildren(BatchDialog)
        assert not dlg.realism.isEnabled() and "diffusion model" in dlg.realism.toolTip()
        assert dlg.model_label.text() == "Model: Real-ESRGAN x4plus (bundled)"
        assert dlg.color_fix.currentText() == "AdaIN (match colours)"
        dlg._set_running(False)
        assert not dlg.realism.isEnabled()  # re-enabling the form after a run keeps it off
    finally:
        window.close()


def test_closing_the_window_during_a_batch_asks_then_cancels_cleanly(qtbot, tmp_path, tiny_model, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from desktop_sr.ui.main_window import MainWindow

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or answers.pop(0))
    photos(tmp_path / "in", 3, seed=6)
    out = tmp_path / "out"
    window = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(window)
    window.show()
    window.editor.model_spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    window.settings.device = "cpu"
    window.open_batch_dialog()
    dlg = window.batch_dialog
    dlg.tiles = TileSettings(unet_tile=8, unet_overlap=2, vae_tile=16, vae_overlap=4)
    dlg.set_inputs([tmp_path / "in"])
    dlg.output.setText(str(out))
    assert dlg.refresh_plan() is not None
    dlg.start()
    worker = dlg.worker
    unet_tile = lambda _job, news: isinstance(news, TileProgress) and news.progress.stage.startswith("unet")  # noqa: E731
    with qtbot.waitSignal(worker.result, timeout=60000, check_params_cb=unet_tile):
        pass
    assert not window.close()  # "No": the window and the batch go on
    assert window.isVisible() and dlg.worker is worker and len(asked) == 1
    assert window.close()  # "Yes": cancelled within a tile, the worker stopped, then the window closes
    assert not window.isVisible() and not worker.is_running()
    leftovers = [p.name for p in out.iterdir() if not p.name.startswith(".desktop-sr-batch")] if out.exists() else []
    for name in leftovers:  # whole results only: every file there opens at full size
        with Image.open(out / name) as im:
            assert im.size == (128, 128)
    assert len(leftovers) < 3
