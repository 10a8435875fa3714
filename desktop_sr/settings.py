"""Persistent settings: a versioned JSON file in the user's config folder. The one place that reads it (Qt-free):
the window, the batch dialog and the models folder lookup (:mod:`desktop_sr.models.paths`) all come here.

A broken or unreadable file never stops the app: it falls back to defaults, keeps the broken file aside as
``settings.json.broken`` for the user, and reports a warning that the window shows in its status bar.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)
VERSION = 1
MAX_RECENT = 10


def config_dir() -> Path:
    env = os.environ.get("DESKTOP_SR_CONFIG_DIR")
    return Path(env) if env else Path(platformdirs.user_config_dir("desktop-sr"))


@dataclass
class Settings:
    version: int = VERSION
    geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""
    last_folder: str = ""
    recent_files: list[str] = field(default_factory=list)
    pix: float = 1.0
    sem: float = 1.0
    realism: int = 1
    scale: int = 4
    color_fix: str = "adain"
    prompt: str = ""
    compare_mode: str = "split-v"
    model_kind: str = ""
    model_base: str = ""
    model_lora: str = ""
    model_name: str = ""
    device: str = "auto"
    models_dir: str = ""  # the model manager's folder; empty = the platform's user data folder (desktop_sr.models)
    export_format: str = "png"
    export_bit_depth: int = 8
    export_quality: int = 95
    export_folder: str = ""  # the folder a result was saved to last (the save dialog proposes it; empty: the photo's)
    export_keep_metadata: bool = True
    name_template: str = "{stem}_x{scale}"

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path))
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]


def read_settings(folder: Path | None = None) -> tuple[Settings, str | None]:
    """Settings from disk and why they could not be read (or None). No side effects: readers other than the window
    (the CLI looking up the models folder) use this. Unknown keys are ignored, wrong types reset to defaults."""
    path = (folder or config_dir()) / "settings.json"
    if not path.exists():
        return Settings(), None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return Settings(), str(exc)
    defaults = Settings()
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name in raw and isinstance(raw[f.name], type(getattr(defaults, f.name))):
            values[f.name] = raw[f.name]
    values["version"] = VERSION
    return Settings(**values), None  # type: ignore[arg-type]


def load_settings(folder: Path | None = None) -> tuple[Settings, str | None]:
    """Settings for the app, and a warning for its status bar (or None). A broken file is kept aside as
    ``settings.json.broken`` so the next save does not destroy what the user may want to recover."""
    settings, problem = read_settings(folder)
    if problem is None:
        return settings, None
    path = (folder or config_dir()) / "settings.json"
    with contextlib.suppress(OSError):
        path.replace(path.with_name("settings.json.broken"))
    msg = f"Settings file {path} was unreadable ({problem}); using defaults."
    log.warning(msg)
    return settings, msg


def save_settings(settings: Settings, folder: Path | None = None) -> None:
    """Atomic write, so a crash while saving never leaves a broken file."""
    folder = folder or config_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "settings.json.tmp"
        tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
        tmp.replace(folder / "settings.json")
    except OSError as exc:
        log.warning("cannot save settings to %s: %s", folder, exc)
