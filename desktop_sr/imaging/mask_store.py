"""Painted strength masks kept with the photo they belong to: a JSON sidecar and 16-bit PNG masks per photo.

Where: the app's data folder (``DESKTOP_SR_MASKS_DIR`` if set, else ``<user data dir>/masks``), one entry per photo
*content*: the key is a hash of the file's bytes. So a mask follows the photo when it is renamed or moved, photos on
read-only cards or network shares get masks too, the photo folders stay clean, and a batch finds a photo's mask by
hashing the file (about 1 GB/s). An edited photo (other bytes) no longer matches its old mask, as it should: the
mask was painted on other pixels.

Files: ``<key>.json`` holds the format version, the photo's name and size, the editor's settings when the mask was
saved (for reference) and the mask files; ``<key>.sem.png`` / ``<key>.pix.png`` are 16-bit greyscale maps of the
strength multipliers, ``value / 65535 * gain`` (gain recorded in the JSON). Writes are atomic and take the folder's
lock (``.masks.lock``), so two processes saving at once never mix their files; a damaged or
unreadable entry reads as "no mask" with a reason, never an exception that stops a batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
from PIL import Image

from .. import durable
from .atomic import atomic_write
from .errors import PhotoError

ENV_MASKS_DIR = "DESKTOP_SR_MASKS_DIR"
VERSION = 1
#: Multiplier that a full-white mask pixel stands for (the engine's largest: "more detail" doubles a strength).
GAIN = 2.0
KINDS = ("pix", "sem")
LOCK_NAME = "masks"  # the folder's lock file: ``.masks.lock``


def masks_dir() -> Path:
    env = os.environ.get(ENV_MASKS_DIR)
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("desktop-sr")) / "masks"


def photo_key(source: str | Path) -> str:
    """Hash of the photo file's bytes (streamed): the name of its mask entry."""
    h = hashlib.blake2b(digest_size=20)
    with open(source, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class SavedMasks:
    """A photo's masks (H x W float32 multipliers, None = no map) and the settings noted with them."""

    pix: np.ndarray | None = None
    sem: np.ndarray | None = None
    settings: dict[str, object] = field(default_factory=dict)

    def get(self, kind: str) -> np.ndarray | None:
        return self.pix if kind == "pix" else self.sem


def _write_png16(path: Path, values: np.ndarray) -> None:
    level = np.clip(np.rint(np.asarray(values, np.float64) / GAIN * 65535.0), 0, 65535).astype(np.uint16)

    def write(tmp: Path) -> None:
        Image.fromarray(level).save(tmp, format="PNG")

    atomic_write(path, write)


def _read_png16(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise ValueError(f"{path.name} is not a greyscale mask")
    top = 255.0 if arr.dtype == np.uint8 else 65535.0
    return (arr.astype(np.float32) / np.float32(top)) * np.float32(GAIN)


def save_masks(
    source: str | Path,
    masks: SavedMasks,
    *,
    size: tuple[int, int] | None = None,
    folder: Path | None = None,
    key: str | None = None,
) -> Path | None:
    """Keep ``masks`` for the photo file ``source`` (both maps None: forget them). Returns the JSON's path.

    Raises :class:`PhotoError` when the data folder cannot be written."""
    root = folder or masks_dir()
    key = key or photo_key(source)
    if masks.pix is None and masks.sem is None:
        delete_masks(source, folder=root, key=key)
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhotoError(root, f"cannot create the masks folder: {exc.strerror or exc}") from exc
    with _folder_lock(root):
        return _save_entry(root, key, source, masks, size)


@contextlib.contextmanager
def _folder_lock(root: Path) -> Iterator[None]:
    """One writer at a time in the masks folder (two windows, or a window and a CLI, saving the same photo's masks
    would otherwise mix one's maps with the other's record). Under it, temp files a killed writer left go."""
    try:
        with durable.locked(root / LOCK_NAME):
            for tmp in root.glob(".*.part"):
                durable.discard(tmp)
            yield
    except durable.LockBusy as exc:
        raise PhotoError(root, "another desktop-sr is saving masks; try again") from exc
    except OSError as exc:
        raise PhotoError(root, f"cannot lock the masks folder: {exc.strerror or exc}") from exc


def _save_entry(root: Path, key: str, source: str | Path, masks: SavedMasks, size: tuple[int, int] | None) -> Path:
    files: dict[str, str] = {}
    for kind in KINDS:
        values = masks.get(kind)
        png = root / f"{key}.{kind}.png"
        if values is None:
            with contextlib.suppress(OSError):
                png.unlink()
            continue
        _write_png16(png, values)
        files[kind] = png.name
    entry = {"version": VERSION, "photo": Path(source).name, "size": list(size) if size else None, "gain": GAIN,
             "maps": files, "settings": masks.settings}  # fmt: skip
    path = root / f"{key}.json"
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(entry, indent=1), encoding="utf-8"))
    return path


def load_masks(source: str | Path, *, folder: Path | None = None, key: str | None = None) -> SavedMasks | None:
    """The masks saved for the photo file ``source``, or None. Raises :class:`PhotoError` (with a reason a person
    can act on) for an entry that exists but cannot be read."""
    root = folder or masks_dir()
    try:
        key = key or photo_key(source)
    except OSError:
        return None  # the photo itself is unreadable: its own read reports that
    path = root / f"{key}.json"
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("version") != VERSION:
            raise ValueError("unknown format")
        out = SavedMasks(settings=dict(entry.get("settings") or {}))
        for kind, name in dict(entry.get("maps") or {}).items():
            if kind in KINDS:
                setattr(out, kind, _read_png16(root / str(name)))
    except (OSError, ValueError, TypeError) as exc:
        raise PhotoError(path, f"the saved mask cannot be read ({exc}); paint it again or delete this file") from exc
    return out if (out.pix is not None or out.sem is not None) else None


def delete_masks(source: str | Path, *, folder: Path | None = None, key: str | None = None) -> None:
    root = folder or masks_dir()
    try:
        key = key or photo_key(source)
    except OSError:
        return
    if not root.is_dir():
        return
    with _folder_lock(root):
        for name in (f"{key}.json", *(f"{key}.{k}.png" for k in KINDS)):
            with contextlib.suppress(OSError):
                (root / name).unlink()
