"""The session API every model (PiSA-SR, the bundled upscaler) implements.

The GUI worker, the CLI and the batch runner only ever talk to this interface, so every model is treated alike.
Images cross it as float32 numpy arrays, H x W x 3, RGB, values in [0, 1], in sRGB: numpy keeps torch out of
the callers and the imaging layer converts to and from files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from .control import Control, ReportFn
from .rect import Rect
from .strength_map import StrengthMaps

COLOR_FIXES = ("adain", "wavelet", "none")
#: x1 restores at the original size (noise, blur, JPEG) through the same path as an upscale.
SCALES = (1, 2, 3, 4, 8)
#: Realism presets of RCOD (t = 1 is PiSA-SR's own training timestep).
REALISM_PRESETS: dict[str, int] = {"default": 1, "fidelity": 250, "neutral": 500, "realism": 750}


@dataclass(frozen=True)
class RenderParams:
    """Everything that decides the pixels of a result. Frozen and hashable so it can key caches and queues."""

    pix: float = 1.0  # lambda_pix, 0..2
    sem: float = 1.0  # lambda_sem, 0..2
    realism: int = 1  # UNet timestep t, 1..999
    scale: int = 4  # output / input size
    color_fix: str = "adain"
    prompt: str = ""
    #: Local multipliers of pix and sem painted over the photo (see :mod:`.strength_map`); None = uniform.
    maps: StrengthMaps | None = None

    def __post_init__(self) -> None:
        if self.maps is not None and not isinstance(self.maps, StrengthMaps):
            raise ValueError(f"maps must be StrengthMaps or None, not {type(self.maps).__name__}")
        if self.maps is not None and self.maps.empty:
            object.__setattr__(self, "maps", None)  # no map at all: the plain scalar strengths
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, not {self.scale}")
        if self.color_fix not in COLOR_FIXES:
            raise ValueError(f"colour fix must be one of {COLOR_FIXES}, not {self.color_fix!r}")
        if not 1 <= int(self.realism) <= 999:
            raise ValueError(f"realism level must be an integer in 1..999, not {self.realism}")
        for name in ("pix", "sem"):
            v = getattr(self, name)
            if not -4.0 <= v <= 4.0:
                raise ValueError(f"{name} strength {v} is outside -4..4")

    def with_(self, **changes: object) -> RenderParams:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ModelInfo:
    """What the UI needs to know about a loaded model."""

    name: str
    kind: str  # the family's kind (see :mod:`.families`)
    device: str
    dtype: str
    supports_realism: bool = True
    supports_prompt: bool = True
    #: False when the colour fix does nothing with this model (the GUI disables it and says why; the CLI notes it).
    supports_color_fix: bool = True
    color_fix_note: str = ""
    #: Realism levels the adapters were trained for (RCOD-style models record them); empty = any t.
    trained_timesteps: tuple[int, ...] = ()
    licence: str = ""
    #: The output scales this model offers: a feed-forward upscaler its own factor and those below it (a community
    #: x8 model adds 8); any other scale is its output resized, which the GUI does not offer and the CLI notes.
    scales: tuple[int, ...] = SCALES


#: progress(done, total, stage) - stage is a short word such as "encode", "unet", "decode" (see :class:`Control`).
ProgressFn = ReportFn


#: A part of a result: ``Rect(x0, y0, x1, y1)`` in output pixels, x1/y1 exclusive (see :mod:`.rect`). A session's
#: ``render(region=...)`` also takes the plain 4-tuple in that order, which is what a ``Rect`` unpacks to.
Region = Rect


@dataclass
class Corners:
    """Decoded results at the corners of the (pix, sem) plane, for an instant image-space preview.

    ``base`` = decode(z_L) (pix = sem = 0), ``pix`` = decode(z_L - eps_pix) (1, 0),
    ``full`` = decode(z_L - eps_full) (1, 1). A preview for (a, b) is base + a (pix - base) + b (full - pix):
    exact for a linear decoder, a close first guess for the real one.
    """

    base: np.ndarray
    pix: np.ndarray
    full: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def blend(self, pix: float, sem: float, maps: StrengthMaps | None = None) -> np.ndarray:
        """The preview for (pix, sem), with the local ``maps`` if given (see :mod:`.strength_map`)."""
        if maps is not None:
            from .strength_map import output_strengths

            h, w = self.base.shape[:2]
            p, s = output_strengths(RenderParams(pix=pix, sem=sem, maps=maps), w, h)
            pix, sem = np.asarray(p)[..., None], np.asarray(s)[..., None]  # type: ignore[assignment]
        out = self.base + pix * (self.pix - self.base) + sem * (self.full - self.pix)
        return np.clip(out, 0.0, 1.0, out=out)


class PhotoHolder:
    """The photo part every session shares: the current photo and the output size it gives."""

    _rgb: np.ndarray | None = None
    #: Memory per output pixel while rendering (results, corner images, colour fix), and the working space that
    #: tiling bounds: each session class states its own measured figures.
    BYTES_PER_OUTPUT_PX: int
    RENDER_OVERHEAD: int

    def check_fits(self, scale: int) -> None:
        """Refuse a result that cannot fit in memory, before any work (see :mod:`desktop_sr.engine.hardware.memory`)."""
        from .hardware.memory import check_output_fits

        h, w = self.photo.shape[:2]
        check_output_fits(w, h, scale, self.BYTES_PER_OUTPUT_PX, overhead=self.RENDER_OVERHEAD)

    @property
    def photo(self) -> np.ndarray:
        if self._rgb is None:
            raise RuntimeError("no photo set: call set_photo first")
        return self._rgb

    def output_size(self, scale: int) -> tuple[int, int]:
        h, w = self.photo.shape[:2]
        return w * scale, h * scale

    def bicubic(self, scale: int) -> np.ndarray:
        """The "before" image, kept in the session's cache under its own key for this photo (``cache`` and ``_key``
        are the session's: its key says what else the photo's results depend on)."""
        from .kernels.processing import bicubic_upscale  # torch: the GUI imports this module, not this function

        key = self._key("bicubic", scale)  # type: ignore[attr-defined]
        cached = self.cache.get(key)  # type: ignore[attr-defined]
        if cached is None:
            cached = bicubic_upscale(self.photo, scale)
            self.cache.put(key, cached)  # type: ignore[attr-defined]
        return cached  # type: ignore[no-any-return]


@runtime_checkable
class UpscaleSession(Protocol):
    """One loaded model plus its per-photo cache. Not thread-safe: one worker thread owns it."""

    info: ModelInfo

    def set_photo(self, rgb: np.ndarray) -> None:
        """Use this photo (H x W x 3 float32 in [0, 1]) for the following calls. Cheap: nothing runs yet."""

    def output_size(self, scale: int) -> tuple[int, int]:
        """(width, height) of the result at this scale."""

    def bicubic(self, scale: int) -> np.ndarray:
        """The 'before' image: the photo upscaled by bicubic to exactly the output size."""

    def render(
        self,
        params: RenderParams,
        *,
        region: Region | None = None,
        control: Control | None = None,
    ) -> np.ndarray:
        """The result (or the crop ``region`` of it) for these parameters. Reuses cached work where it can."""

    def corners(self, params: RenderParams, *, control: Control | None = None) -> Corners:
        """Decoded corner images for instant previews of pix/sem changes (same realism, scale, prompt)."""

    def detail_map(self, params: RenderParams, *, control: Control | None = None) -> np.ndarray:
        """H x W float32 in [0, 1] at output size: where the semantic branch adds content (|eps_full - eps_pix|)."""

    def is_cached(self, params: RenderParams) -> bool:
        """True when a render with these params needs no network pass (only composition and decoding)."""

    def close(self) -> None:
        """Free memory (models, caches)."""


def check_photo(rgb: np.ndarray) -> np.ndarray:
    """Validate and normalise a photo array handed to a session."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("the photo is empty")
    return np.ascontiguousarray(arr, dtype=np.float32)
