"""Qt-free photo I/O that loses nothing: orientation, ICC, EXIF, XMP, DPI, 16-bit, alpha, atomic writes."""

from .atomic import atomic_write
from .errors import PhotoError
from .photo import Photo
from .read import DEFAULT_MAX_PIXELS, SUPPORTED_READ_EXTENSIONS, is_probably_image, read_photo
from .write import FORMATS, SaveOptions, format_for, to_uint8, to_uint16, upscale_alpha, write_photo

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "SUPPORTED_READ_EXTENSIONS",
    "Photo",
    "PhotoError",
    "SaveOptions",
    "atomic_write",
    "format_for",
    "is_probably_image",
    "read_photo",
    "to_uint8",
    "to_uint16",
    "upscale_alpha",
    "write_photo",
]
