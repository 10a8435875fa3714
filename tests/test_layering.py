"""The layering rules of docs/architecture.md, proven: no Qt outside desktop_sr/ui/, no torch in the GUI's own code.
(Which package may import which is checked by ``lint-imports``, from the contracts in pyproject.toml.)"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import desktop_sr

ROOT = Path(desktop_sr.__file__).parent
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def qt_free_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(ROOT)], prefix="desktop_sr."):
        if not info.name.startswith("desktop_sr.ui") and info.name != "desktop_sr.__main__":
            names.append(info.name)
    trainer = ROOT.parent / "desktop_sr_trainer"
    if trainer.is_dir():
        names += ["desktop_sr_trainer"]
        names += [i.name for i in pkgutil.walk_packages([str(trainer)], prefix="desktop_sr_trainer.")]
    return [n for n in names if not n.endswith("__main__")]


def test_core_packages_import_without_qt():
    """Import every Qt-free module in a fresh interpreter where importing Qt raises."""
    modules = qt_free_modules()
    assert "desktop_sr.engine.backends.pisa.session" in modules
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {QT!r}:
            raise ImportError('Qt imported outside desktop_sr/ui: ' + name)
sys.meta_path.insert(0, Block())
import importlib
for m in {modules!r}:
    importlib.import_module(m)
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_gui_code_never_imports_torch_directly():
    """The GUI reaches torch only through the engine, which its worker thread calls."""
    offenders = []
    for path in (ROOT / "ui").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(n.split(".")[0] == "torch" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_gui_modules_load_without_torch():
    """The window's modules, dialogs included, import with torch blocked: the GUI holds only plain data (specs,
    parameters, tile sizes) and its worker thread imports the engine's compute code. (The launcher still imports
    torch before Qt, for the load order of their native libraries; that is a start-up choice, not a dependency.)"""
    code = """
import importlib.abc, os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'diffusers', 'peft', 'transformers'):
            raise ImportError('imported on the GUI thread: ' + name)
sys.meta_path.insert(0, Block())
import desktop_sr.cli, desktop_sr.cli.common
import desktop_sr.ui.main_window, desktop_sr.ui.batch_dialog, desktop_sr.ui.model_manager_dialog, desktop_sr.editor
import desktop_sr.ui.export_dialog, desktop_sr.ui.model_dialog
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
