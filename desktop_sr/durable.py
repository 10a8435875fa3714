"""Durable small files: the one way desktop-sr replaces a file it keeps (settings, ``batch.json``, the model registry,
the cost book, saved masks, a batch's compacted journal, exported photos through :mod:`desktop_sr.imaging.atomic`).

Why one helper: a file written in place is half-written when the process is killed (SIGKILL, a crash, a power cut)
or the disk fills, and the next start finds it corrupt. Here every file is written to a temp file beside it (same
file system), flushed with fsync, renamed over the old one in one step, and the folder is fsynced so the rename
itself survives a power cut. A reader sees the old file or the new one, never a mix.

Why a lock too: two windows and a CLI batch may write the same file at the same moment. An atomic replace alone keeps
the file whole but loses the first writer's entry (both read the old file, the second replaces the first's result).
:func:`update_json` reads, merges and replaces under an inter-process lock (``filelock``; the OS drops it when its
holder dies, even on SIGKILL), so no entry is lost. Temp files that a killed writer left are removed under that lock,
where no live writer can own them.

Stdlib and ``filelock`` only: the settings, the model store, the batch, the imaging layer and the CLI all use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

TEMP_SUFFIX = ".tmp"
#: Seconds a writer waits for another process's lock before giving up with :class:`LockBusy`.
LOCK_TIMEOUT = 30.0

Writer = Callable[[Path], None]


class LockBusy(OSError):
    """Another process held a file's lock for longer than the timeout. The message names the file."""


def temp_beside(path: Path, suffix: str = TEMP_SUFFIX, *, name: str | None = None) -> Path:
    """A new, empty, uniquely named hidden file ``.<name>.<random><suffix>`` in ``path``'s folder (so the rename is
    atomic); ``name`` defaults to ``path``'s. Created with the usual mode (0666 less the umask), not
    :func:`tempfile.mkstemp`'s owner-only one, so an exported photo is as readable as any other file."""
    for _ in range(100):
        tmp = path.with_name(f".{name or path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # write access: Windows cannot flush read-only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make a rename durable; not possible on every platform (Windows), where it is skipped."""
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


def commit(tmp: Path, path: Path) -> None:
    """Flush the finished temp file ``tmp``, rename it over ``path`` and flush the folder."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_folder(path.parent)


def discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # never let the clean-up hide the error that caused it
        tmp.unlink(missing_ok=True)


def replace_with(path: str | Path, write: Writer | bytes | str, *, suffix: str = TEMP_SUFFIX) -> Path:
    """Replace ``path`` by what ``write`` produces (a callable given the temp file's path, or the bytes or text).

    On any failure (including KeyboardInterrupt) the temp file is removed, ``path`` is as it was, and the error is
    re-raised as it came (an OSError keeps its errno, so a caller can tell a full disk).
    """
    path = Path(path)
    tmp = temp_beside(path, suffix)
    try:
        if isinstance(write, bytes):
            tmp.write_bytes(write)
        elif isinstance(write, str):
            tmp.write_text(write, encoding="utf-8")
        else:
            write(tmp)
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    return path


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: str | Path, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold ``path``'s inter-process lock (a hidden ``.<name>.lock`` beside it). On entry, temp files of ``path``
    that a killed writer left are deleted: every writer holds this lock, so none of them is in use."""
    path = Path(path)
    lock = FileLock(str(lock_path(path)), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockBusy(errno.EBUSY, "another desktop-sr is writing this file; try again", str(path)) from exc
    try:
        remove_stale_temps(path)
        yield
    finally:
        lock.release()


def remove_stale_temps(path: Path) -> None:
    """Delete ``.<name>.<random>.tmp`` files beside ``path`` (call only while holding its lock)."""
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{_glob_escape(path.name)}.*{TEMP_SUFFIX}"):
            discard(tmp)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def read_json(path: Path) -> Any | None:
    """The JSON value in ``path``; None when it is missing or unreadable (a reader decides what that means)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def update_json(path: str | Path, merge: Callable[[Any | None], Any], *, indent: int | None = 1,
                sort_keys: bool = False, timeout: float = LOCK_TIMEOUT) -> Any:  # fmt: skip
    """Read-merge-replace ``path`` under its lock: ``merge(current)`` (current is None for a missing or damaged file)
    returns the value to write. Returns what was written. Raises OSError (:class:`LockBusy` for a busy lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, timeout=timeout):
        value = merge(read_json(path))
        replace_with(path, json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n")
    return value
