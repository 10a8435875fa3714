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
import copy
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

from . import durable

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
    #: The Faces panel's last choice: {"kind", "name", "files", "strength", "fidelity"}; empty = no face model.
    faces: dict[str, object] = field(default_factory=dict)
    device: str = "auto"
    models_dir: str = ""  # the model manager's folder; empty = the platform's user data folder (desktop_sr.models)
    export_format: str = "png"
    export_bit_depth: int = 8
    export_quality: int = 95
    export_folder: str = ""  # the folder a result was saved to last (the save dialog proposes it; empty: the photo's)
    export_keep_metadata: bool = True
    name_template: str = "{stem}_x{scale}"
    #: The values as this process last read or wrote them (not saved): a save takes another process's newer value
    #: for every field this one has not changed since (see :func:`save_settings`).
    synced: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path))
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]


#: The fields the settings file holds (``synced`` is this process's bookkeeping).
_SAVED = tuple(f.name for f in fields(Settings) if f.name != "synced")


def read_settings(folder: Path | None = None) -> tuple[Settings, str | None]:
    """Settings from disk and why they could not be read (or None). No side effects: readers other than the window
    (the CLI looking up the models folder) use this. Unknown keys are ignored, wrong types reset to defaults."""
    path = (folder or config_dir()) / "settings.json"
    if not path.exists():
        return _defaults(), None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return _defaults(), str(exc)
    if int(raw.get("version", 1) or 1) < 2:
        raw = _migrate_v1(raw)
    defaults = Settings()
    values: dict[str, object] = {}
    for f in _SAVED:
        if f in raw and isinstance(raw[f], type(getattr(defaults, f))):
            values[f] = raw[f]
    values["version"] = VERSION
    settings = Settings(**values)  # type: ignore[arg-type]
    settings.synced = _values(settings)
    return settings, None


def _defaults() -> Settings:
    settings = Settings()
    settings.synced = _values(settings)
    return settings


def _values(settings: Settings) -> dict[str, object]:
    """The saved fields' values (copies, so later changes in place are seen as changes)."""
    return {f: copy.deepcopy(getattr(settings, f)) for f in _SAVED}


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
    """Write ``settings`` so that neither a crash nor a second window loses anything.

    Atomic (:mod:`desktop_sr.durable`): a kill while saving leaves the old file or the new one. Merged under a lock:
    another window or the CLI may have saved since this process read the file, so each field this process has not
    changed since (``settings.synced``) takes the value on disk, and the recent files of both are kept (this
    process's first). Without the merge, closing the second window would undo what the first one saved.
    """
    ours = _values(settings)

    def merge(current: object) -> dict[str, object]:
        disk = _disk_values(current)
        out = {"version": VERSION}
        for name, value in ours.items():
            if name == "version":
                continue
            changed = name not in settings.synced or settings.synced[name] != value
            out[name] = value if changed or name not in disk else disk[name]
        mine, theirs = ours["recent_files"], disk.get("recent_files")
        if mine != settings.synced.get("recent_files") and isinstance(mine, list) and isinstance(theirs, list):
            out["recent_files"] = list(dict.fromkeys(mine + theirs))[:MAX_RECENT]
        return out

    _update_json(folder or config_dir(), "settings.json", merge)
    settings.synced = ours


def _disk_values(current: object) -> dict[str, object]:
    """The valid saved fields of a settings file's JSON (a damaged or missing file: none)."""
    if not isinstance(current, dict):
        return {}
    if int(current.get("version", 1) or 1) < 2:
        current = _migrate_v1(current)
    defaults = Settings()
    return {f: current[f] for f in _SAVED if f in current and isinstance(current[f], type(getattr(defaults, f)))}


def _update_json(folder: Path, name: str, merge: Callable[[object], dict[str, object]]) -> None:
    try:
        durable.update_json(folder / name, merge, indent=2)
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
    """The dialog's whole choice is one record: written atomically under the file's lock, the last save wins."""
    _update_json(folder or config_dir(), BATCH_FILE, lambda _current: asdict(choices))
