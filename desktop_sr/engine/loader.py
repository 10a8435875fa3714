"""One entry point that turns a model description into a session, whatever the model's family.

The GUI, CLI and batch runner hold a :class:`~desktop_sr.engine.spec.ModelSpec` (from settings, the model manager or
the command line) and call :func:`open_session`; the family the spec names (:mod:`.families`) opens it.

A Vulkan device (``vulkan:N``) runs only families that declare it (the bundled model): for any other the session
opens on the CPU and its ``notice`` says why, in one line the CLI prints and the GUI's status bar shows.
"""

from __future__ import annotations

from pathlib import Path

from .api import UpscaleSession
from .control import Control
from .families import OpenOptions, family
from .hardware.vulkan import is_vulkan_name
from .spec import ModelSpec
from .tile_settings import TileSettings

__all__ = ["ModelSpec", "device_for", "notice_of", "open_session"]


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
    fam = family(spec.kind)
    notice = ""
    if is_vulkan_name(device) and not fam.capabilities.vulkan:
        notice = f"{device} runs only the bundled model; {fam.label} needs torch: running on the CPU"
        device = "cpu"
    options = OpenOptions(device=device, dtype=dtype, cache_mb=cache_mb, tiles=tiles, models_dir=models_dir)
    session = fam.open(spec, options, control)
    if notice:
        session.notice = notice  # type: ignore[attr-defined]  # sessions say what went another way than asked
    return session


def notice_of(session: object) -> str:
    """A session's one line about running elsewhere than asked (a Vulkan device that failed, or that this model
    cannot use), or "". Read it after loading and after each render: a device can fail in the middle of one."""
    return str(getattr(session, "notice", "") or "")


def device_for(spec: ModelSpec, device: str = "auto") -> str:
    """Where :func:`open_session` puts ``spec`` for ``device``: ``cuda:0``, ``vulkan:0``, ``cpu`` (``auto`` and
    ``cuda`` resolved; a Vulkan device for a model that needs torch is the CPU). Probes the devices: call it off the
    GUI thread."""
    from .hardware.device import resolve_device  # torch

    return resolve_device(device, vulkan=family(spec.kind).capabilities.vulkan)
