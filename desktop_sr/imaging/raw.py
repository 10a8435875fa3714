"""Camera RAW and DNG through LibRaw (``rawpy``, the optional extra ``desktop-sr[raw]``), developed like a camera.

A RAW file holds sensor values, not a picture: it has to be developed. The development here aims at what the
camera's own JPEG looks like in tone, so an upscaled RAW and an upscaled JPEG of one shot look alike:

- the camera's as-shot white balance (not LibRaw's daylight default, not an automatic guess);
- the sRGB tone curve (gamma 2.4 with the linear toe, slope 12.92) into sRGB primaries, 16 bits per channel: a
  linear image would look dark and flat, and BT.709's curve (LibRaw's default) is visibly darker in the mid-tones;
- no automatic brightening and no "adjust maximum" (which LibRaw uses to stretch a photo whose brightest pixel is
  below the sensor's white level): both change exposure per photo, so two frames of one scene would differ;
- highlights clipped (as a camera JPEG does); the orientation applied by LibRaw while developing.

LibRaw gives only a few EXIF facts, so the camera's EXIF is read from the file itself (:mod:`.raw_exif`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .decode import TooManyPixels, check_size
from .errors import PhotoError
from .formats import HAVE_RAW, RAW_EXTENSIONS, RAW_INSTALL_HINT
from .photo import Photo
from .raw_exif import raw_exif

__all__ = ["HAVE_RAW", "RAW_INSTALL_HINT", "RAW_EXTENSIONS", "develop_params", "read_raw"]


# LibRaw's flip code -> the EXIF orientation it corresponds to (LibRaw has already turned the pixels).
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def develop_params() -> dict[str, object]:
    """rawpy.postprocess arguments for a camera-like 16-bit sRGB development (see the module docstring)."""
    import rawpy

    return {
        "use_camera_wb": True,
        "use_auto_wb": False,
        "no_auto_bright": True,
        "adjust_maximum_thr": 0.0,
        "output_color": rawpy.ColorSpace.sRGB,
        "output_bps": 16,
        "gamma": (2.4, 12.92),
        "highlight_mode": rawpy.HighlightMode.Clip,
    }


def read_raw(path: Path, data: bytes, max_pixels: int) -> Photo:
    """Develop the RAW file ``path`` (its bytes ``data``) into an upright 16-bit sRGB :class:`Photo`.

    Raises :class:`PhotoError` with a reason a photographer can act on: rawpy missing, a camera or format LibRaw
    does not know, a damaged file, too many pixels.
    """
    try:
        import rawpy
    except ImportError as exc:
        raise PhotoError(path, RAW_INSTALL_HINT) from exc
    version = ".".join(map(str, rawpy.libraw_version))
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            check_size((int(sizes.width), int(sizes.height)), max_pixels)
            rgb16 = raw.postprocess(**develop_params())
            facts = _libraw_facts(raw)
            flip = int(sizes.flip)
    except TooManyPixels as exc:
        w, h = exc.size
        raise PhotoError(path, f"{w} x {h} is more than the limit of {exc.limit:,} pixels") from exc
    except rawpy.LibRawFileUnsupportedError as exc:
        raise PhotoError(
            path, f"not a RAW format LibRaw {version} can read (an unsupported camera, or not a RAW file)"
        ) from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        raise PhotoError(path, f"damaged or truncated RAW file ({exc})") from exc
    except (rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawTooBigError, MemoryError) as exc:
        raise PhotoError(path, "too large to develop in the memory available") from exc
    except rawpy.LibRawError as exc:
        raise PhotoError(path, f"LibRaw {version} cannot develop it ({exc})") from exc
    except Exception as exc:  # LibRaw reports some damage as other errors; all mean the same to the user
        raise PhotoError(path, f"damaged RAW file ({exc or type(exc).__name__})") from exc
    warnings: list[str] = []
    exif = raw_exif(data, facts, warnings)
    rgb = rgb16.astype(np.float32)
    rgb *= np.float32(1.0 / 65535.0)
    return Photo(
        rgb=rgb,
        source=path,
        format=path.suffix.lstrip(".").upper(),
        bit_depth=16,
        exif=exif,
        dpi=None,  # a sensor has no print resolution; --dpi or --print sets one on export
        colour="srgb",
        warnings=warnings,
        info={"orientation": _FLIP_TO_ORIENTATION.get(flip, 1), "mode": "RAW", "raw": True, "libraw": version},
    )


def _libraw_facts(raw: object) -> dict[str, object]:
    """What LibRaw itself knows about the shot, to fill EXIF gaps the file's own tags leave."""
    facts: dict[str, object] = {}
    try:
        other = raw.other  # type: ignore[attr-defined]
        lens = raw.lens  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - older rawpy builds lack these; EXIF from the file still works
        return facts
    facts.update(
        iso=float(other.iso_speed or 0),
        exposure=float(other.shutter_speed or 0),
        aperture=float(other.aperture or 0),
        focal_length=float(other.focal_length or 0),
        timestamp=other.timestamp,
        artist=str(other.artist or ""),
        lens_model=str(lens.model or ""),
        lens_make=str(lens.make or ""),
    )
    return facts
