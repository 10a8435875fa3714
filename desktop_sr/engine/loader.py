"""One entry point that turns a model description into a session, whatever the model's family.

The GUI, CLI and batch runner hold a :class:`~desktop_sr.engine.spec.ModelSpec` (from settings, the model manager or
the command line) and call :func:`open_session`; the family the spec names (:mod:`.families`) opens it.
"""

from __future__ import annotations

from pathlib import Path

from .api import UpscaleSession
from .control import Control
from .families import OpenOptions, family
from .spec import ModelSpec
from .tile_settings import TileSettings

__all__ = ["ModelSpec", "open_session"]


def open_session(
    spec: ModelSpec,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_mb: int = 1024,
    tiles: TileSettings | None = None,
    models_dir: Path | None = None,
    control: Control | None = None,
) -> UpscaleSession:
    """Load the model ``spec`` describes. Raises :class:`~.errors.ModelError` naming the file at fault.

    ``models_dir`` is the model store's folder (the caller asks :mod:`desktop_sr.models` for it): the bundled model
    converts its weights into it once. The engine never looks the folder up itself."""
    options = OpenOptions(device=device, dtype=dtype, cache_mb=cache_mb, tiles=tiles, models_dir=models_dir)
    return family(spec.kind).open(spec, options, control)
