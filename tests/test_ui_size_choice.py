"""The Scale control's target sizes in the window, the batch dialog and the export dialog (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtWidgets import QMessageBox

from desktop_sr.editor.jobs import Exported, ModelLoaded, Rendered
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.target_size import TargetKind, TargetSize
from desktop_sr.ui.export_dialog import ExportDialog
from desktop_sr.ui.main_window import MainWindow
from desktop_sr.ui.size_choice import SizeChoice, TargetDialog


def result_of(qtbot, worker, kind: type, timeout: int = 60000, check=lambda r: True):
    """Wait for the worker to deliver a result of this type (as tests/test_ui_app.py does)."""
    return qtbot.waitSignal(
        worker.result, timeout=timeout, check_params_cb=lambda job, r: isinstance(r, kind) and check(r)
    )


DATA = Path(__file__).parent / "data"


def test_a_target_picks_the_model_scale_for_the_photo(qtbot):
    choice = SizeChoice(default=4)
    qtbot.addWidget(choice)
    assert choice.scale() == 4 and choice.target() is None
    choice.set_photo_size((128, 96))
    with qtbot.waitSignal(choice.size_changed):
        choice.set_target(TargetSize.long_edge(300))
    assert choice.scale() == 3 and choice.plan().size == (300, 225) and not choice.problem()
    assert choice.currentText() == "300 px long edge"
    with qtbot.waitSignal(choice.problem_changed):
        choice.set_photo_size((640, 480))  # the same target for a larger photo would downscale it
    assert "would downscale" in choice.problem() and choice.plan() is None
    with qtbot.waitSignal(choice.size_changed):
        choice.setCurrentIndex(choice.findData(2))
    assert choice.scale() == 2 and choice.target() is None and not choice.problem()


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        (TargetKind.LONG_EDGE, (6000,), TargetSize.long_edge(6000)),
        (TargetKind.FIT, (3840, 2160), TargetSize.fit(3840, 2160)),
        (TargetKind.PRINT, (12.0, 8.0, "in", 240), TargetSize.print_size(12, 8, "in", 240)),
    ],
)
def test_the_target_dialog_gives_what_was_typed(qtbot, kind, values, expected):
    dlg = TargetDialog(kind)
    qtbot.addWidget(dlg)
    dlg.width.setValue(values[0])
    if len(values) > 1:
        dlg.height.setValue(values[1])
    if kind is TargetKind.PRINT:
        dlg.unit.setCurrentIndex(dlg.unit.findData(values[2]))
        dlg.dpi.setValue(values[3])
    assert dlg.value() == expected


def test_export_dialog_carries_the_size_and_the_dpi(qtbot, tmp_path):
    target = TargetSize.print_size(30, 20, "cm", 300)
    dlg = ExportDialog(None, tmp_path / "bird.dng", 3, str(tmp_path), "tiff", 16, target=target, size=(3543, 2362))
    qtbot.addWidget(dlg)
    options = dlg.options()
    assert (options.size, options.dpi, options.bit_depth, options.format) == ((3543, 2362), 300.0, 16, "tiff")
    assert dlg.target().name == "bird_print30x20cm.tif" and not dlg.dpi_policy.isEnabled()
    plain = ExportDialog(None, tmp_path / "a.jpg", 4, str(tmp_path))
    qtbot.addWidget(plain)
    plain.dpi_policy.setCurrentIndex(1)
    assert plain.options().dpi_policy == "keep-dpi" and plain.options().size is None


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a: None)
    w = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_window_renders_at_the_targets_scale_and_exports_exactly_the_target(qtbot, window, tiny_model, tmp_path):
    src = tmp_path / "photo.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 48, 40)).save(src, dpi=(100, 100))
    with result_of(qtbot, window.worker, ModelLoaded, 60000):
        window.load_model(pisa_spec(tiny_model["base"], tiny_model["pkl"]))
    window.controls.scale.set_target(TargetSize.long_edge(100))  # before the photo: the plan follows it
    with result_of(qtbot, window.worker, Rendered, 60000, check=lambda r: r.region is None):
        window.open_path(src)
    qtbot.waitUntil(lambda: window.view.before is not None and window.view.before.width() == 144, timeout=60000)
    assert window.controls.params().scale == 3  # 100 / 48 needs x3
    assert "100×83 (×3)" in window.status.lbl_sizes.text()
    plan = window.controls.scale.plan()
    dlg = ExportDialog(window, src, 3, str(tmp_path), target=window.controls.scale.target(), size=plan.size)
    out = tmp_path / "photo_100px.png"
    with result_of(qtbot, window.worker, Exported, 60000):
        window.export_to(out, dlg.options())
    with Image.open(out) as img:
        assert img.size == (100, 83)
        assert img.info["dpi"][0] == pytest.approx(100 * 100 / 48, abs=0.05)  # keep-print-size by the true ratio


def test_the_batch_dialog_plans_a_target(qtbot, tmp_path):
    from desktop_sr.engine.api import RenderParams
    from desktop_sr.ui.batch_dialog import BatchDialog

    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(DATA / "astronaut_64.png").save(folder / "a.png")
    dlg = BatchDialog(None, params=RenderParams(scale=2), current_photo=None, model_spec=None,
                      settings_dir=tmp_path / "config")  # fmt: skip
    qtbot.addWidget(dlg)
    dlg.add_paths([folder])
    dlg.output.setText(str(tmp_path / "out"))
    dlg.scale.set_target(TargetSize.print_size(12, 8, "in", 240))
    settings = dlg.batch_settings()
    assert settings.target == TargetSize.print_size(12, 8, "in", 240) and settings.save.dpi == 240
    assert [i.target.name for i in make_plan_for(settings, folder)] == ["a_print12x8in.png"]


def make_plan_for(settings, folder):
    from desktop_sr.batch import make_plan

    return make_plan([folder], settings).items
