"""Errors the engine raises. Each names the file or setting at fault so the UI can show one clear message."""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base class for every error the engine reports to a user."""


class ModelError(EngineError):
    """A model folder or checkpoint is missing, has the wrong layout, or is corrupt.

    ``path`` is the file or folder at fault; the message starts with it so a dialog or the CLI can show it as is.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class Cancelled(EngineError):
    """A render was cancelled between tiles; nothing half-done is kept in the cache."""

    def __init__(self) -> None:
        super().__init__("cancelled")


class OutOfMemory(EngineError):
    """Even the smallest tile did not fit; the message says which setting to lower."""


class TooLarge(EngineError):
    """The result would not fit in memory: refused before any work, with the scale that would fit."""

    def __init__(self, message: str, need: int, have: int) -> None:
        self.need, self.have = need, have
        super().__init__(message)


class DeviceFailed(EngineError):
    """A device could not start (no driver, no such device) or failed during a render (device lost, memory the
    driver could not give, an error from its runtime). The upscaler session answers it with a smaller tile, then
    its fallback network on the CPU (a slower render, never a crash); it reaches the user only without one.

    ``device`` is the name ``--device`` takes (``vulkan:0``); ``at_start`` says it never ran.
    """

    def __init__(self, device: str, reason: str, *, at_start: bool = False) -> None:
        self.device, self.reason, self.at_start = device, reason, at_start
        super().__init__(f"{device}: {reason}")
