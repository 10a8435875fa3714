"""The in-memory photo: float pixels for the model plus everything that must survive the round trip."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: How ``Photo.rgb`` relates to ``Photo.icc_profile``; the writer uses it to put the colours back.
COLOUR_STATES = (
    "srgb",  # no profile, or one that behaves as sRGB: pixels are sRGB as stored
    "converted",  # pixels were converted from the profile to sRGB (export converts back when it can)
    "native",  # read with keep_profile: pixels are still in the profile's space
    "ignored",  # the profile could not be applied (unreadable, or for another kind of picture); bytes kept
)


@dataclass
class Photo:
    """Pixels in sRGB as float32 H x W x 3 in [0, 1] (converted from the embedded profile unless read with
    ``keep_profile``), plus the metadata a photographer expects to find again in the exported file."""

    rgb: np.ndarray
    source: Path
    format: str  # Pillow's format name: JPEG, PNG, TIFF, WEBP, BMP, HEIF, AVIF ...
    bit_depth: int = 8  # 8 or 16 per channel (16 also for float TIFFs)
    alpha: np.ndarray | None = None  # float32 H x W in [0, 1], straight (not premultiplied)
    icc_profile: bytes | None = None  # the original bytes, whatever the pixels were converted to
    exif: bytes | None = None  # orientation already applied to the pixels and reset to 1; storage tags removed
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None  # of the upright picture
    colour: str = "srgb"  # one of COLOUR_STATES
    grey: bool = False  # the source stored one grey channel (rgb has three equal channels)
    warnings: list[str] = field(default_factory=list)  # what could not be kept, in words for the user
    info: dict[str, object] = field(default_factory=dict)  # other details: stored orientation, Pillow mode

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow and Qt say it."""
        return self.width, self.height

    @property
    def converted_from_icc(self) -> bool:
        """True when the pixels were converted from ``icc_profile`` to sRGB; exports convert them back."""
        return self.colour == "converted"

    def content_hash(self) -> str:
        """A stable hash of the pixels (not the file), used as a cache key: the same picture in two files, or
        the same file read twice, shares cached model work. Metadata does not change it; alpha does."""
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{self.rgb.shape}|{self.rgb.dtype}".encode())
        h.update(np.ascontiguousarray(self.rgb).tobytes())
        if self.alpha is not None:
            h.update(b"alpha")
            h.update(np.ascontiguousarray(self.alpha).tobytes())
        return h.hexdigest()
