"""The model manager dialog (pytest-qt, offscreen): it lists imported models, imports on its worker thread, and
its verify, remove (with confirmation), set default, cancel and download work; the main window opens it and loads
a new default."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox
from test_models_registry import fake_built_in

from desktop_sr.engine.loader import ModelSpec
from desktop_sr.models import ModelStore, OperationCancelled
from desktop_sr.models import registry as registry_mod
from desktop_sr.models.pisa_import import import_pisa
from desktop_sr.ui.model_manager_dialog import COLUMNS, ModelManagerDialog


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(root))
    monkeypatch.setattr(registry_mod, "built_in", fake_built_in)
    return root


@pytest.fixture
def messages(monkeypatch) -> dict[str, list[str]]:
    """Record message boxes instead of showing them; ``question`` answers Yes unless told otherwise."""
    seen: dict[str, list[str]] = {"warning": [], "question": [], "answer": ["yes"]}

    def question(_parent, _title, text, *a):
        seen["question"].append(text)
        return QMessageBox.StandardButton.Yes if seen["answer"][-1] == "yes" else QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: seen["warning"].append(text))
    return seen


@pytest.fixture
def src(tmp_path, tiny_model) -> dict[str, Path]:
    base = tmp_path / "src" / "sd21"
    shutil.copytree(tiny_model["base"], base)
    shutil.copy2(tiny_model["pkl"], tmp_path / "src")
    return {"base": base, "pkl": tmp_path / "src" / tiny_model["pkl"].name}


def table(dlg: ModelManagerDialog) -> list[tuple[str, ...]]:
    t = dlg.table
    return [tuple(t.item(r, c).text() for c in range(t.columnCount())) for r in range(t.rowCount())]


def open_dialog(qtbot, **kw) -> ModelManagerDialog:
    dlg = ModelManagerDialog(None, **kw)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def wait_idle(qtbot, dlg: ModelManagerDialog, timeout: int = 30000) -> None:
    qtbot.waitUntil(lambda: not dlg.runner.busy, timeout=timeout)


def test_lists_imported_models_with_status(qtbot, models, src, messages):
    store = ModelStore()
    a = import_pisa(store, src["base"], src["pkl"], name="Copied", validate=False)
    import_pisa(store, src["base"], src["pkl"], name="Referenced", mode="reference", validate=False)
    dlg = open_dialog(qtbot)
    rows = table(dlg)
    assert [dlg.table.horizontalHeaderItem(i).text() for i in range(5)] == list(COLUMNS)
    assert [r[0] for r in rows] == ["★ Real-ESRGAN x4plus (bundled)", "Copied", "Referenced"]  # the fallback default
    assert rows[1][1:] == ("pisa-sr", "5.3 MB", str(models / a.id), "ok")
    assert rows[2][3] == f"{src['base']} + {src['pkl']}" and rows[2][4] == "ok"
    assert str(models) in dlg.lbl_folder.text() and not dlg.btn_folder.isEnabled()  # fixed by the environment
    shutil.rmtree(src["base"] / "vae")
    dlg.refresh()
    assert table(dlg)[2][4] == "missing"
    dlg.select("referenced")
    assert not dlg.btn_default.isEnabled()  # a model with missing files cannot become the default
    dlg.select("bundled")
    assert not dlg.btn_remove.isEnabled()
    assert dlg.btn_verify.isEnabled() and dlg.verify_selected()  # the CLI verifies it; so does the manager
    wait_idle(qtbot, dlg, timeout=120000)
    assert "files of the built-in model are intact" in dlg.status.text(), dlg.status.text()


def test_set_default_and_remove(qtbot, models, src, messages):
    store = ModelStore()
    a = import_pisa(store, src["base"], src["pkl"], name="Alpha", validate=False)
    b = import_pisa(store, src["base"], src["pkl"], name="Beta", mode="reference", validate=False)
    dlg = open_dialog(qtbot)
    dlg.select(a.id)
    with qtbot.waitSignal(dlg.default_changed) as sig:
        dlg.btn_default.click()
    assert sig.args == [store.spec(a)] and store.default_id() == a.id
    assert table(dlg)[1][0] == "★ Alpha" and table(dlg)[0][0] == "Real-ESRGAN x4plus (bundled)"
    assert not dlg.btn_default.isEnabled()

    messages["answer"].append("no")
    dlg.btn_remove.click()
    assert (models / a.id).is_dir() and len(table(dlg)) == 3  # declined: nothing happened
    messages["answer"].append("yes")
    with qtbot.waitSignal(dlg.default_changed) as sig:
        dlg.btn_remove.click()  # the default goes: the app falls back to the bundled model
    assert sig.args == [ModelSpec(kind="bundled", name="Real-ESRGAN x4plus (bundled)")]
    assert "will be deleted" in messages["question"][-1]
    assert not (models / a.id).exists() and [r[0] for r in table(dlg)] == ["★ Real-ESRGAN x4plus (bundled)", "Beta"]
    dlg.select(b.id)
    dlg.btn_remove.click()
    assert "not deleted" in messages["question"][-1]
    assert src["pkl"].is_file() and (src["base"] / "unet" / "config.json").is_file()
    assert len(table(dlg)) == 1


def test_import_on_the_worker_thread_then_verify_finds_a_flipped_byte(qtbot, models, src, messages):
    dlg = open_dialog(qtbot)
    assert dlg.start_import(src["base"], src["pkl"], name="Fresh")
    assert dlg.progress_bar.isVisible() and not dlg.btn_import.isEnabled()
    wait_idle(qtbot, dlg)
    assert not messages["warning"], messages["warning"]
    assert [r[0] for r in table(dlg)][1:] == ["Fresh"] and table(dlg)[1][4] == "ok"
    assert dlg.selected_id() == "fresh" and "Imported Fresh" in dlg.status.text()
    assert not dlg.progress_bar.isVisible()

    weights = models / "fresh" / "base" / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0x10
    weights.write_bytes(bytes(data))
    assert dlg.verify_selected()
    wait_idle(qtbot, dlg)
    assert messages["warning"] and str(weights) in messages["warning"][-1]
    assert table(dlg)[1][4] == "modified"


def test_a_failed_import_reports_and_adds_nothing(qtbot, models, src, messages):
    shutil.rmtree(src["base"] / "tokenizer")
    dlg = open_dialog(qtbot)
    dlg.start_import(src["base"], src["pkl"])
    wait_idle(qtbot, dlg)
    assert "tokenizer/" in messages["warning"][-1] and "tokenizer/" in dlg.status.text()
    assert len(table(dlg)) == 1


def test_cancel_stops_a_running_import(qtbot, models, src, messages, monkeypatch):
    started = threading.Event()

    def slow_import(self, *a, control=None, **kw):
        started.set()
        for i in range(2000):  # a "5 GB copy" that reports progress until cancelled
            if control.cancelled:
                raise OperationCancelled(Path("sd21"))
            control.report(i, 2000, "Copying base/unet/diffusion_pytorch_model.safetensors")
            time.sleep(0.005)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(ModelStore, "import_model", slow_import)
    dlg = open_dialog(qtbot)
    dlg.start_import(src["base"], src["pkl"])
    assert started.wait(10)
    qtbot.waitUntil(lambda: dlg.progress_bar.maximum() == 1000 and dlg.progress_bar.value() > 0, timeout=10000)
    assert "diffusion_pytorch_model" in dlg.status.text()
    dlg.btn_cancel.click()
    wait_idle(qtbot, dlg)
    assert "cancelled" in dlg.status.text() and not messages["warning"]
    assert dlg.btn_import.isEnabled()


def test_closing_during_an_import_asks_and_cancels(qtbot, models, src, messages, monkeypatch):
    release = threading.Event()

    def blocking_import(self, *a, control=None, **kw):
        while not control.sleep(0.01):
            pass
        release.set()
        raise OperationCancelled(Path("sd21"))

    monkeypatch.setattr(ModelStore, "import_model", blocking_import)
    dlg = open_dialog(qtbot)
    dlg.start_import(src["base"], src["pkl"])
    messages["answer"].append("no")
    dlg.close()
    assert dlg.isVisible() and dlg.runner.busy
    messages["answer"].append("yes")
    dlg.close()
    assert release.is_set() and not dlg.runner.busy and not dlg.isVisible()


def test_download_dialog_path_imports_from_a_local_server(qtbot, models, src, messages, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy2(src["pkl"], served / "pisa_dl.pkl")
    sha = hashlib.sha256(src["pkl"].read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/pisa_dl.pkl"
        dlg = open_dialog(qtbot)
        dlg.start_download(url, sha256="f" * 64, base_dir=src["base"])
        wait_idle(qtbot, dlg)
        assert "sha256 mismatch" in messages["warning"][-1] and len(table(dlg)) == 1
        dlg.start_download(url, sha256=sha, base_dir=src["base"], name="Downloaded")
        wait_idle(qtbot, dlg)
        assert [r[0] for r in table(dlg)][1:] == ["Downloaded"] and table(dlg)[1][4] == "ok"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_changing_the_models_folder(qtbot, tmp_path, monkeypatch, src, messages):
    monkeypatch.delenv("DESKTOP_SR_MODELS_DIR", raising=False)
    monkeypatch.setattr(registry_mod, "built_in", lambda *a: None)
    first, second = tmp_path / "first", tmp_path / "second"
    import_pisa(ModelStore(first), src["base"], src["pkl"], name="In first", validate=False)
    dlg = open_dialog(qtbot, models_dir_setting=str(first))
    assert [r[0] for r in table(dlg)] == ["In first"] and dlg.btn_folder.isEnabled()
    with qtbot.waitSignal(dlg.models_dir_changed) as sig:
        dlg.set_models_dir(second)
    assert sig.args == [str(second)] and table(dlg) == [] and str(second) in dlg.lbl_folder.text()


def test_main_window_opens_the_manager_and_loads_a_new_default(qtbot, models, src, messages, tmp_path, monkeypatch):
    from desktop_sr.settings import load_settings
    from desktop_sr.ui.main_window import MainWindow

    store = ModelStore()
    entry = import_pisa(store, src["base"], src["pkl"], name="Main", validate=False)
    w = MainWindow(settings_dir=tmp_path / "cfg", load_model=False)
    qtbot.addWidget(w)
    loaded: list[ModelSpec] = []
    monkeypatch.setattr(w, "load_model", loaded.append)
    try:
        menus = {a.text().replace("&", ""): a.menu() for a in w.menuBar().actions()}
        assert w.menus.act_models in menus["Model"].actions()  # Model ▸ Models…
        dlg = w.open_model_manager()
        assert isinstance(dlg, ModelManagerDialog) and dlg.isVisible()
        dlg.select(entry.id)
        dlg.btn_default.click()
        assert loaded == [store.spec(entry)]
        w._models_dir_changed(str(tmp_path / "elsewhere"))
        assert load_settings(tmp_path / "cfg")[0].models_dir == str(tmp_path / "elsewhere")
        dlg.close()
    finally:
        w.close()
