"""One model per GPU in the app: a batch started from the window borrows the editor's model instead of loading a
second copy, the editor's renders still go between batch photos (also while the batch is paused mid-photo), and a
batch with another model on a GPU never has it loaded beside the editor's (pytest-qt, tiny random models).

A GPU is faked by making :func:`desktop_sr.editor.executor.holds_one_model` say yes for the CPU: what is tested is the
rule (never two sessions alive at once), not the memory of a card."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from test_batch_dialog import photos  # noqa: E402

from desktop_sr.editor import executor  # noqa: E402
from desktop_sr.engine import loader  # noqa: E402
from desktop_sr.engine.api import RenderParams  # noqa: E402
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.backends.pisa.session import load_pisa_session  # noqa: E402
from desktop_sr.engine.loader import ModelSpec  # noqa: E402
from desktop_sr.imaging import read_photo, to_uint8  # noqa: E402
from desktop_sr.ui import batch_worker  # noqa: E402
from desktop_sr.ui.batch_dialog import BatchDialog  # noqa: E402
from desktop_sr.ui.batch_worker import FileFinished, TileProgress  # noqa: E402
from desktop_sr.ui.images import rgb_from_qimage  # noqa: E402
from desktop_sr.ui.main_window import MainWindow  # noqa: E402

PARAMS = RenderParams(scale=2)  # the window's sliders, which the batch dialog starts from
CHANGED = RenderParams(scale=2, pix=0.6, sem=1.4)  # what the user moves to while the batch runs
TIMEOUT = 120000


@pytest.fixture(autouse=True)
def _yes_to_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A question (closing the window during a batch that a failed test left running) is answered yes, not
    left waiting offscreen for a click."""
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)


class Loads:
    """``open_session`` counted: every model loaded, and how many were alive at once (a session's ``close`` ends
    it). Both workers load through it (the editor's and the batch's, on their own threads)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = loader.open_session
        self.opened: list[ModelSpec] = []
        self.alive = self.most_alive = 0
        self._lock = threading.Lock()
        monkeypatch.setattr(loader, "open_session", self)

    def __call__(self, spec: ModelSpec, **kw: object) -> object:
        session = self.real(spec, **kw)  # type: ignore[arg-type]
        close = session.close
        with self._lock:
            self.opened.append(spec)
            self.alive += 1
            self.most_alive = max(self.most_alive, self.alive)

        def closed() -> None:
            with self._lock:
                self.alive -= 1
            close()

        session.close = closed  # type: ignore[method-assign]
        return session


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def editor_with_model(qtbot, window: MainWindow, spec: ModelSpec, photo_path: Path) -> None:
    """The editor's model loaded, its photo open and rendered exactly at PARAMS, nothing left queued."""
    window.editor.set_params(PARAMS)
    window.load_model(spec)
    qtbot.waitUntil(lambda: window.editor.model_info is not None, timeout=TIMEOUT)
    window.open_path(photo_path)
    qtbot.waitUntil(lambda: window.editor.shown_params == PARAMS and window.editor.shown == "exact", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not window.worker.busy, timeout=TIMEOUT)


def batch_dialog(window: MainWindow, inputs: Path, out: Path, spec: ModelSpec | None = None) -> BatchDialog:
    window.open_batch_dialog()
    dlg = window.batch_dialog
    assert isinstance(dlg, BatchDialog)
    if spec is not None:
        dlg.model_spec = spec
    dlg.set_inputs([inputs])
    dlg.output.setText(str(out))
    assert dlg.refresh_plan() is not None
    return dlg


def reference_batch(qtbot, tmp_path: Path, spec: ModelSpec, inputs: Path) -> dict[str, np.ndarray]:
    """What a batch with its own session writes (how every batch ran before it could borrow the editor's)."""
    out = tmp_path / "reference"
    dlg = BatchDialog(None, model_spec=spec, params=PARAMS, current_photo=None, settings_dir=tmp_path / "ref-config")
    qtbot.addWidget(dlg)
    dlg.set_inputs([inputs])
    dlg.output.setText(str(out))
    assert dlg.refresh_plan() is not None
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT):
        assert dlg.start()
    return pixels(out)


def expected_render(tiny_model, photo_path: Path, params: RenderParams) -> np.ndarray:
    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"])
    session.set_photo(read_photo(photo_path).rgb)
    return to_uint8(session.render(params))


def exact_renders(window: MainWindow, dlg: BatchDialog) -> list[tuple[RenderParams | None, bool]]:
    """Each exact result the editor put on screen: its settings, and whether the batch was still running then."""
    seen: list[tuple[RenderParams | None, bool]] = []
    window.editor.shown_changed.connect(
        lambda shown: shown == "exact" and window.editor.shown_params == CHANGED and seen.append((CHANGED, dlg.running))
    )
    return seen


def news(qtbot, dlg: BatchDialog, kind: type, check=lambda n: True):  # noqa: ANN001, ANN201
    assert dlg.worker is not None
    return qtbot.waitSignal(
        dlg.worker.result, timeout=TIMEOUT, check_params_cb=lambda _job, n: isinstance(n, kind) and check(n)
    )


def test_the_batch_borrows_the_editors_model_and_the_editor_renders_between_photos(
    qtbot, window, tiny_model, photo_path, tmp_path, monkeypatch
):
    spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    inputs = tmp_path / "in"
    photos(inputs, 6, seed=11, size=40)
    reference = reference_batch(qtbot, tmp_path, spec, inputs)
    loads = Loads(monkeypatch)
    editor_with_model(qtbot, window, spec, photo_path)
    assert loads.opened == [spec]

    out = tmp_path / "out"
    dlg = batch_dialog(window, inputs, out)
    shown = exact_renders(window, dlg)
    dlg.start()
    with news(qtbot, dlg, FileFinished):
        pass
    # the user moves a slider while the batch has five photos to go: the render is not held behind all of them
    window.editor.set_params(CHANGED)
    qtbot.waitUntil(lambda: window.editor.shown_params == CHANGED and window.editor.shown == "exact", timeout=TIMEOUT)
    assert shown and all(running for _params, running in shown), "the editor's render waited for the whole batch"
    assert np.array_equal(rgb_from_qimage(window.view.after), expected_render(tiny_model, photo_path, CHANGED))
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT) as done:
        pass
    assert done.args[0].count("written") == 6
    assert loads.opened == [spec] and loads.alive == 1  # no second copy, and the editor's is still loaded
    assert "shared" in dlg.model_label.text()  # and the dialog says so
    got = pixels(out)
    assert got.keys() == reference.keys() and all(np.array_equal(got[k], reference[k]) for k in got)
    # the editor's photo is back on its session: the next render is of its photo, not the batch's last one
    after = PARAMS.with_(pix=0.3)
    window.editor.set_params(after)
    qtbot.waitUntil(lambda: window.editor.shown_params == after and window.editor.shown == "exact", timeout=TIMEOUT)
    assert np.array_equal(rgb_from_qimage(window.view.after), expected_render(tiny_model, photo_path, after))


def test_a_batch_paused_mid_photo_lets_the_editor_render_and_finishes_the_same_after_resume(
    qtbot, window, tiny_model, photo_path, tmp_path, monkeypatch
):
    spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    inputs = tmp_path / "in"
    photos(inputs, 3, seed=12, size=64)
    reference = reference_batch(qtbot, tmp_path, spec, inputs)
    loads = Loads(monkeypatch)
    editor_with_model(qtbot, window, spec, photo_path)

    out = tmp_path / "out"
    dlg = batch_dialog(window, inputs, out)
    reported = batch_worker._Reporter.tile_progress

    def pause_after_first_tile(self, progress):  # noqa: ANN001, ANN202 - on the batch's thread, mid-photo
        reported(self, progress)
        if progress.index == 0 and not self.job.control.paused and not list(out.glob("*.png")):
            self.job.control.pause()  # as the Pause button does, while the first photo's render is under way

    monkeypatch.setattr(batch_worker._Reporter, "tile_progress", pause_after_first_tile)
    dlg.start()
    assert dlg.worker is not None
    qtbot.waitUntil(lambda: dlg.worker.control.paused, timeout=TIMEOUT)
    window.editor.set_params(CHANGED)  # without giving way, this waits for a resume that never comes
    qtbot.waitUntil(lambda: window.editor.shown_params == CHANGED and window.editor.shown == "exact", timeout=TIMEOUT)
    assert dlg.running and dlg.worker.control.paused and not list(out.glob("*.png"))
    assert np.array_equal(rgb_from_qimage(window.view.after), expected_render(tiny_model, photo_path, CHANGED))
    monkeypatch.setattr(batch_worker._Reporter, "tile_progress", reported)
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT) as done:
        dlg.toggle_pause()  # resume: the photo the editor interrupted starts again
    assert done.args[0].count("written") == 3 and loads.opened == [spec]
    got = pixels(out)
    assert got.keys() == reference.keys() and all(np.array_equal(got[k], reference[k]) for k in got)


def test_another_model_on_a_gpu_is_never_loaded_beside_the_editors(
    qtbot, window, tiny_model, photo_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(executor, "holds_one_model", lambda device: True)  # the CPU stands in for one GPU
    editor_spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    batch_spec = pisa_spec(tiny_model["base"], tiny_model["safetensors"])
    inputs = tmp_path / "in"
    photos(inputs, 3, seed=13, size=40)
    loads = Loads(monkeypatch)
    editor_with_model(qtbot, window, editor_spec, photo_path)

    out = tmp_path / "out"
    dlg = batch_dialog(window, inputs, out, spec=batch_spec)
    shown = exact_renders(window, dlg)
    dlg.start()
    with news(qtbot, dlg, TileProgress):
        pass
    window.editor.set_params(CHANGED)  # waits for the GPU: the editor's model comes back after the batch
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT) as done:
        pass
    qtbot.waitUntil(lambda: window.editor.shown_params == CHANGED and window.editor.shown == "exact", timeout=TIMEOUT)
    assert shown and not any(running for _params, running in shown)  # once the batch had given the GPU back
    assert done.args[0].count("written") == 3 and len(list(out.glob("*.png"))) == 3
    assert loads.most_alive == 1, "two models were loaded on one GPU"
    assert "set aside" in dlg.model_label.text()  # the dialog says why the editor waited
    assert loads.opened == [editor_spec, batch_spec, editor_spec] and loads.alive == 1
    assert np.array_equal(rgb_from_qimage(window.view.after), expected_render(tiny_model, photo_path, CHANGED))


def test_another_model_on_the_cpu_loads_beside_the_editors_as_before(
    qtbot, window, tiny_model, photo_path, tmp_path, monkeypatch
):
    editor_spec = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    batch_spec = pisa_spec(tiny_model["base"], tiny_model["safetensors"])
    inputs = tmp_path / "in"
    photos(inputs, 2, seed=14, size=40)
    loads = Loads(monkeypatch)
    editor_with_model(qtbot, window, editor_spec, photo_path)
    dlg = batch_dialog(window, inputs, tmp_path / "out", spec=batch_spec)
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT) as done:
        dlg.start()
    assert done.args[0].count("written") == 2 and "set aside" not in dlg.model_label.text()
    assert loads.opened == [editor_spec, batch_spec] and loads.most_alive == 2 and loads.alive == 1


def test_switching_the_editors_model_during_a_borrowing_batch_on_a_gpu_waits_for_it(
    qtbot, window, tiny_model, photo_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(executor, "holds_one_model", lambda device: True)
    first = pisa_spec(tiny_model["base"], tiny_model["pkl"])
    second = pisa_spec(tiny_model["base"], tiny_model["safetensors"])
    inputs = tmp_path / "in"
    photos(inputs, 3, seed=15, size=40)
    loads = Loads(monkeypatch)
    editor_with_model(qtbot, window, first, photo_path)
    dlg = batch_dialog(window, inputs, tmp_path / "out")
    dlg.start()
    with news(qtbot, dlg, TileProgress):
        pass
    window.load_model(second)
    with qtbot.waitSignal(dlg.finished_batch, timeout=TIMEOUT) as done:
        pass
    qtbot.waitUntil(lambda: window.editor.model_info is not None and loads.opened[-1] == second, timeout=TIMEOUT)
    assert done.args[0].count("written") == 3
    assert loads.opened == [first, second] and loads.most_alive == 1
