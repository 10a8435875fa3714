"""The model store: import (copy and reference), verify (a flipped byte is found and named), remove (copies
deleted, originals never), the default model, and imports that are interrupted (exception, cancel, SIGKILL) never
leaving a usable half model or stray files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.control import Control
from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.loader import ModelSpec
from desktop_sr.models import (
    INCOMPLETE,
    MISSING,
    MODIFIED,
    OK,
    ModelStore,
    OperationCancelled,
    StoreError,
    UnknownModel,
    models_dir,
)
from desktop_sr.models import registry as registry_mod
from desktop_sr.models.paths import default_models_dir
from desktop_sr.models.pisa_import import import_pisa

ROOT = Path(__file__).resolve().parents[1]


def fake_built_in(*_args):
    """The bundled model as present, whether or not its weights are installed on this machine."""
    from desktop_sr.engine.backends.bundled import FAMILY, bundled_spec
    from desktop_sr.engine.families import BuiltIn

    return FAMILY, BuiltIn("bundled", "Real-ESRGAN x4plus (bundled)", bundled_spec())


def tree_hashes(folder: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under ``folder``: proves sources are never touched."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def store_files(root: Path) -> list[str]:
    """Every file and folder in the store except the registry and its lock."""
    skip = {"registry.json", ".registry.lock"}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name not in skip)


@pytest.fixture
def src(tmp_path, tiny_model) -> dict[str, Path]:
    """A private copy of the tiny model (the session fixture is shared, so tests that change files use this)."""
    base = tmp_path / "src" / "sd21"
    shutil.copytree(tiny_model["base"], base)
    lora = tmp_path / "src" / "lora"
    lora.mkdir()
    for key in ("pkl", "safetensors"):
        shutil.copy2(tiny_model[key], lora)
    shutil.copy2(tiny_model["safetensors"].with_suffix(".json"), lora)
    return {"base": base, "pkl": lora / tiny_model["pkl"].name, "safetensors": lora / tiny_model["safetensors"].name}


@pytest.fixture
def store(tmp_path, monkeypatch) -> ModelStore:
    monkeypatch.setattr(registry_mod, "built_in", lambda *a: None)
    return ModelStore(tmp_path / "models")


def test_import_by_copy_is_complete_loads_and_leaves_the_sources_alone(store, src):
    before = tree_hashes(src["base"].parent)
    seen: list[tuple[int, int]] = []
    entry = import_pisa(
        store, src["base"], src["pkl"], name="PiSA tiny", control=Control(lambda d, t, _l: seen.append((d, t)))
    )
    assert entry.id == "pisa-tiny" and entry.storage_label == "copy" and entry.kind == "pisa-sr"
    folder = store.root / entry.id
    assert (folder / "base" / "unet" / "config.json").is_file() and (folder / "adapter" / src["pkl"].name).is_file()
    recorded = {(f.role, f.path): f.sha256 for f in entry.files}
    for rel in ("unet/diffusion_pytorch_model.safetensors", "vae/config.json", "tokenizer/vocab.json"):
        assert recorded[("base", rel)] == hashlib.sha256((src["base"] / rel).read_bytes()).hexdigest()
    assert recorded[("adapter", src["pkl"].name)] == hashlib.sha256(src["pkl"].read_bytes()).hexdigest()
    assert seen[-1][0] == seen[-1][1] == entry.size > 0
    assert tree_hashes(src["base"].parent) == before  # read only
    [row] = store.rows()
    assert (row.status, row.storage, row.location, row.size) == (OK, "copy", str(folder), entry.size)

    spec = store.spec(entry)
    assert spec == pisa_spec(folder / "base", folder / "adapter" / src["pkl"].name, "PiSA tiny")
    shutil.rmtree(src["base"].parent)  # the copy must stand on its own
    from desktop_sr.engine.loader import open_session

    session = open_session(spec, device=TARGET.device)
    try:
        session.set_photo(np.full((16, 16, 3), 0.5, dtype=np.float32))
        assert session.render(RenderParams()).shape == (64, 64, 3)
    finally:
        session.close()


def test_import_by_reference_copies_nothing_and_remove_keeps_the_originals(store, src):
    before = tree_hashes(src["base"].parent)
    entry = import_pisa(store, src["base"], src["safetensors"], mode="reference")
    assert entry.storage_label == "reference" and not (store.root / entry.id).exists()
    assert {f.path for f in entry.files if f.role == "adapter"} == {src["safetensors"].name, "pisa_tiny.json"}
    assert store.spec(entry) == pisa_spec(src["base"], src["safetensors"], entry.name)
    assert store.verify(entry.id).ok
    result = store.remove(entry.id)
    assert result.deleted is None and set(result.kept) == {src["base"], src["safetensors"]}
    assert tree_hashes(src["base"].parent) == before and store.rows() == []


def test_reference_base_with_a_copied_adapter(store, src):
    entry = import_pisa(store, src["base"], src["pkl"], mode="reference", adapter_mode="copy")
    assert store.role_path(entry, "base") == src["base"]
    assert store.role_path(entry, "adapter") == store.root / entry.id / "adapter" / src["pkl"].name
    assert store.quick_status(entry) == (OK, "")
    result = store.remove(entry.id)
    assert result.deleted == store.root / entry.id and not result.deleted.exists()
    assert result.kept == (src["base"],) and (src["base"] / "unet" / "config.json").is_file()


def test_verify_finds_a_flipped_byte_and_names_the_file(store, src):
    entry = import_pisa(store, src["base"], src["pkl"])
    assert store.verify(entry.id).ok
    victim = store.root / entry.id / "base" / "unet" / "diffusion_pytorch_model.safetensors"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and time: only the hash can tell
    assert store.quick_status(store.resolve(entry.id))[0] == OK
    report = store.verify(entry.id)
    assert not report.ok and [p for p, _ in report.problems] == [victim]
    assert "content changed" in report.problems[0][1] and str(victim) in report.summary()
    status, detail = store.quick_status(store.resolve(entry.id))
    assert status == MODIFIED and "diffusion_pytorch_model.safetensors" in detail  # remembered until fixed
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    assert store.verify(entry.id).ok
    assert store.quick_status(store.resolve(entry.id)) == (OK, "")  # the new file time is recorded


def test_touched_file_shows_modified_until_verify_clears_it(store, src):
    entry = import_pisa(store, src["base"], src["pkl"], mode="reference")
    os.utime(src["base"] / "vae" / "config.json")
    assert store.quick_status(store.resolve(entry.id))[0] == MODIFIED
    assert store.verify(entry.id).ok
    assert store.quick_status(store.resolve(entry.id))[0] == OK


def test_missing_file_is_reported_and_such_a_default_is_not_used(store, src):
    entry = import_pisa(store, src["base"], src["pkl"], mode="reference", make_default=True)
    assert store.default_spec() == store.spec(entry)
    (src["base"] / "tokenizer" / "vocab.json").unlink()
    status, detail = store.quick_status(store.resolve(entry.id))
    assert status == MISSING and "vocab.json" in detail
    report = store.verify(entry.id)
    assert report.problems == [(src["base"] / "tokenizer" / "vocab.json", "missing")]
    assert store.default_spec() is None  # the app falls back to the bundled model
    with pytest.raises(StoreError, match="cannot be the default"):
        store.set_default(entry.id)


def test_default_selection(store, src, monkeypatch):
    a = import_pisa(store, src["base"], src["pkl"], name="Alpha")
    b = import_pisa(store, src["base"], src["pkl"], name="Alpha")
    assert (a.id, b.id) == ("alpha", "alpha-2")
    assert store.default_id() is None and store.default_spec() is None
    assert store.set_default("alpha-2") == "alpha-2"
    assert store.default_spec() == store.spec(b)
    assert [r.id for r in store.rows() if r.is_default] == ["alpha-2"]
    with pytest.raises(StoreError, match="several models have this name"):
        store.set_default("Alpha")
    with pytest.raises(UnknownModel, match="alpha, alpha-2"):
        store.set_default("nope")
    with pytest.raises(StoreError, match="not installed"):
        store.set_default("bundled")
    monkeypatch.setattr(registry_mod, "built_in", fake_built_in)
    assert store.set_default("bundled") == "bundled"
    assert store.default_spec() == ModelSpec(kind="bundled", name="Real-ESRGAN x4plus (bundled)")
    with pytest.raises(StoreError, match="cannot be removed"):
        store.remove("bundled")
    store.set_default("alpha")
    store.remove("alpha")
    assert store.default_id() is None and store.default_spec() is None
    assert [r.id for r in store.rows() if r.is_default] == ["bundled"]  # what the app falls back to
    store.set_default("alpha-2")
    store.set_default(None)
    assert store.default_spec() is None


def test_module_default_spec_follows_the_environment_and_never_raises(tmp_path, src, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "env-models"))
    assert models_dir() == tmp_path / "env-models"
    store = ModelStore()
    entry = import_pisa(store, src["base"], src["pkl"], mode="reference", make_default=True)
    assert registry_mod.default_spec() == store.spec(entry)
    store.registry_path.write_text("{ damaged")
    assert registry_mod.default_spec() is None
    with pytest.raises(StoreError, match="registry.json.*damaged"):
        store.rows()


def test_models_dir_setting_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("DESKTOP_SR_MODELS_DIR", raising=False)
    monkeypatch.setenv("DESKTOP_SR_CONFIG_DIR", str(tmp_path / "cfg"))
    assert models_dir() == default_models_dir()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "settings.json").write_text(json.dumps({"models_dir": str(tmp_path / "elsewhere")}))
    assert models_dir() == tmp_path / "elsewhere"
    assert models_dir(setting="") == default_models_dir()  # the GUI's own value wins over the file
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "env"))
    assert models_dir() == tmp_path / "env"
    assert not (tmp_path / "env").exists()  # looking never creates folders


def test_missing_subfolders_are_named_in_one_error(store, src):
    shutil.rmtree(src["base"] / "text_encoder")
    (src["base"] / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelError) as err:
        import_pisa(store, src["base"], src["pkl"])
    msg = str(err.value)
    assert msg.startswith(str(src["base"])) and "text_encoder/" in msg and "vae/ weights" in msg
    assert not store.root.exists()  # refused before anything was written
    with pytest.raises(ModelError, match="base model folder not found"):
        import_pisa(store, src["base"] / "nope", src["pkl"])


def test_bad_adapters_are_refused_before_anything_is_copied(store, src, tmp_path):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"not a pickle" * 100)
    with pytest.raises(ModelError) as err:
        import_pisa(store, src["base"], bad)
    assert err.value.path == bad
    src["safetensors"].with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="manifest"):
        import_pisa(store, src["base"], src["safetensors"])
    with pytest.raises(ModelError, match="unknown adapter type"):
        import_pisa(store, src["base"], src["base"] / "model_index.json")
    assert not store.root.exists() or store.entries() == []


def test_only_the_files_the_engine_loads_are_copied(store, src):
    unet = src["base"] / "unet"
    (src["base"] / "v2-1_512-ema-pruned.ckpt").write_bytes(b"x" * 1000)
    (unet / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x" * 1000)
    (unet / "diffusion_pytorch_model.bin").write_bytes(b"x" * 1000)
    (unet / "diffusion_flax_model.msgpack").write_bytes(b"x" * 1000)
    (src["base"] / ".git").mkdir()
    (src["base"] / ".git" / "HEAD").write_text("ref")
    entry = import_pisa(store, src["base"], src["pkl"])
    copied = {f.path for f in entry.files if f.role == "base"}
    assert "unet/diffusion_pytorch_model.safetensors" in copied and "model_index.json" in copied
    unet_junk = {f"unet/{n}" for n in ("diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin",
                                       "diffusion_flax_model.msgpack")}  # fmt: skip
    assert not copied & ({"v2-1_512-ema-pruned.ckpt", ".git/HEAD"} | unet_junk)


def test_an_exception_mid_copy_leaves_no_entry_and_no_stray_files(store, src):
    def explode(done: int, total: int, _label: str) -> None:
        if done > total // 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the CLI, halfway through the UNet weights

    before = tree_hashes(src["base"].parent)
    with pytest.raises(KeyboardInterrupt):
        import_pisa(store, src["base"], src["pkl"], control=Control(explode))
    assert store.entries() == [] and store.rows() == []
    assert store_files(store.root) == []
    assert tree_hashes(src["base"].parent) == before


def test_cancel_mid_copy_and_a_failing_registry_write_leave_nothing(store, src, monkeypatch):

    def progress(done: int, total: int, _label: str) -> None:
        if done > total // 3:
            control.cancel()

    control = Control(progress)
    with pytest.raises(OperationCancelled):
        import_pisa(store, src["base"], src["pkl"], control=control)
    assert store_files(store.root) == []

    def disk_full(self: ModelStore, reg: object) -> None:
        raise StoreError(self.registry_path, "cannot write: No space left on device")

    monkeypatch.setattr(ModelStore, "_write", disk_full)
    with pytest.raises(StoreError, match="No space"):
        import_pisa(store, src["base"], src["pkl"])
    monkeypatch.undo()
    assert store_files(store.root) == []  # the renamed folder was removed again: never a model without an entry


def test_not_enough_space_is_refused_up_front(store, src, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**6, 10**6 - 100, 100))
    with pytest.raises(StoreError, match="not enough free space.*by reference"):
        import_pisa(store, src["base"], src["pkl"])
    assert store_files(store.root) == []


KILL_SCRIPT = """
import os, signal, sys
from desktop_sr.engine.control import Control
from desktop_sr.models import ModelStore
from desktop_sr.models.pisa_import import import_pisa
from desktop_sr.models import registry
store = ModelStore(sys.argv[1])
when = sys.argv[4]
def progress(done, total, label):
    if when == "copy" and done > total // 2:
        os.kill(os.getpid(), signal.SIGKILL)
if when == "register":
    def killed(self, reg):
        os.kill(os.getpid(), signal.SIGKILL)
    registry.ModelStore._write = killed
import_pisa(store, sys.argv[2], sys.argv[3], name="Killed", validate=False, control=Control(progress))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_copy_leaves_nothing_usable_and_the_next_import_cleans_up(store, src):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(store.root), str(src["base"]),
                           str(src["pkl"]), "copy"], cwd=ROOT, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert store.entries() == [] and store.rows() == [] and store.default_spec() is None
    leftovers = list((store.root / ".staging").iterdir())
    assert any(p.is_dir() for p in leftovers)  # the killed import's staging folder, half full
    assert store.cleanup() and not (store.root / ".staging").exists()
    entry = import_pisa(store, src["base"], src["pkl"], name="Second try")
    assert store.verify(entry.id).ok
    assert [p for p in store_files(store.root) if not p.startswith(entry.id)] == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_between_rename_and_registry_write_shows_an_incomplete_model(store, src):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(store.root), str(src["base"]),
                           str(src["pkl"]), "register"], cwd=ROOT, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert store.entries() == []
    [row] = store.rows()
    assert (row.id, row.name, row.status, row.usable) == ("killed", "Killed", INCOMPLETE, False)
    with pytest.raises(UnknownModel):
        store.set_default("killed")
    result = store.remove("killed")
    assert result.deleted == store.root / "killed" and store.rows() == []
    assert store_files(store.root) == []


def test_the_registry_is_torch_free_and_qt_free():
    code = "import sys, desktop_sr.models.registry, desktop_sr.models.download, desktop_sr.cli.models; " \
           "print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_cli_import_list_verify_default_remove(tmp_path, src, capsys, monkeypatch):
    from desktop_sr.cli import ExitCode, main

    monkeypatch.setattr(registry_mod, "built_in", lambda *a: None)
    root = tmp_path / "cli-models"
    m = ["models", "--dir", str(root)]
    assert (
        main([*m, "import", str(src["base"]), str(src["pkl"]), "--name", "Tiny", "--default", "--quiet"]) == ExitCode.OK
    )
    assert "imported tiny" in capsys.readouterr().out
    assert main([*m, "import", str(src["base"]), str(src["safetensors"]), "--reference", "--quiet"]) == ExitCode.OK
    capsys.readouterr()
    assert main([*m, "list"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "* tiny " in out and "pisa_tiny" in out and "(reference)" in out
    assert main([*m, "list", "--json"]) == ExitCode.OK
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"], r["is_default"]) for r in listed["models"]] == [
        ("tiny", "ok", True), ("pisa_tiny", "ok", False)
    ]  # fmt: skip
    weights = root / "tiny" / "adapter" / src["pkl"].name
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main([*m, "verify", "--quiet"]) == ExitCode.FAILED
    captured = capsys.readouterr()
    assert str(weights) in captured.err and "pisa_tiny: all" in captured.out
    assert main([*m, "default"]) == ExitCode.OK and capsys.readouterr().out.strip() == "tiny"
    assert main([*m, "default", "nope"]) == ExitCode.USAGE and "no such model" in capsys.readouterr().err
    assert main([*m, "default", "pisa_tiny"]) == ExitCode.OK
    assert main([*m, "remove", "pisa_tiny"]) == ExitCode.OK
    assert "left untouched" in capsys.readouterr().out and src["safetensors"].is_file()
    assert main([*m, "remove", "tiny"]) == ExitCode.OK and not (root / "tiny").exists()
    shutil.rmtree(src["base"] / "scheduler")
    assert main([*m, "import", str(src["base"]), str(src["pkl"]), "--quiet"]) == ExitCode.MODEL
    assert "missing: scheduler/" in capsys.readouterr().err
    url = "http://127.0.0.1:9/a.pkl"
    assert main([*m, "download", "--adapter-url", url, "--sha256", "xyz", "--base", str(src["base"])]) == ExitCode.USAGE
    assert "sha256" in capsys.readouterr().err
    assert main([*m]) == ExitCode.USAGE
