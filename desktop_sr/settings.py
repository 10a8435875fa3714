"""Persistent settings: versioned JSON files in the user's config folder, read and written only here (Qt-free):
the window, the batch dialog (``batch.json``: its own remembered choices) and the models folder lookup
(:mod:`desktop_sr.models.paths`) all come here.

Versions: 1 named the last model with four PiSA-SR-shaped fields (``model_kind``, ``model_base``, ``model_lora``,
``model_name``); 2 holds it as ``model = {"kind", "name", "files": {role: path}}``, whatever its family. A version 1
file is read and migrated; the next save writes version 2.

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
VERSION = 2
MAX_RECENT = 10
BATCH_FILE = "batch.json"


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
    #: The model used last: {"kind": family kind, "name": display name, "files": {role: path}}; empty = none.
    model: dict[str, object] = field(default_factory=dict)
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
    if int(raw.get("version", 1) or 1) < 2:
        raw = _migrate_v1(raw)
    defaults = Settings()
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name in raw and isinstance(raw[f.name], type(getattr(defaults, f.name))):
            values[f.name] = raw[f.name]
    values["version"] = VERSION
    return Settings(**values), None  # type: ignore[arg-type]


def _migrate_v1(raw: dict[str, object]) -> dict[str, object]:
    """Version 1's four model fields as version 2's one ``model`` record (the rest is unchanged)."""
    out = {k: v for k, v in raw.items() if not k.startswith("model_")}
    kind, name = str(raw.get("model_kind") or ""), str(raw.get("model_name") or "")
    base, lora = str(raw.get("model_base") or ""), str(raw.get("model_lora") or "")
    if kind == "pisa-sr" and base and lora:
        out["model"] = {"kind": kind, "name": name, "files": {"base": base, "adapter": lora}}
    elif kind:
        out["model"] = {"kind": kind, "name": name, "files": {}}
    return out


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
    _write_json(folder or config_dir(), "settings.json", asdict(settings))


def _write_json(folder: Path, name: str, data: dict[str, object]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(folder / name)
    except OSError as exc:
        log.warning("cannot save %s to %s: %s", name, folder, exc)


@dataclass
class BatchChoices:
    """What the batch dialog remembers between runs (``batch.json``); empty strings and None = not chosen yet, so the
    dialog falls back to the export's template and format."""

    output: str = ""
    template: str = ""
    format: str = ""
    conflict: int | None = None
    recursive: bool | None = None
    keep_metadata: bool | None = None


def read_batch_choices(folder: Path | None = None) -> BatchChoices:
    """The batch dialog's last choices; defaults for a missing or unreadable file (each wrong value is dropped)."""
    try:
        raw = json.loads(((folder or config_dir()) / BATCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return BatchChoices()
    if not isinstance(raw, dict):
        return BatchChoices()
    choices = BatchChoices()
    for name, kind in (("output", str), ("template", str), ("format", str), ("conflict", int),
                       ("recursive", bool), ("keep_metadata", bool)):  # fmt: skip
        value = raw.get(name)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            setattr(choices, name, value)
    return choices


def save_batch_choices(choices: BatchChoices, folder: Path | None = None) -> None:
    _write_json(folder or config_dir(), BATCH_FILE, asdict(choices))
