"""Errors of the model manager. All are :class:`ModelError` (``path: reason``), so the GUI, the CLI and callers
that already catch engine errors show them the same way without knowing this package."""

from __future__ import annotations

from pathlib import Path

from ..engine.errors import ModelError


class StoreError(ModelError):
    """The models folder or its registry cannot be read or written, or an operation does not apply."""


class UnknownModel(StoreError):
    """No model with that id (or name) is registered."""

    def __init__(self, key: str, known: list[str]) -> None:
        hint = f"known: {', '.join(known)}" if known else "no models are registered"
        super().__init__(Path(key), f"no such model ({hint})")
        self.key = key


class OperationCancelled(ModelError):
    """The user cancelled an import, a verification or a download; nothing half-done was kept as usable."""

    def __init__(self, path: str | Path, what: str = "cancelled") -> None:
        super().__init__(path, what)


class DownloadError(ModelError):
    """A download failed: network, HTTP status, or an unexpected answer from the server."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not have the expected sha256; the partial file has been removed."""

    def __init__(self, path: str | Path, expected: str, actual: str) -> None:
        super().__init__(path, f"sha256 mismatch: expected {expected}, got {actual}; the download was discarded")
        self.expected, self.actual = expected, actual
