"""Atomic file writes: a temp file in the target folder, fsync, rename. A failure leaves no trace and no half file."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import PhotoError


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the disk is read-only"
    return exc.strerror or str(exc)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to produce the file, then move it over ``path`` in one step.

    An existing ``path`` stays untouched until the new file is complete and flushed to disk; on any error the
    temp file is removed and the error re-raised (OS errors as :class:`PhotoError` with a plain reason).
    """
    path = Path(path)
    if path.is_dir():
        raise PhotoError(path, "is a folder; choose a file name")
    if not path.parent.is_dir():
        raise PhotoError(path, f"the folder {path.parent} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise PhotoError(path, f"cannot write here: {_reason(exc)}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PhotoError(path, f"cannot write: {_reason(exc)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path
