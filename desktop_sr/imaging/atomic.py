"""Atomic photo writes: the photo layer's face on :mod:`desktop_sr.durable` (temp beside the target, fsync, rename).
A failure leaves no trace and no half file, and comes back as a :class:`PhotoError` with a plain reason.

The temp file is ``.<stem>.<random>.part`` (the batch removes the ones a killed run left beside its targets), created
with the usual permissions (an existing target's mode is kept), so exported photos are as readable as the user
expects on shared folders. A full disk says which folder, how much is free and about how much the file needs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from .. import durable
from .errors import PhotoError

_TEMP_SUFFIX = ".part"
fsync_folder = durable.fsync_folder


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def disk_full_reason(folder: Path, needed: int | None) -> str:
    """Why a write failed on a full disk: the folder, its free space and what the file needs (what one acts on)."""
    try:
        free = f"{human_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "no free space"
    need = f"; this file needs about {human_size(needed)}" if needed else ""
    return f"the disk is full: {folder} has {free}{need}. Free some space there, or choose another folder"


def _reason(exc: OSError, folder: Path, needed: int | None) -> str:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return disk_full_reason(folder, needed)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the disk is read-only"
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is too long"
    return exc.strerror or str(exc)


def atomic_write(path: str | Path, write: Callable[[Path], None], *, size_hint: int | None = None) -> Path:
    """Call ``write(tmp)`` to produce the file, then move it over ``path`` in one step.

    An existing ``path`` stays untouched until the new file is complete and flushed to disk; on any error
    (including KeyboardInterrupt) the temp file is removed and the error re-raised, OS errors as
    :class:`PhotoError` with a plain reason (``size_hint``, the file's expected size, goes into a full disk's).
    """
    path = Path(path)
    if path.is_dir():
        raise PhotoError(path, "is a folder; choose a file name")
    folder = path.parent
    if not folder.is_dir():
        raise PhotoError(path, f"the folder {folder} does not exist")
    try:
        old_mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    except OSError:
        old_mode = None
    try:
        tmp = durable.temp_beside(path, _TEMP_SUFFIX, name=path.stem[:80])
    except OSError as exc:
        raise PhotoError(path, f"cannot write here: {_reason(exc, folder, size_hint)}") from exc
    try:
        write(tmp)
        if old_mode is not None:
            os.chmod(tmp, old_mode)
        durable.commit(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            size_hint = size_hint or tmp.stat().st_size or None  # at least what had been written
        durable.discard(tmp)
        raise PhotoError(path, f"cannot write: {_reason(exc, folder, size_hint)}") from exc
    except BaseException:
        durable.discard(tmp)
        raise
    return path
