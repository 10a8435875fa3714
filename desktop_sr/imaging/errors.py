"""The one error type the photo layer raises, so callers can show it and move on to the next file."""

from __future__ import annotations

from pathlib import Path


class PhotoError(Exception):
    """A photo could not be read or written. The message starts with the file's path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
