"""Getting PiSA-SR: the two things it needs, where they come from, and where to put them when offline.

PiSA-SR is Stable Diffusion 2.1-base (on the Hugging Face Hub, downloadable here) plus the authors' adapter file
``pisa_sr.pkl``, which they publish on Google Drive and Baidu Netdisk only (links from the project's README): no
direct URL an app can fetch. So the way in is: download the base when online (resumable, checked), tell the user
where the adapter is published, and import the ``.pkl`` they saved (its layout checked, its sha256 recorded).

Both go to well-known places in the models folder (:func:`staging`), so an offline machine needs exactly two
copies there and the same command again. Qt-free: the CLI (``desktop-sr models get-pisa``) and the GUI use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .download import BASE_REPO
from .pisa_import import import_pisa

if TYPE_CHECKING:
    from ..engine.control import Control
from .registry import ModelEntry, ModelStore

PROJECT_URL = "https://github.com/csslc/PiSA-SR"
BASE_URL = f"https://huggingface.co/{BASE_REPO}"
#: Where the authors publish pisa_sr.pkl (the "Download the PiSA-SR model" step of the project's README).
ADAPTER_SOURCES = (
    ("Google Drive", "https://drive.google.com/drive/folders/1oLetijWNd59xwJE5oU-eXylQBifxWdss?usp=drive_link"),
    ("Baidu Netdisk (password: pisa)", "https://pan.baidu.com/s/1wcMVp9vmsDrLnK0yTAH2Ig"),
)
ADAPTER_FILE = "pisa_sr.pkl"
BASE_FOLDER = "stable-diffusion-2-1-base"
#: What a usable base folder holds (diffusers layout); the rest of the repository is not needed.
BASE_PARTS = ("model_index.json", "unet/", "vae/", "text_encoder/", "tokenizer/", "scheduler/")


@dataclass(frozen=True)
class Staging:
    """The two well-known places in the models folder, and what is already there."""

    folder: Path

    @property
    def base(self) -> Path:
        return self.folder / BASE_FOLDER

    @property
    def adapter(self) -> Path:
        return self.folder / ADAPTER_FILE

    def has_base(self) -> bool:
        return (self.base / "model_index.json").is_file() and (self.base / "unet").is_dir()

    def has_adapter(self) -> bool:
        return self.adapter.is_file()


def staging(models_root: Path) -> Staging:
    return Staging(Path(models_root) / "get-pisa")


def offline() -> bool:
    """True when the Hub must not be contacted (huggingface_hub's own switch)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def adapter_hint(stage: Staging) -> str:
    """Where the official adapter is published, and what to do with it."""
    lines = [f"The PiSA-SR adapter ({ADAPTER_FILE}) is published by its authors ({PROJECT_URL}) at:"]
    lines += [f"  {label}: {url}" for label, url in ADAPTER_SOURCES]
    lines.append(f"Save {ADAPTER_FILE} from there, then run: desktop-sr models get-pisa --adapter PATH/{ADAPTER_FILE}")
    lines.append(f"(or copy it to {stage.adapter} and run: desktop-sr models get-pisa)")
    return "\n".join(lines)


def offline_instructions(
    stage: Staging, then: str = "Then run: desktop-sr models get-pisa", *, adapter: Path | None = None
) -> str:
    """Exactly which things to copy where, for a machine without internet; an ``adapter`` the user already named
    (``--adapter FILE``) is not asked for again."""
    need = []
    if not stage.has_base():
        need.append(
            f"1. the Stable Diffusion 2.1-base folder in diffusers layout ({', '.join(BASE_PARTS)}) from {BASE_URL}\n"
            f"   copied to {stage.base}"
        )
    if not stage.has_adapter() and not (adapter is not None and adapter.is_file()):
        sources = " or ".join(f"{label}: {url}" for label, url in ADAPTER_SOURCES)
        need.append(f"{len(need) + 1}. {ADAPTER_FILE} from {sources}\n   copied to {stage.adapter}")
    if not need:
        return "Both parts are in place; run: desktop-sr models get-pisa"
    head = "Offline: PiSA-SR needs these copied onto this machine (from one that is online):"
    return "\n".join([head, *need, then])


@dataclass(frozen=True)
class Imported:
    entry: ModelEntry
    adapter_sha256: str


def import_model(
    store: ModelStore,
    base: Path,
    adapter: Path,
    *,
    name: str = "PiSA-SR",
    make_default: bool = False,
    control: Control | None = None,
) -> Imported:
    """Import the base and the adapter the user saved: the adapter's layout is checked (loaded by the engine, so a
    wrong file is refused now) and its sha256 recorded. A base in the staging place is used where it is (no second
    5 GB copy); one elsewhere is copied, as is the adapter. Touches torch: call it from a worker thread in the GUI."""
    stage = staging(store.root)
    in_place = Path(base).expanduser().absolute() == stage.base.absolute()
    entry = import_pisa(store, base, adapter, name=name, mode="reference" if in_place else "copy", adapter_mode="copy",
                              make_default=make_default, control=control)  # fmt: skip
    sha = next((f.sha256 for f in entry.files if f.role == "adapter"), "")
    return Imported(entry, sha)
