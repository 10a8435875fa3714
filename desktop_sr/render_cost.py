"""What a render costs: the work the network does, and a time range fitted to this machine's measured renders.

Two things made the old "seconds per output megapixel" wrong by orders of magnitude (issue 30): a render has a fixed
part (starting the tiles, the model's first call) that a 1 x 1 photo divides by almost nothing, giving 828,064 s/MP
and "58 h" for the next photo; and the pixels a model computes are not the output's: the bundled model always runs
at x4 (an x2 result costs what x4 costs), and PiSA-SR enlarges a small photo to a 512 px short side first (an x1
render of 240 x 136 computes a 904 x 512 image). So:

- **work** is the megapixels the network computes, asked of the model's family (``ModelFamily.work_megapixels``);
- the time of a render is fitted as ``overhead + rate x work`` over the last renders of the same model, device and
  scale (least squares, both parts non-negative);
- renders far smaller than the one asked about say nothing about its rate: without one at least a quarter of its
  work there is no estimate (the render is timed from its first tiles instead), never an extrapolation by 1000x;
- the answer is a range: the spread of the measured renders around the fit; for a photo larger than any measured
  one, it spans from the largest measured render's time to that time scaled by the work (the two bounds a fixed
  part allows), which after a single small render is wide, and says so.

Qt-free and torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Renders remembered per model, device and scale (the newest win: a machine's load and drivers change).
KEEP_SAMPLES = 8
#: A measured render tells the rate of one up to this many times its work (beyond: no estimate).
EXTRAPOLATE = 4.0
#: The least spread a range shows either side (one measurement is not a promise).
MIN_SPREAD = 0.2


@dataclass(frozen=True)
class Sample:
    """One measured render: the network's work in megapixels and the model's seconds."""

    work: float
    seconds: float


@dataclass(frozen=True)
class Estimate:
    """How long a render (or a batch of them) will take: ``low`` to ``high`` seconds, ``seconds`` the middle."""

    low: float
    high: float

    @property
    def seconds(self) -> float:
        return (self.low + self.high) / 2

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.low + other.low, self.high + other.high)

    def describe(self) -> str:
        """``about 4 min 10 s`` when the range is narrow, else ``3 min 20 s to 5 min``."""
        from .timing import format_duration

        lo, hi = format_duration(self.low), format_duration(self.high)
        if lo == hi or self.high < 1.25 * self.low:
            return f"about {format_duration(self.seconds)}"
        return f"{lo} to {hi}"


def fit(samples: Sequence[Sample]) -> tuple[float, float] | None:
    """(overhead seconds, seconds per megapixel of work) by least squares with both non-negative, or None."""
    pts = [s for s in samples if s.work > 0 and s.seconds > 0]
    if not pts:
        return None
    n = len(pts)
    mx = sum(s.work for s in pts) / n
    my = sum(s.seconds for s in pts) / n
    sxx = sum((s.work - mx) ** 2 for s in pts)
    if n >= 2 and sxx > 1e-12 and max(s.work for s in pts) > 1.5 * min(s.work for s in pts):
        rate = sum((s.work - mx) * (s.seconds - my) for s in pts) / sxx
        overhead = my - rate * mx
        if rate >= 0 and overhead >= 0:
            return overhead, rate
        if rate < 0:  # larger renders were not slower: load noise; the mean is all that is known
            return my, 0.0
    # one size measured, or a fit through a negative overhead: a line through the origin
    rate = sum(s.work * s.seconds for s in pts) / sum(s.work * s.work for s in pts)
    return 0.0, rate


def estimate(samples: Sequence[Sample], work: float) -> Estimate | None:
    """The time of a render of ``work`` megapixels from these measurements, or None when they cannot say."""
    pts = [s for s in samples if s.work > 0 and s.seconds > 0]
    if not pts or work <= 0:
        return None
    largest = max(s.work for s in pts)
    if work > EXTRAPOLATE * largest:
        return None  # a tiny render's time says nothing about a large one's rate
    line = fit(pts)
    if line is None:
        return None
    overhead, rate = line
    middle = overhead + rate * work
    if middle <= 0:
        return None
    ratios = [s.seconds / (overhead + rate * s.work) for s in pts if overhead + rate * s.work > 0]
    low = min(min(ratios, default=1.0), 1.0 - MIN_SPREAD)
    high = max(max(ratios, default=1.0), 1.0 + MIN_SPREAD)
    low, high = middle * low, middle * high
    if work > largest:
        # Beyond what was measured, two things still hold: a render with more work takes at least as long as the
        # largest measured one, and at most that one's time scaled by the work (a fixed part only makes it less).
        # Without an overhead measured (one size only) the truth can be anywhere between: the range says so.
        biggest = max((s for s in pts if s.work == largest), key=lambda s: s.seconds)
        high = max(high, biggest.seconds * work / largest * (1.0 + MIN_SPREAD))
        if overhead == 0.0:
            low = min(low, biggest.seconds * (1.0 - MIN_SPREAD))
    return Estimate(low, high)


def render_work(kind: str, width: int, height: int, scale: int) -> float:
    """Megapixels the network of family ``kind`` computes for a ``scale`` render of a ``width`` x ``height`` photo
    (the output's megapixels for a family the registry does not know)."""
    from .engine.errors import ModelError
    from .engine.families import family

    try:
        return family(kind).work_megapixels(width, height, scale)
    except ModelError:
        return width * height * scale * scale / 1e6
