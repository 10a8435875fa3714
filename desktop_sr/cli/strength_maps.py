"""`desktop-sr upscale --sem-map mask.png --pix-map mask.png`: local strengths from greyscale images.

White means the full strength given by --sem (or --pix), black none, grey in between; the map may have any size
with the photo's proportions (the engine resamples it to its latent grid and feathers it, see
:mod:`desktop_sr.engine.strength_map`). Everything is checked before the model loads: a missing, unreadable or
wrongly proportioned map costs no waiting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..engine.api import RenderParams
from ..engine.strength_map import StrengthMaps

#: Proportions may differ this much (relative), or by one pixel of the map, e.g. after rounding a downscale.
ASPECT_TOLERANCE = 0.02

Maps = dict[str, tuple[Path, np.ndarray]]  # "pix"/"sem" -> (file, H x W float32 in [0, 1])


def add_map_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "local strength",
        "Greyscale images that scale the strengths place by place: white = the strength given by --sem/--pix, "
        "black = none (e.g. black over text and faces for no invented detail there). Any size with the photo's "
        "proportions; edges are feathered.",
    )
    g.add_argument("--sem-map", type=Path, metavar="FILE", help="semantic strength map (PNG, TIFF, JPEG ...)")
    g.add_argument("--pix-map", type=Path, metavar="FILE", help="pixel strength map")


def read_map(path: Path) -> np.ndarray:
    """A greyscale map as H x W float32 in [0, 1] (8- or 16-bit; colour images by their luminance). Raises
    ValueError with the file's name and what is wrong."""
    if not path.exists():
        raise ValueError(f"{path}: strength map not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a strength map image")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
            elif im.mode == "F":
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the strength map ({exc})") from exc
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"{path}: the strength map must be a greyscale image")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: the strength map holds values that are not numbers")
    return np.clip(arr, 0.0, 1.0)


def maps_from_args(args: argparse.Namespace) -> Maps:
    """The maps named on the command line, read and checked (ValueError with a plain reason)."""
    out: Maps = {}
    for kind in ("pix", "sem"):
        path = getattr(args, f"{kind}_map", None)
        if path is not None:
            out[kind] = (path, read_map(path))
    return out


def photo_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an upright photo from its header, or None where only decoding tells (camera RAW) or the
    file is damaged (it is then reported when read)."""
    from ..imaging import PhotoError, read_header

    try:
        header = read_header(path)
    except PhotoError:
        return None
    return None if header is None else header.size


def proportion_problem(maps: Maps, size: tuple[int, int], photo: str) -> str | None:
    """Why the maps do not fit a photo of ``size`` (width, height), or None."""
    pw, ph = size
    for path, arr in maps.values():
        mh, mw = arr.shape
        expected_h = mw * ph / pw
        if abs(mh - expected_h) <= 1 or abs(mh / expected_h - 1.0) <= ASPECT_TOLERANCE:
            continue
        return (
            f"{path}: the strength map is {mw} x {mh} but {photo} is {pw} x {ph}; a map covers the whole photo, "
            "so it needs the photo's proportions (any size)"
        )
    return None


def with_maps(params: RenderParams, maps: Maps) -> RenderParams:
    if not maps:
        return params
    return params.with_(maps=StrengthMaps(pix=maps.get("pix", (None, None))[1], sem=maps.get("sem", (None, None))[1]))
