"""Qt-free photo I/O that loses nothing: orientation, ICC, EXIF, XMP, DPI, 16-bit, alpha, atomic writes.

Read with :func:`read_photo` (pixels upright, in sRGB, as float32; camera RAW and DNG developed through LibRaw),
write with :func:`write_photo` (back to the source's colour profile, with its metadata updated for the new size).
Every failure is a :class:`PhotoError` whose message starts with the file's path.
"""

from .atomic import atomic_write
from .color import ProfileError, is_srgb, profile_name, srgb_bytes
from .errors import PhotoError
from .formats import (
    FORMATS,
    HAVE_HEIF,
    HAVE_RAW,
    RAW_EXTENSIONS,
    SUPPORTED_READ_EXTENSIONS,
    format_for,
    is_probably_image,
    is_raw_path,
)
from .photo import COLOUR_STATES, Photo
from .pixels import as_float, flatten, to_uint8, to_uint16, upscale_alpha
from .read import DEFAULT_MAX_PIXELS, Header, read_header, read_photo
from .write import SaveOptions, write_photo

__all__ = [
    "COLOUR_STATES",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "HAVE_HEIF",
    "HAVE_RAW",
    "RAW_EXTENSIONS",
    "SUPPORTED_READ_EXTENSIONS",
    "Photo",
    "PhotoError",
    "ProfileError",
    "SaveOptions",
    "as_float",
    "atomic_write",
    "flatten",
    "format_for",
    "is_probably_image",
    "is_raw_path",
    "is_srgb",
    "profile_name",
    "Header",
    "read_header",
    "read_photo",
    "srgb_bytes",
    "to_uint8",
    "to_uint16",
    "upscale_alpha",
    "write_photo",
]
