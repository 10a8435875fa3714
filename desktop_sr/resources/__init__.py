"""Files shipped inside the package: the app icon and a small sample photo (see README.md here for sources and
licences).

They live inside ``desktop_sr`` (not in the repository's top-level ``resources/``) so that a ``pip install``, an
editable install and the PyInstaller bundle all find them at the same place relative to this module. Paths are
built from ``__file__`` rather than ``importlib.resources`` because every consumer (Qt's icon loader, Pillow,
the packaging scripts) wants a real file path, and in all three layouts these files are real files on disk.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
SAMPLE_PHOTO = "sample_chelsea.png"
ICON_PNG = "desktop-sr.png"
ICON_ICO = "desktop-sr.ico"
ICON_ICNS = "desktop-sr.icns"

#: The globs a package build must ship (pyproject's package-data and the PyInstaller spec both use this list).
DATA_PATTERNS = ("*.png", "*.ico", "*.icns", "README.md")


def resource_path(name: str) -> Path:
    """Path of a shipped resource file. Raises FileNotFoundError with the expected location when it is missing
    (a broken install or bundle), so callers can report what is wrong instead of failing later in Pillow or Qt."""
    path = RESOURCES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {RESOURCES_DIR} (incomplete installation?)")
    return path


def sample_photo_path() -> Path:
    """The bundled sample photo (Chelsea the cat, CC0, 256 x 170 PNG)."""
    return resource_path(SAMPLE_PHOTO)


def icon_path() -> Path:
    """The 256 px PNG app icon, for Qt's window icon and the Linux ``.desktop`` entry."""
    return resource_path(ICON_PNG)
