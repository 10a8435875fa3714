"""Persistent settings: a versioned JSON file in the user's config folder.

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
    name_template: str = "{stem}_x{scale}"

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path))
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]


def load_settings(folder: Path | None = None) -> tuple[Settings, str | None]:
    """Settings from disk and a warning (or None). Unknown keys are ignored, wrong types reset to defaults."""
    path = (folder or config_dir()) / "settings.json"
    if not path.exists():
        return Settings(), None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        with contextlib.suppress(OSError):
            path.replace(path.with_name("settings.json.broken"))
        msg = f"Settings file {path} was unreadable ({exc}); using defaults."
        log.warning(msg)
        return Settings(), msg
    defaults = Settings()
    values = {}
    for f in fields(Settings):
        if f.name in raw and isinstance(raw[f.name], type(getattr(defaults, f.name))):
            values[f.name] = raw[f.name]
    values["version"] = VERSION
    return Settings(**values), None


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
