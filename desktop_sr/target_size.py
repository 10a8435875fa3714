"""Output size by target: a long edge, a box to fit, or a print size at a DPI, instead of a bare x2/x3/x4.

A photographer thinks "6000 px on the long edge" or "A3 at 300 dpi". The models only know whole scales, so a target
is reached by running the smallest model scale that reaches it (least invented detail thrown away, least time) and
then a high-quality downsample (Lanczos, on the float result, so no 8-bit rounding happens in between) to exactly the
size asked. A target smaller than the photo is refused (that would be a downscale, which needs no model), and so is
one beyond the largest model scale or the memory the render would need.

Qt-free and torch-free: the CLI, the batch and the GUI use the same arithmetic, and it runs without a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .engine.api import SCALES, RenderParams, UpscaleSession
from .engine.control import Control
from .engine.errors import TooLarge
from .imaging.pixels import resample

__all__ = ["DPI_POLICIES", "KINDS", "SizePlan", "TargetError", "TargetKind", "TargetSize", "TargetTooLarge",
           "check_fits", "check_session_fits", "parse_box", "parse_print", "plan_size", "render_to_target",
           "resample"]  # fmt: skip


class TargetKind(str, Enum):
    """What a :class:`TargetSize`'s numbers mean. A ``str`` enum, so a kind still equals its word ("long-edge") and
    serialises as it: a batch's saved signature (JSON of the target) and every file name stay as they were."""

    LONG_EDGE = "long-edge"
    FIT = "fit"
    PRINT = "print"

    def __str__(self) -> str:
        return self.value  # the word, in messages and f-strings alike (Python 3.11 formats mixed-in enums by name)


KINDS = tuple(TargetKind)
UNITS = {"cm": 1 / 2.54, "mm": 1 / 25.4, "in": 1.0}  # -> inches
DEFAULT_PRINT_DPI = 300.0
DPI_POLICIES = ("keep-print-size", "keep-dpi")
_MAX_SIDE = 1_000_000

_BOX = re.compile(r"^\s*(\d+)\s*[x×X*]\s*(\d+)\s*$")
_PRINT = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*[x×X*]\s*(\d+(?:[.,]\d+)?)\s*(cm|mm|in|inch|inches|\")?\s*$", re.I)


class TargetError(ValueError):
    """A target that cannot be met (would downscale, beyond the largest model scale, malformed)."""


class TargetTooLarge(TooLarge):
    """The render a target needs would not fit in memory; the message names the largest target that fits."""


@dataclass(frozen=True)
class TargetSize:
    """What the user asked for (``kind`` is given as a :class:`TargetKind` or its word, and kept as the kind).

    - long-edge: ``width`` is the long edge in pixels (``height`` unused);
    - fit: the result fits inside ``width`` x ``height`` pixels, aspect ratio kept;
    - print: ``width`` x ``height`` in ``unit`` (cm, mm, in) at ``dpi``; the print turns to the photo's orientation
      (a 30x20 cm print of a portrait photo is 20 cm wide), then the photo fits inside it.
    """

    kind: TargetKind
    width: float
    height: float = 0.0
    unit: str = "px"
    dpi: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", TargetKind(self.kind))  # frozen: the word becomes the kind
        except ValueError:
            raise TargetError(f"unknown target {self.kind!r}; choose one of {', '.join(KINDS)}") from None
        if not 0 < self.width <= _MAX_SIDE or (
            self.kind is not TargetKind.LONG_EDGE and not 0 < self.height <= _MAX_SIDE
        ):
            raise TargetError("target sizes must be positive")
        if self.kind is TargetKind.PRINT:
            if self.unit not in UNITS:
                raise TargetError(f"print sizes are in cm, mm or in, not {self.unit!r}")
            if self.dpi is None or not 1 <= self.dpi <= 10000:
                raise TargetError("a print size needs a DPI between 1 and 10000")

    @staticmethod
    def long_edge(pixels: int) -> TargetSize:
        return TargetSize(TargetKind.LONG_EDGE, int(pixels))

    @staticmethod
    def fit(width: int, height: int) -> TargetSize:
        return TargetSize(TargetKind.FIT, int(width), int(height))

    @staticmethod
    def print_size(width: float, height: float, unit: str = "cm", dpi: float = DEFAULT_PRINT_DPI) -> TargetSize:
        return TargetSize(TargetKind.PRINT, float(width), float(height), unit.lower(), float(dpi))

    @property
    def label(self) -> str:
        """A short name for file names and menus: 6000px, fit3840x2160, print30x20cm."""
        if self.kind is TargetKind.LONG_EDGE:
            return f"{int(self.width)}px"
        if self.kind is TargetKind.FIT:
            return f"fit{int(self.width)}x{int(self.height)}"
        return f"print{_num(self.width)}x{_num(self.height)}{self.unit}"

    def describe(self) -> str:
        """Words for a menu or a message: '6000 px long edge', 'fit 3840 × 2160', '30 × 20 cm at 300 dpi'."""
        if self.kind is TargetKind.LONG_EDGE:
            return f"{int(self.width)} px long edge"
        if self.kind is TargetKind.FIT:
            return f"fit {int(self.width)} × {int(self.height)}"
        return f"{_num(self.width)} × {_num(self.height)} {self.unit} at {_num(self.dpi or 0)} dpi"

    def pixels(self, photo_width: int, photo_height: int) -> tuple[int, int]:
        """The exact output size (width, height) for a photo of this size, aspect ratio kept."""
        w, h = int(photo_width), int(photo_height)
        if self.kind is TargetKind.LONG_EDGE:
            n = int(self.width)
            return (n, _scaled(h, n, w)) if w >= h else (_scaled(w, n, h), n)
        if self.kind is TargetKind.FIT:
            bw, bh = int(self.width), int(self.height)
        else:
            inches = UNITS[self.unit]
            bw = round(self.width * inches * (self.dpi or DEFAULT_PRINT_DPI))
            bh = round(self.height * inches * (self.dpi or DEFAULT_PRINT_DPI))
            if (bw >= bh) != (w >= h) and bw != bh:  # the print turns to the photo's orientation
                bw, bh = bh, bw
        if bw * h <= bh * w:  # the width binds
            return bw, min(bh, _scaled(h, bw, w))
        return min(bw, _scaled(w, bh, h)), bh


def _scaled(side: int, new: int, old: int) -> int:
    """``side * new / old`` rounded to the nearest pixel, at least 1 (integer arithmetic: no float drift)."""
    return max(1, (2 * side * new + old) // (2 * old))


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class SizePlan:
    """How a target is reached for one photo: render at ``scale``, then resample to ``size`` if ``resample``."""

    photo: tuple[int, int]
    size: tuple[int, int]
    scale: int

    @property
    def rendered(self) -> tuple[int, int]:
        return self.photo[0] * self.scale, self.photo[1] * self.scale

    @property
    def resample(self) -> bool:
        return self.rendered != self.size

    @property
    def ratio(self) -> float:
        """Output pixels per photo pixel (along the long edge): what DPI and EXIF resolution scale by."""
        w, h = self.photo
        return self.size[0] / w if w >= h else self.size[1] / h


def plan_size(photo: tuple[int, int], target: TargetSize, scales: tuple[int, ...] = SCALES) -> SizePlan:
    """Choose the model scale for ``target``: the smallest that reaches it, so the downsample after it is the least.

    Raises :class:`TargetError` when the target is smaller than the photo (a downscale) or larger than the largest
    model scale can reach.
    """
    w, h = int(photo[0]), int(photo[1])
    ow, oh = target.pixels(w, h)
    if ow < w or oh < h:
        raise TargetError(
            f"{target.describe()} is {ow} × {oh} pixels, smaller than the photo ({w} × {h}): that would downscale "
            "it. Choose a larger target, or a scale."
        )
    need = max(ow / w, oh / h)
    usable = sorted(s for s in scales if s >= 1)
    fitting = [s for s in usable if s >= need - 1e-9]
    if not fitting:
        top = usable[-1]
        raise TargetError(
            f"{target.describe()} is {ow} × {oh} pixels, {need:.2f} times the photo ({w} × {h}); the models go up to "
            f"×{top} ({w * top} × {h * top}). Choose a smaller target, or upscale the result again."
        )
    return SizePlan((w, h), (ow, oh), fitting[0])


def check_fits(plan: SizePlan, bytes_per_px: int, overhead: int = 0, available: int | None = None) -> None:
    """Refuse a target whose render (at the model scale) and downsample would not fit in free memory.

    Raises :class:`TargetTooLarge` naming the largest long edge that fits. ``available`` overrides the free memory
    (tests); None asks the operating system, and a system that does not say refuses nothing.
    """
    from .engine.hardware.memory import available_ram

    have = available_ram() if available is None else available
    if have is None:
        return
    rw, rh = plan.rendered
    extra = plan.size[0] * plan.size[1] * 3 * 4 + rw * rh * 4 * 2 if plan.resample else 0  # result + one channel
    need = rw * rh * bytes_per_px + overhead + extra
    if need <= have:
        return
    w, h = plan.photo
    smaller = sorted((s for s in SCALES if 1 <= s < plan.scale), reverse=True)
    ok = [s for s in smaller if w * s * h * s * bytes_per_px + overhead <= have]
    advice = (
        f"The largest result that fits is {max(w, h) * ok[0]} px on the long edge (×{ok[0]})."
        if ok
        else "Crop the photo first, or close other programs."
    )
    raise TargetTooLarge(
        f"{plan.size[0]} × {plan.size[1]} needs a ×{plan.scale} render ({rw} × {rh}) and about {_amount(need)} of "
        f"memory, but only {_amount(have)} is free. {advice}",
        need,
        have,
    )


def _amount(n: int) -> str:
    return f"{n / 1024**3:.1f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


def check_session_fits(session: UpscaleSession, plan: SizePlan) -> None:
    """:func:`check_fits` with the session's own memory figures (sessions that state none are not checked here;
    the engine still checks the render itself)."""
    per_px = getattr(session, "BYTES_PER_OUTPUT_PX", None)
    if isinstance(per_px, int):
        check_fits(plan, per_px, int(getattr(session, "RENDER_OVERHEAD", 0) or 0))


def render_to_target(
    session: UpscaleSession,
    photo: tuple[int, int],
    params: RenderParams,
    target: TargetSize,
    *,
    control: Control | None = None,
) -> tuple[np.ndarray, SizePlan]:
    """Render the session's photo (of size ``photo``, already set) to exactly the target size.

    Checks memory first (when the session states its figures), renders at the chosen model scale, then downsamples.
    """
    plan = plan_size(photo, target)
    check_session_fits(session, plan)
    result = session.render(params.with_(scale=plan.scale), control=control)
    if plan.resample:
        result = resample(result, plan.size)
    return result, plan


def parse_box(text: str) -> tuple[int, int]:
    """'3840x2160' -> (3840, 2160). Raises TargetError."""
    m = _BOX.match(text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise TargetError(f"expected WIDTHxHEIGHT in pixels, such as 3840x2160, not {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_print(text: str) -> tuple[float, float, str]:
    """'30x20cm' -> (30.0, 20.0, 'cm'); also mm and in (or "). Raises TargetError."""
    m = _PRINT.match(text)
    if not m or not m.group(3):
        raise TargetError(f"expected a print size with its unit, such as 30x20cm or 12x8in, not {text!r}")
    unit = m.group(3).lower()
    unit = "in" if unit in ("in", "inch", "inches", '"') else unit
    w, h = (float(g.replace(",", ".")) for g in (m.group(1), m.group(2)))
    if w <= 0 or h <= 0:
        raise TargetError("print sizes must be positive")
    return w, h, unit
