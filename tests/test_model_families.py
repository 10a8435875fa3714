"""A new model family is one folder and one registration: a fake family, registered here and nowhere else, is
imported, listed, opened and rendered by the model manager, the CLI, the batch and the window, with no other edit.
Also: the families' declarations, the v1 -> v2 registry and settings migrations."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession
from PIL import Image

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine import families as fam_mod
from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.families import Capabilities, Details, FileRole, ModelFamily, OpenOptions, families, family
from desktop_sr.engine.spec import ModelSpec
from desktop_sr.models import ModelStore

RECIPE = FileRole("recipe", "Fake recipe", suffixes=(".fake",), hint="a text file that says how bright")


class FakeFamily(ModelFamily):
    """Reads a one-line text file (a "brightness"); renders with the numpy FakeSession."""

    kind = "fake-recipe"
    label = "Fake recipes (tests)"
    roles = (RECIPE,)
    capabilities = Capabilities(strengths=True, scales=(1, 2, 3, 4))
    order = 50
    opened: list[ModelSpec] = []

    def inspect(self, files: Mapping[str, Path]) -> Details:
        super().inspect(files)
        text = files["recipe"].read_text().strip()
        if not text.startswith("brightness"):
            raise ModelError(files["recipe"], "not a fake recipe")
        return Details({"recipe": text})

    def open(self, spec: ModelSpec, options: OpenOptions, control=None) -> FakeSession:  # noqa: ANN001
        FakeFamily.opened.append(spec)
        return FakeSession(spec.name, supports_realism=False)


@pytest.fixture
def fake_family(tmp_path, monkeypatch) -> Iterator[Path]:
    """Registers the family (the one registration) and gives a recipe file; unregistered afterwards."""
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    FakeFamily.opened = []
    fam_mod.register(FakeFamily())
    recipe = tmp_path / "bright.fake"
    recipe.write_text("brightness 0.8\n")
    yield recipe
    fam_mod.unregister(FakeFamily.kind)


def small_photo(path: Path) -> Path:
    Image.fromarray((np.random.default_rng(2).random((12, 16, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_the_built_in_families_declare_roles_and_capabilities():
    kinds = [f.kind for f in families()]
    # the app's own model first; face models before community upscalers (they claim only face files)
    assert kinds[:4] == ["bundled", "pisa-sr", "faces", "community"]
    pisa = family("pisa-sr")
    assert [(r.key, r.folder) for r in pisa.roles] == [("base", True), ("adapter", False)]
    assert pisa.capabilities.realism and pisa.capabilities.prompt
    community = family("community")
    assert community.roles[0].suffixes == (".pth", ".pt", ".ckpt", ".safetensors")
    assert 8 in community.capabilities.scales and not community.capabilities.realism
    with pytest.raises(ModelError, match="unknown model kind 'nope'.*bundled"):
        family("nope")


def test_a_registered_family_works_in_the_store_and_the_cli(fake_family, tmp_path, capsys):
    # the CLI recognises the file by its family's role and imports it
    assert main(["models", "import", str(fake_family), "--name", "Bright", "--quiet"]) == ExitCode.OK
    assert "recipe brightness 0.8" in capsys.readouterr().out
    [entry] = ModelStore().entries()
    assert entry.kind == "fake-recipe" and entry.storage == {"recipe": "copy"}
    assert (ModelStore().root / entry.id / "recipe" / "bright.fake").read_text() == "brightness 0.8\n"
    assert main(["models", "verify", entry.id, "--quiet"]) == ExitCode.OK
    # render with it, by name
    src = small_photo(tmp_path / "p.png")
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), "-o", str(out), "--model", "Bright", "--scale", "2"]) == ExitCode.OK
    assert Image.open(out).size == (32, 24)
    assert FakeFamily.opened[-1].kind == "fake-recipe"
    assert FakeFamily.opened[-1].file("recipe") == ModelStore().root / entry.id / "recipe" / "bright.fake"
    # and in a batch
    folder = tmp_path / "in"
    folder.mkdir()
    small_photo(folder / "a.png")
    assert main(["batch", str(folder), "-o", str(tmp_path / "b"), "--model", "Bright", "--scale", "3"]) == 0
    assert Image.open(tmp_path / "b" / "a_x3.png").size == (48, 36)
    # a wrong file of the family is refused by the family's own check, naming it
    wrong = tmp_path / "wrong.fake"
    wrong.write_text("hello")
    assert main(["models", "import", str(wrong), "--quiet"]) != ExitCode.OK
    assert "wrong.fake" in capsys.readouterr().err and len(ModelStore().entries()) == 1


def test_a_registered_family_works_in_the_model_manager_and_the_window(fake_family, qtbot, tmp_path):
    from desktop_sr.ui.model_dialog import ChooseModelDialog
    from desktop_sr.ui.model_manager_dialog import ImportDialog, ModelManagerDialog

    imp = ImportDialog()
    qtbot.addWidget(imp)
    assert imp.family.findData("fake-recipe") >= 0  # offered with no edit of the dialog
    imp.set_family("fake-recipe")
    assert [f.role.label for f in imp.fields] == ["Fake recipe"]

    dlg = ModelManagerDialog(None)
    qtbot.addWidget(dlg)
    assert dlg.start_import(fake_family, name="Bright")  # recognised from the file alone
    qtbot.waitUntil(lambda: not dlg.runner.busy, timeout=30000)
    rows = [r for r in dlg.rows if r.kind == "fake-recipe"]
    assert len(rows) == 1 and rows[0].name == "Bright" and "brightness 0.8" in rows[0].about

    choose = ChooseModelDialog(None)
    qtbot.addWidget(choose)
    choose.family.setCurrentIndex(choose.family.findData("fake-recipe"))
    choose.fields[0].edit.setText(str(fake_family))
    assert choose.spec() == ModelSpec.of("fake-recipe", "bright", {"recipe": fake_family})


def test_the_window_opens_and_compares_a_registered_familys_model(fake_family, window, qtbot):
    from desktop_sr.ui.ab_compare import ABCompare

    store = ModelStore()
    bright = store.spec(store.import_model("fake-recipe", {"recipe": fake_family}, name="Bright"))
    dim_file = fake_family.with_name("dim.fake")
    dim_file.write_text("brightness 0.2\n")
    dim = store.spec(store.import_model("fake-recipe", {"recipe": dim_file}, name="Dim"))
    window.load_model(bright)
    qtbot.waitUntil(lambda: window.editor.model_info is not None, timeout=30000)
    assert window.editor.model_info.name == "Bright" and FakeFamily.opened == [bright]
    ab = next(v for v in vars(window).values() if isinstance(v, ABCompare))
    others = ab.other_models()
    assert dim in others and bright not in others  # View > Compare with model offers the family's other model


def test_a_version_1_registry_and_settings_file_are_migrated(tmp_path):
    from desktop_sr.settings import read_settings

    root = tmp_path / "models"
    (root / "old" / "adapter").mkdir(parents=True)
    v1 = {
        "format": "desktop-sr-models",
        "version": 1,
        "default": "old",
        "models": [
            {
                "id": "old",
                "name": "Old",
                "kind": "pisa-sr",
                "storage": "reference",
                "base_dir": str(tmp_path / "sd21"),
                "lora": "adapter/pisa_sr.pkl",
                "adapter_storage": "copy",
                "files": [],
                "added": "2026-01-01T00:00:00Z",
            }
        ],
    }
    (root / "registry.json").write_text(json.dumps(v1))
    store = ModelStore(root)
    [entry] = store.entries()
    assert entry.paths == {"base": str(tmp_path / "sd21"), "adapter": "adapter/pisa_sr.pkl"}
    assert entry.storage == {"base": "reference", "adapter": "copy"}
    assert store.spec(entry).paths == {"base": tmp_path / "sd21", "adapter": root / "old" / "adapter" / "pisa_sr.pkl"}
    store.set_default("old")  # any write rewrites the file as version 2
    saved = json.loads((root / "registry.json").read_text())
    assert saved["version"] == 2 and saved["models"][0]["paths"]["adapter"] == "adapter/pisa_sr.pkl"

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    v1_settings = {"version": 1, "pix": 0.5, "model_kind": "pisa-sr", "model_base": "/sd", "model_lora": "/a.pkl",
                   "model_name": "A"}  # fmt: skip
    (cfg / "settings.json").write_text(json.dumps(v1_settings))
    settings, problem = read_settings(cfg)
    assert problem is None and settings.pix == 0.5 and settings.version == 2
    assert settings.model == {"kind": "pisa-sr", "name": "A", "files": {"base": "/sd", "adapter": "/a.pkl"}}


def test_the_families_declare_themselves_without_torch(tmp_path):
    """The GUI lists families, checks picked files and finds the built-in model on its own thread, without torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from desktop_sr.engine.families import families, built_ins\n"
        "from desktop_sr.models import ModelStore\n"
        "kinds = [f.kind for f in families()]\n"
        "built_ins(Path(sys.argv[1]))\n"
        "ModelStore(sys.argv[1]).rows()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(','.join(kinds))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(",")[:4] == ["bundled", "pisa-sr", "faces", "community"]
