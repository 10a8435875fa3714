"""Files that change under the running app: the open photo deleted or replaced before export, the export folder
removed, the model's drive gone while the model is loaded. Each time: a clear message where one is due, the app keeps
running, and nothing already written is touched. A real tiny Compact upscaler keeps each render to milliseconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_sr.editor.jobs import Exported, ModelLoaded
from desktop_sr.imaging import SaveOptions
from desktop_sr.ui.images import rgb_from_qimage

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")
from safetensors.torch import save_file  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402

from desktop_sr.engine.backends.spandrel.family import community_spec  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions on a busy machine: one thread is far faster
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model(tmp_path) -> Path:
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=2)
    path = tmp_path / "drive" / "models" / "compact_x2.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def photo(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def exact(window) -> bool:  # type: ignore[no-untyped-def]
    e = window.editor
    return not e.busy and e.shown.name == "EXACT" and e.shown_params == window.controls.params()


def start(qtbot, window, model: Path, source: Path) -> np.ndarray:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.worker.result, timeout=60000,
                          check_params_cb=lambda job, r: isinstance(r, ModelLoaded)):  # fmt: skip
        window.load_model(community_spec(model))
    window.open_path(source)
    qtbot.waitUntil(lambda: window.editor.photo is not None and exact(window), timeout=60000)
    return rgb_from_qimage(window.view.after)


def export(qtbot, window, path: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.worker.result, timeout=60000,
                          check_params_cb=lambda job, r: isinstance(r, Exported)):  # fmt: skip
        window.export_to(path, SaveOptions(format="png"))


def test_the_open_photo_deleted_or_replaced_before_export(qtbot, window, model, tmp_path):
    source = photo(tmp_path / "shot.png", 1)
    shown = start(qtbot, window, model, source)
    assert shown.shape == (96, 128, 3)  # x4 (the network's x2, then the upscaler session's resample)

    source.unlink()  # deleted (a card taken out, a cleanup) while the photo is open
    export(qtbot, window, tmp_path / "after_delete.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "after_delete.png").convert("RGB")), shown)

    photo(source, 2)  # another photo under the same name
    export(qtbot, window, tmp_path / "after_replace.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "after_replace.png").convert("RGB")), shown)
    assert not window.errors  # the result on screen is what was exported: no question, no error

    # The export folder removed under the save: one message naming it; the app goes on, the earlier files stay.
    kept = {p: p.read_bytes() for p in tmp_path.glob("after_*.png")}
    gone = tmp_path / "usb"
    gone.mkdir()
    shutil.rmtree(gone)
    window.export_to(gone / "x.png", SaveOptions(format="png"))
    qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=30000)
    assert str(gone) in window.errors[0][1] and "does not exist" in window.errors[0][1]
    print(f"\nthe export folder gone: {window.errors[0][1]}")
    assert {p: p.read_bytes() for p in tmp_path.glob("after_*.png")} == kept
    window.controls.sem.spin.setValue(0.6)  # still working
    qtbot.waitUntil(lambda: exact(window), timeout=60000)


def test_the_models_drive_disappears_while_a_model_is_loaded(qtbot, window, model, tmp_path):
    source = photo(tmp_path / "shot.png", 3)
    start(qtbot, window, model, source)
    shutil.rmtree(model.parents[1])  # the drive with the models is gone
    window.controls.sem.spin.setValue(0.7)  # the loaded model keeps rendering
    qtbot.waitUntil(lambda: exact(window), timeout=60000)
    assert not window.errors
    window.load_model(community_spec(model))  # choosing it again: a clear message, the loaded model stays
    qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=60000)
    assert model.name in window.errors[0][1] or str(model.parent) in window.errors[0][1], window.errors[0][1]
    assert "Traceback" not in window.errors[0][1]
    print(f"\nthe models drive gone: {window.errors[0][1]}")
    qtbot.waitUntil(lambda: not window.editor.busy, timeout=30000)
    window.controls.sem.spin.setValue(1.3)
    qtbot.waitUntil(lambda: exact(window), timeout=60000)
    assert window.editor.model_info is not None


def test_two_windows_closing_keep_each_others_settings(qtbot, tmp_path, monkeypatch):
    """Two windows open at once on one settings file: what the first saved on closing survives the second's close,
    and each one's recent photos are kept (the second would otherwise write its stale copy over the first)."""
    from desktop_sr.settings import read_settings
    from desktop_sr.ui.main_window import MainWindow

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    cfg = tmp_path / "cfg"
    first = MainWindow(settings_dir=cfg, load_model=False)
    second = MainWindow(settings_dir=cfg, load_model=False)
    qtbot.addWidget(first)
    qtbot.addWidget(second)
    first.menus.set_compare_mode("side")
    first.settings.add_recent("/photos/first.jpg")
    second.controls.pix.slider.setValue(7)
    second.settings.add_recent("/photos/second.jpg")
    first.close()
    second.close()
    saved, problem = read_settings(cfg)
    assert problem is None
    assert saved.compare_mode == "side" and saved.pix == 0.35
    assert set(saved.recent_files) == {"/photos/first.jpg", "/photos/second.jpg"}
