"""File plumbing for the model store: sha256 while copying or reading (one pass over gigabytes, not two), with
progress and cancel between chunks, and atomic small-file writes (:mod:`desktop_sr.durable`).

Models are large (SD-2.1-base is about 5 GB), so every long loop here reports progress and checks a cancel flag
at least every :data:`CHUNK` bytes; a cancelled copy deletes its partial output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from .. import durable
from ..engine.control import Control
from .errors import OperationCancelled, StoreError

CHUNK = 4 << 20


def check_cancel(control: Control | None, path: Path) -> None:
    """Stop between chunks: the store's own error (it names the file, and cleanup follows it)."""
    if control is not None and control.cancelled:
        raise OperationCancelled(path)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def hash_file(
    path: Path, *, on_bytes: Callable[[int], None] | None = None, control: Control | None = None
) -> tuple[str, int]:
    """sha256 (hex) and size of ``path``; ``on_bytes(n)`` after each chunk read."""
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                check_cancel(control, path)
                h.update(chunk)
                size += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
    except OSError as exc:
        raise StoreError(path, f"cannot read: {_os_reason(exc)}") from exc
    return h.hexdigest(), size


def copy_with_hash(
    src: Path, dst: Path, *, on_bytes: Callable[[int], None] | None = None, control: Control | None = None
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (a new file) and return the sha256 and size of the bytes written.

    The hash is of what was read and written in this pass, so a file changing under us cannot slip through with a
    stale hash. ``dst`` is flushed to disk; on any failure it is removed.
    """
    h = hashlib.sha256()
    size = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            while chunk := fin.read(CHUNK):
                check_cancel(control, src)
                h.update(chunk)
                fout.write(chunk)
                size += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            dst.unlink()
        where = Path(exc.filename) if exc.filename else dst  # the file the OS complained about
        raise StoreError(where, f"cannot copy: {_os_reason(exc)}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            dst.unlink()
        raise
    return h.hexdigest(), size


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (:func:`desktop_sr.durable.replace_with`): readers see the old
    file or the new one, never half of either."""
    try:
        durable.replace_with(path, text)
    except OSError as exc:
        raise StoreError(path, f"cannot write: {_os_reason(exc)}") from exc


def folder_size(folder: Path) -> int:
    """Total size of the files under ``folder`` (0 if it does not exist); used for the built-in model's row."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def human_size(n: int) -> str:
    """``1.2 GB``-style sizes (decimal units, as file managers show them)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
