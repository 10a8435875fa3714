"""Which files the app reads and writes, by extension, and the optional HEIF/AVIF plugin.

Kept apart from the decoders so the batch planner can filter a folder without importing numpy-heavy code paths.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

try:  # optional extra `desktop-sr[heif]`: HEIC/HEIF and AVIF through pillow-heif
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    HAVE_HEIF = True
except ImportError:
    HAVE_HEIF = False

_BASE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".bmp", ".dib"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".avif"})

#: Camera RAW and DNG, developed through LibRaw (see :mod:`.raw`). DNG is TIFF-based but must never go to Pillow,
#: which would return its small embedded preview instead of the photo.
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef", ".srw",
     ".rwl", ".3fr", ".iiq", ".erf", ".mrw", ".x3f"}
)  # fmt: skip
#: True when rawpy (LibRaw, the optional extra `desktop-sr[raw]`) is installed; checked without importing it.
HAVE_RAW = importlib.util.find_spec("rawpy") is not None
RAW_INSTALL_HINT = "camera RAW and DNG need the optional extra: pip install 'desktop-sr[raw]' (LibRaw through rawpy)"

#: Lower-case extensions (with the dot) that :func:`read_photo` accepts; HEIC/HEIF/AVIF only with pillow-heif,
#: camera RAW only with rawpy.
SUPPORTED_READ_EXTENSIONS: frozenset[str] = (
    _BASE_EXTENSIONS | (HEIF_EXTENSIONS if HAVE_HEIF else frozenset()) | (RAW_EXTENSIONS if HAVE_RAW else frozenset())
)

#: Output formats by key, with the extension a new file gets.
FORMATS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
#: The output formats a user chooses from (command line and dialogs); "same" keeps the source's format where the app
#: can write it, else PNG.
OUTPUT_FORMAT_CHOICES = ("same", *FORMATS)
_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".webp": "webp",
              ".tif": "tiff", ".tiff": "tiff"}  # fmt: skip
#: Formats that can hold an alpha channel and 16 bits per channel.
ALPHA_FORMATS = frozenset({"png", "webp", "tiff"})
DEEP_FORMATS = frozenset({"png", "tiff"})


def is_probably_image(path: str | Path) -> bool:
    """A cheap filter for batch planning: a supported extension and not a hidden/temp file.

    It does not open the file; the content is checked (and a bad file reported) when it is read.
    """
    p = Path(path)
    return p.suffix.lower() in SUPPORTED_READ_EXTENSIONS and not p.name.startswith(".")


def is_raw_path(path: str | Path) -> bool:
    """A camera RAW or DNG file, by extension (read through LibRaw, never through Pillow)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def format_for(path: str | Path, options: object | None = None) -> str:
    """The output format key for ``path``: ``options.format`` if set, else from the extension, else PNG."""
    fmt = getattr(options, "format", None)
    if fmt:
        return str(fmt)
    return _BY_SUFFIX.get(Path(path).suffix.lower(), "png")


def flattening_note(fmt: str) -> str:
    """What to tell the user when a photo with transparency is saved in ``fmt``, which cannot hold it."""
    return f"{fmt.upper()} cannot hold transparency: it is flattened onto white (PNG, WebP and TIFF keep it)"
