"""Atomic file writes: a temp file in the target folder, fsync, rename. A failure leaves no trace and no half file.

The temp file is created with the usual permissions (0666 less the umask, like any new file; an existing
target's mode is kept), not the owner-only mode of :func:`tempfile.mkstemp`, so exported photos are as readable
as the user expects on shared folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import PhotoError

_TEMP_SUFFIX = ".part"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the disk is read-only"
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is too long"
    return exc.strerror or str(exc)


def _create_temp(folder: Path, stem: str) -> Path:
    """A new, empty, uniquely named hidden file beside the target (same file system, so the rename is atomic)."""
    for _ in range(100):
        tmp = folder / f".{stem[:80]}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name")


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # never let the clean-up hide the error that caused it
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # write access: Windows cannot flush read-only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not possible on every platform (Windows), where it is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to produce the file, then move it over ``path`` in one step.

    An existing ``path`` stays untouched until the new file is complete and flushed to disk; on any error
    (including KeyboardInterrupt) the temp file is removed and the error re-raised, OS errors as
    :class:`PhotoError` with a plain reason.
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
        tmp = _create_temp(folder, path.stem)
    except OSError as exc:
        raise PhotoError(path, f"cannot write here: {_reason(exc)}") from exc
    try:
        write(tmp)
        if old_mode is not None:
            os.chmod(tmp, old_mode)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise PhotoError(path, f"cannot write: {_reason(exc)}") from exc
    except BaseException:
        _discard(tmp)
        raise
    fsync_folder(folder)
    return path
