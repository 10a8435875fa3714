"""Real DNG files for tests, made with pidng from a real photo's pixels (no camera files can ship in the repo).

The photo's sRGB values are turned back into linear light, scaled per channel by a sensor's sensitivity (the
camera's white balance must undo it), mosaiced to an RGGB Bayer pattern, offset by a black level and stored as
14-bit sensor values. The colour matrix says the camera's primaries are sRGB's, so a correct development (camera
white balance, sRGB tone curve, no brightening) gives the photo back up to demosaicing error. EXIF goes where a
camera's DNG keeps it: make and model in IFD0, exposure, lens and dates in the EXIF IFD, position in the GPS IFD.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pidng.core import RAW2DNG
from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation
from pidng.dng import DNGTags, Tag, Type, dngIFD, dngTag

# XYZ (D65) from linear sRGB; a DNG colour matrix maps XYZ to the camera, so its inverse makes the camera "sRGB".
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
SENSOR_GAINS = (0.5, 1.0, 0.7)  # a greenish sensor: red and blue read low until white balance corrects them
BLACK, WHITE = 256, 16383


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def _sub_ifd(tag_id: int, ifd: dngIFD) -> dngTag:
    """A pointer tag to a sub-IFD (pidng's own IFD tag type cannot be built, so the pointer is made by hand)."""
    tag = dngTag((tag_id, Type.Long), [0])
    tag.subIFD = ifd
    return tag


def make_dng(
    path: Path,
    rgb: np.ndarray,
    *,
    exposure: float = 1.0,
    make: str = "Testmaker",
    model: str = "TM-1",
    orientation: int = 1,
    gains: tuple[float, float, float] = SENSOR_GAINS,
) -> Path:
    """Write ``rgb`` (sRGB float H x W x 3 in [0, 1], even sides) as a Bayer DNG shot at ``exposure`` (linear)."""
    h, w = rgb.shape[:2]
    assert h % 2 == 0 and w % 2 == 0
    scene = srgb_to_linear(np.asarray(rgb, np.float64)) * exposure * np.asarray(gains)
    cfa = np.empty((h, w))
    cfa[0::2, 0::2] = scene[0::2, 0::2, 0]
    cfa[0::2, 1::2] = scene[0::2, 1::2, 1]
    cfa[1::2, 0::2] = scene[1::2, 0::2, 1]
    cfa[1::2, 1::2] = scene[1::2, 1::2, 2]
    data = np.round(BLACK + np.clip(cfa, 0, 1) * (WHITE - BLACK)).astype(np.uint16)

    cam_from_xyz = np.linalg.inv(_SRGB_TO_XYZ)
    t = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, w), (Tag.ImageLength, h), (Tag.TileWidth, w), (Tag.TileLength, h),
        (Tag.Orientation, orientation), (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 16),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.CFARepeatPatternDim, [2, 2]), (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, BLACK), (Tag.WhiteLevel, WHITE),
        (Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in cam_from_xyz.ravel()]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[round(g * 10000), 10000] for g in gains]),
        (Tag.Make, make), (Tag.Model, model), (Tag.UniqueCameraModel, f"{make} {model}"),
        (Tag.DNGVersion, DNGVersion.V1_4), (Tag.DNGBackwardVersion, DNGVersion.V1_0),
        (Tag.DateTime, "2024:05:06 07:08:09"),
    ):  # fmt: skip
        t.set(tag, value)
    exif = dngIFD()
    exif.tags += [
        dngTag(Tag.ExposureTime, [[1, 250]]),
        dngTag(Tag.FNumber, [[56, 10]]),
        dngTag(Tag.PhotographicSensitivity, [400]),
        dngTag(Tag.DateTimeOriginal, "2024:05:06 07:08:09"),
        dngTag(Tag.FocalLength, [[50, 1]]),
        dngTag(Tag.EXIFPhotoLensModel, "Testlens 50mm F1.8"),
    ]
    gps = dngIFD()
    gps.tags += [
        dngTag((1, Type.Ascii), "N"),
        dngTag((2, Type.Rational), [[48, 1], [51, 1], [2400, 100]]),
        dngTag((3, Type.Ascii), "E"),
        dngTag((4, Type.Rational), [[2, 1], [21, 1], [700, 100]]),
    ]
    tags = t.__tags__  # pidng keeps its tags in this dict (dunder on both sides: not name-mangled)
    tags["exif"] = _sub_ifd(34665, exif)
    tags["gps"] = _sub_ifd(34853, gps)
    writer = RAW2DNG()
    writer.options(t, path="", compress=False)
    Path(path).write_bytes(bytes(writer.convert(data)))
    return Path(path)
