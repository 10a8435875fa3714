"""Finding the photos of a batch: files and folders in, a sorted list of sources with their mirrored sub-folder out.

Kept apart from naming and collision rules because it is the part that touches arbitrary user folders: hidden and
system files (``.DS_Store``, ``Thumbs.db``, ``@eaDir``, ``$RECYCLE.BIN``), links that loop, an output folder inside
the input folder (a rerun must not upscale its own results) and files that vanish while we look.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..imaging import SUPPORTED_READ_EXTENSIONS, is_raw_path
from ..imaging.formats import RAW_INSTALL_HINT

# Names some system or tool puts into photo folders; never photos, often with image-like extensions.
_SYSTEM_NAMES = {
    "thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    "__macosx",
    "@eadir",
    "$recycle.bin",
    "system volume information",
    "lost+found",
}
_WIN_HIDDEN = getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 2) | getattr(stat, "FILE_ATTRIBUTE_SYSTEM", 4)
_MAC_HIDDEN = getattr(stat, "UF_HIDDEN", 0x8000)


@dataclass(frozen=True)
class Source:
    """One photo to process. ``rel_dir`` is where its result goes under the output folder ('.' = the top)."""

    path: Path
    rel_dir: Path


@dataclass(frozen=True)
class Refused:
    """An input the user named explicitly that cannot be part of the batch, and why."""

    path: Path
    reason: str


def is_hidden_or_system(entry: os.DirEntry[str] | Path) -> bool:
    """Dot files, Windows hidden/system attributes, macOS hidden flag, and well-known system folders/files."""
    name = entry.name
    if name.startswith(".") or name.startswith("~$") or name.lower() in _SYSTEM_NAMES:
        return True
    try:
        st = entry.stat(follow_symlinks=False) if isinstance(entry, os.DirEntry) else entry.lstat()
    except OSError:
        return False
    attrs = getattr(st, "st_file_attributes", 0)
    flags = getattr(st, "st_flags", 0)
    return bool(attrs & _WIN_HIDDEN) or bool(flags & _MAC_HIDDEN)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_READ_EXTENSIONS


def _walk(root: Path, recursive: bool, exclude: set[Path]) -> tuple[list[Source], int]:
    """Photos under ``root`` (sorted, case-insensitively per folder) and how many entries were passed over.

    ``os.scandir`` rather than ``Path.rglob``: one stat per entry, no following of directory links (a link back
    to a parent would loop forever), and errors on one sub-folder (permission denied) skip that folder only.
    """
    found: list[Source] = []
    ignored = 0
    stack: list[tuple[Path, Path]] = [(root, Path("."))]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: (e.name.casefold(), e.name))
        except OSError:
            ignored += 1
            continue
        subdirs: list[tuple[Path, Path]] = []
        for entry in entries:
            if is_hidden_or_system(entry):
                ignored += 1
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=True)
            except OSError:
                ignored += 1
                continue
            path = Path(entry.path)
            if is_dir:
                if recursive and _resolved(path) not in exclude:
                    subdirs.append((path, rel / entry.name))
                elif not recursive:
                    ignored += 1
            elif is_file and is_image_name(path):
                found.append(Source(path, rel))
            else:
                ignored += 1
        stack.extend(reversed(subdirs))  # depth-first in name order
    return found, ignored


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def find_sources(
    inputs: Sequence[str | Path], *, recursive: bool, exclude: Iterable[Path] = ()
) -> tuple[list[Source], list[Refused], int]:
    """Sources from files and folders, in the given order, each file once.

    Returns (sources, refused explicit inputs, number of entries passed over inside folders). A file named
    explicitly is kept even when hidden (the user asked for it) but must exist and have a photo extension;
    its result goes to the top of the output folder. A folder's photos mirror their sub-folders.
    ``exclude`` lists folders never entered (the output folder).
    """
    excluded = {_resolved(Path(p)) for p in exclude}
    sources: list[Source] = []
    refused: list[Refused] = []
    ignored = 0
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            batch, skipped = _walk(path, recursive, excluded)
            ignored += skipped
        elif path.is_file():
            if not is_image_name(path) and is_raw_path(path):
                refused.append(Refused(path, RAW_INSTALL_HINT))
                continue
            if not is_image_name(path):
                refused.append(Refused(path, f"not a supported photo type ({path.suffix or 'no extension'})"))
                continue
            batch = [Source(path, Path("."))]
        elif path.exists():
            refused.append(Refused(path, "not a file or folder"))
            continue
        else:
            refused.append(Refused(path, "file not found"))
            continue
        for src in batch:
            key = _resolved(src.path)
            if key in seen:
                continue
            seen.add(key)
            sources.append(Source(src.path.absolute(), src.rel_dir))
    return sources, refused, ignored
