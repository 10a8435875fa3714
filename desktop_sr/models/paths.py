"""Where models live: ``DESKTOP_SR_MODELS_DIR`` if set, else the app setting ``models_dir``, else
``<platformdirs user data dir>/models``.

The setting comes from the app's settings file through :func:`desktop_sr.settings.read_settings` (the one reader of
it), so the CLI, the batch runner and the GUI agree on one folder. Reading is cheap and never fails: a missing or
broken settings file just means "no setting".
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from ..settings import read_settings

ENV_MODELS_DIR = "DESKTOP_SR_MODELS_DIR"


def default_models_dir() -> Path:
    """The platform's per-user data folder (e.g. ``~/.local/share/desktop-sr/models``)."""
    return Path(platformdirs.user_data_dir("desktop-sr")) / "models"


def setting_models_dir(config_dir: Path | None = None) -> Path | None:
    """The ``models_dir`` value of the app's settings file, if set to a non-empty string."""
    value = read_settings(config_dir)[0].models_dir
    return Path(value).expanduser() if value.strip() else None


def models_dir_source(setting: str | None = None) -> str:
    """Which rule chose the folder: ``environment``, ``setting`` or ``default`` (the dialog says why it is fixed)."""
    if os.environ.get(ENV_MODELS_DIR):
        return "environment"
    value = setting if setting is not None else setting_models_dir()
    if value and str(value).strip():
        return "setting"
    return "default"


def models_dir(setting: str | None = None) -> Path:
    """The models folder. ``setting`` overrides the value read from the settings file (the GUI passes its own).

    The folder is not created here: read-only callers (listing, the default model at start-up) must not create
    folders as a side effect.
    """
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env).expanduser()
    if setting is not None:
        return Path(setting).expanduser() if setting.strip() else default_models_dir()
    return setting_models_dir() or default_models_dir()
