"""The in-memory photo: float pixels for the model plus everything that must survive the round trip."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Photo:
    """Pixels in sRGB as float32 H x W x 3 in [0, 1] (converted from the embedded profile when it was not sRGB),
    plus the metadata a photographer expects to find again in the exported file."""

    rgb: np.ndarray
    source: Path
    format: str  # Pillow's format name: JPEG, PNG, TIFF, WEBP, BMP, HEIF, AVIF ...
    bit_depth: int = 8  # 8 or 16 per channel
    alpha: np.ndarray | None = None  # float32 H x W in [0, 1]
    icc_profile: bytes | None = None  # the original bytes, whatever the pixels were converted to
    #: True when the pixels were converted from ``icc_profile`` to sRGB; exports convert them back.
    converted_from_icc: bool = False
    exif: bytes | None = None  # orientation already applied to the pixels and reset to 1
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None
    info: dict[str, object] = field(default_factory=dict)  # other format details (e.g. JPEG quality estimate)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def content_hash(self) -> str:
        """A stable hash of the pixels (not the file): the same picture in two files shares cached work."""
        h = hashlib.blake2b(digest_size=16)
        h.update(str(self.rgb.shape).encode())
        h.update(np.ascontiguousarray(self.rgb).tobytes())
        if self.alpha is not None:
            h.update(np.ascontiguousarray(self.alpha).tobytes())
        return h.hexdigest()
