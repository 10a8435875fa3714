"""Can the output be written? Checked before a model loads, so a bad target costs a second, not a render.

A render takes minutes; finding out afterwards that the output folder is a file, sits on a read-only disk, has too
little space, or that ``.bmp`` is not a format the app writes wastes all of it. :func:`check_output` answers from the
file system alone: the nearest existing folder above the target is probed by creating (and removing) a hidden file
in it, which is the only test that sees read-only mounts, ACLs and full quotas alike. The upscale command, the batch
and the editor's Save all call it before any work starts; the atomic writer (:mod:`.atomic`) still reports what only
the write itself can find (a disk that fills meanwhile).

Qt-free and torch-free.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from .formats import FORMATS

#: Extensions the app writes, by format key (.jpg/.jpeg/.jpe, .tif/.tiff are the same format).
WRITABLE_SUFFIXES: dict[str, str] = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg",
                                     ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}  # fmt: skip
#: Bytes per pixel and channel an encoder can need at worst, by format (compressed formats are smaller; a PNG of
#: noise is not): used for the space check, with the 16-bit depth doubling it.
_WORST_BYTES_PER_SAMPLE = {"png": 1.0, "tiff": 1.0, "jpeg": 0.5, "webp": 0.5}
#: Left free on top of the estimate, so the disk is not filled to the last byte by the app.
SPARE_BYTES = 64 * 1024 * 1024


class OutputProblem(ValueError):
    """The output cannot be written; the message says why and names the path, in plain words."""


class OutputNameProblem(OutputProblem):
    """The output's name and format disagree, or name a format the app does not write: the command is wrong as typed
    (exit code 2), whatever the disk holds."""


@dataclass(frozen=True)
class OutputSize:
    """What will be written: pixels, channels and bits, so the space it needs can be estimated."""

    width: int
    height: int
    channels: int = 3
    bit_depth: int = 8

    def worst_bytes(self, fmt: str) -> int:
        per_sample = _WORST_BYTES_PER_SAMPLE.get(fmt, 1.0) * (2 if self.bit_depth == 16 else 1)
        return int(self.width * self.height * self.channels * per_sample) + 64 * 1024  # + headers and metadata


def format_of_name(path: str | Path) -> str | None:
    """The format a file name asks for (``png``, ``jpeg``, ``webp``, ``tiff``), or None for any other extension."""
    return WRITABLE_SUFFIXES.get(Path(path).suffix.lower())


def name_problem(path: Path, fmt: str | None) -> str | None:
    """Why ``path`` cannot be written as ``fmt`` (None: the format follows the name), or None.

    ``.bmp`` and other extensions the app does not write are refused rather than filled with PNG bytes; a name and a
    ``--format`` that disagree are refused rather than one silently winning.
    """
    named = format_of_name(path)
    suffix = path.suffix.lower()
    choices = ", ".join(sorted({s for s in WRITABLE_SUFFIXES if s in (".png", ".jpg", ".webp", ".tif")}))
    if fmt is None:
        if named is None:
            what = f"a {suffix} file" if suffix else "a file without an extension"
            return f"{path}: cannot write {what}; name the output {choices} (PNG, JPEG, WebP or TIFF)"
        return None
    if fmt not in FORMATS:
        return f"{path}: unknown format {fmt!r}"
    if named is not None and named != fmt:
        return f"{path}: the name says {named.upper()} but the format asked for is {fmt.upper()}; make them agree"
    if named is None and suffix:
        return f"{path}: a {fmt.upper()} file needs a {FORMATS[fmt]} name, not {suffix}"
    return None


def nearest_folder(path: Path) -> tuple[Path, Path | None]:
    """The nearest existing ancestor of ``path`` (a folder), and the first ancestor that is in the way (a file).

    Returns ``(folder, None)`` when the folders can be created below ``folder``; ``(folder, blocker)`` when
    ``blocker`` exists and is not a folder.
    """
    path = Path(os.path.abspath(path))
    for parent in path.parents:
        if parent.exists():
            if parent.is_dir():
                return parent, None
            below = parent
            while below.parent.exists() and not below.parent.is_dir():
                below = below.parent
            folder = below.parent
            return folder, below
    return Path(path.anchor or "/"), None


def _probe(folder: Path) -> str | None:
    """Create and remove a hidden file in ``folder``: None if that works, else the plain reason."""
    probe = folder / f".desktop-sr-write-check.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "the disk is read-only"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "you do not have permission to write there"
        if exc.errno == errno.ENOSPC:
            return "the disk is full"
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def _megabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(1.0, n / 1e6):.0f} MB"


def check_folder(folder: Path, need_bytes: int = 0) -> None:
    """Raise :class:`OutputProblem` unless files of ``need_bytes`` in all can be written in ``folder`` (created if
    missing: only its nearest existing ancestor is probed, nothing is created here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputProblem(f"{folder} is a file, not a folder; choose a folder for the output")
    existing, blocker = nearest_folder(folder / "x")
    if blocker is not None:
        raise OutputProblem(f"{blocker} is a file, so {folder} cannot be a folder; choose another output")
    if (reason := _probe(existing)) is not None:
        raise OutputProblem(f"cannot write in {existing}: {reason}")
    if need_bytes > 0:
        try:
            free = shutil.disk_usage(existing).free
        except OSError:
            return
        if free < need_bytes + SPARE_BYTES:
            raise OutputProblem(
                f"not enough space in {existing}: the output needs about {_megabytes(need_bytes)}, "
                f"{_megabytes(free)} is free; free some space or choose another folder"
            )


def check_output(path: Path, fmt: str | None = None, size: OutputSize | None = None, *, overwrite: bool = True) -> str:
    """Raise :class:`OutputProblem` unless ``path`` can be written as ``fmt`` (None: from its name); return the format.

    Checks the name against the format, that the path is not a folder, that it does not exist unless ``overwrite``,
    that no file stands where a folder must be, that the nearest existing folder takes a new file, and, given the
    ``size``, that the disk has room for it.
    """
    path = Path(path)
    if (problem := name_problem(path, fmt)) is not None:
        raise OutputNameProblem(problem)
    out_fmt = fmt or format_of_name(path) or "png"
    if path.is_dir():
        raise OutputProblem(f"{path} is a folder; give a file name, or a folder for several photos")
    if path.exists() and not overwrite:
        raise OutputProblem(f"{path}: exists (use --overwrite)")
    check_folder(path.parent, size.worst_bytes(out_fmt) if size is not None else 0)
    return out_fmt


def writable_home_for(source: Path) -> Path:
    """The folder to propose for results of ``source``: its own folder, unless that is inside the app's installed
    files (the sample photo) or cannot take a new file; then the user's Pictures folder (``desktop-sr`` in it)."""
    import desktop_sr

    folder = Path(source).expanduser().absolute().parent
    package = Path(desktop_sr.__file__).resolve().parent
    inside = folder.resolve() == package or package in folder.resolve().parents
    if not inside and folder.is_dir() and _probe(folder) is None:
        return folder
    import platformdirs

    return Path(platformdirs.user_pictures_dir()) / "desktop-sr"
