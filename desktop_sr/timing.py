"""How long a render takes on this machine: measured, remembered, and shown before and during the work.

A 4000 x 3000 photo at x4 is a 192-megapixel result: half an hour on an idle CPU, hours on a busy one. Nothing
but a measurement on this machine and device can say which, so every finished render records its work and seconds,
per model and device, in the app's cache folder; the next render or batch is estimated from them, as a range,
before it starts (:mod:`.render_cost` says how). A render the records cannot speak for is timed from its first tiles
(:class:`RenderClock`).

Qt-free and torch-free: the CLI, the batch runner and the GUI all use it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import durable
from .engine.stages import Stage
from .render_cost import KEEP_SAMPLES, Estimate, Sample, estimate, fit

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "DESKTOP_SR_CACHE_DIR"
#: Jobs estimated above this ask first (GUI), or warn and ask on a terminal (CLI).
LONG_JOB_SECONDS = 600.0
_FILE = "render-cost.json"
# Share of a PiSA-SR render each engine stage takes (roughly, on real and tiny models alike); any other stage (the
# bundled model's UPSCALE) is the whole render.
_STAGE_SPAN: dict[Stage | None, tuple[float, float]] = {
    Stage.ENCODE: (0.0, 0.2),
    Stage.UNET: (0.2, 0.75),
    Stage.DECODE: (0.75, 1.0),
}


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("desktop-sr"))


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class CostBook:
    """Measured renders by model and device, kept in ``<cache>/render-cost.json``; estimates from them.

    Each record is the network's work in megapixels (:func:`~desktop_sr.render_cost.render_work`) and the model's
    seconds; the newest :data:`~desktop_sr.render_cost.KEEP_SAMPLES` per key are kept, and an estimate is a range
    fitted to them (:func:`~desktop_sr.render_cost.estimate`). Books from before (one blended seconds-per-output-
    megapixel figure per model and device, which tiny renders made absurd) are read as empty.
    """

    path: Path = field(default_factory=lambda: cache_dir() / _FILE)

    @staticmethod
    def key(model: str, device: str) -> str:
        """Per model and device: the scale is in the work (an x2 of the bundled model is its x4 work)."""
        return f"{model} @ {device}"

    def _read(self) -> dict[str, list[Sample]]:
        return _valid(durable.read_json(self.path))

    def samples(self, model: str, device: str) -> list[Sample]:
        return self._read().get(self.key(model, device), [])

    def seconds_per_megapixel(self, model: str, device: str) -> float | None:
        """The fitted seconds per megapixel of work (without the fixed part), or None before any record."""
        line = fit(self.samples(model, device))
        return None if line is None else line[1]

    def estimate(self, model: str, device: str, work: float | Sequence[float]) -> Estimate | None:
        """The time of renders of ``work`` megapixels each (one, or a batch's list), or None where the records
        cannot say (none yet, or only renders far smaller: the render is then timed from its first tiles)."""
        samples = self.samples(model, device)
        works = [work] if isinstance(work, int | float) else list(work)
        total: Estimate | None = None
        for w in works:
            one = estimate(samples, w)
            if one is None:
                return None
            total = one if total is None else total + one
        return total

    def record(self, model: str, device: str, work: float, seconds: float) -> None:
        """Remember a measured render of ``work`` megapixels (under the book's lock: other processes' records stay)."""
        if work <= 0 or seconds <= 0:
            return
        key = self.key(model, device)

        def merge(current: object) -> dict[str, object]:
            data = _valid(current)
            data[key] = [*data.get(key, []), Sample(work, seconds)][-KEEP_SAMPLES:]
            return {k: {"samples": [[x.work, x.seconds] for x in v]} for k, v in data.items()}

        try:
            durable.update_json(self.path, merge, sort_keys=True, timeout=5.0)
        except OSError as exc:  # a read-only cache only costs the estimate next time
            log.info("cannot remember the render time in %s (%s)", self.path, exc)


def _valid(data: object) -> dict[str, list[Sample]]:
    """The book's valid records (a missing or damaged file, and the old one-figure records, have none)."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[Sample]] = {}
    for key, value in data.items():
        rows = value.get("samples") if isinstance(value, dict) else None
        if not isinstance(rows, list):
            continue
        good = [Sample(float(r[0]), float(r[1])) for r in rows if _is_pair(r)]
        if good:
            out[str(key)] = good[-KEEP_SAMPLES:]
    return out


def _is_pair(row: object) -> bool:
    return isinstance(row, list) and len(row) == 2 and all(isinstance(x, int | float) and x > 0 for x in row)


def render_fraction(stage: str, done: int, total: int) -> float:
    """How much of one render is done, from the engine's (done, total, stage) report."""
    lo, hi = _STAGE_SPAN.get(Stage.kind_of(stage), (0.0, 1.0))
    return lo + (hi - lo) * (done / total if total > 0 else 1.0)


class RenderClock:
    """Rate and time left of one render, from the first tile on (never a rate from a zero or startup interval).

    A render can run in passes: the GUI renders the part on screen, then decodes the whole photo from the cached
    latents; two UNet branches (pixel, full) each count their tiles from 1; an out-of-memory retry starts its stage
    again with smaller tiles. A report whose fraction is lower than the last one starts a new pass: its time left is
    then measured from where that pass began (its first stage's share), so it is neither stuck at "0 s" nor counted
    from the first pass's rate.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock()
        self.fraction = 0.0
        self.tiles = 0
        self._last: tuple[int, str] | None = None
        self._last_time = self.start
        self._pass_start = self.start  # when the current pass began, and the fraction it began at
        self._pass_from = 0.0
        self.passes = 1

    def update(self, done: int, total: int, stage: str) -> None:
        now = self._clock()
        fraction = min(1.0, render_fraction(stage, done, total))
        if self._last is not None and fraction < self.fraction:  # a stage began again: a new pass
            self.passes += 1
            self._pass_start, self._pass_from = self._last_time, render_fraction(stage, 0, total)
            self.fraction = fraction
        if (done, stage) != self._last and done > 0:
            self.tiles += 1
        self._last, self._last_time = (done, stage), now
        self.fraction = max(self.fraction, fraction)

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start

    def eta(self) -> float | None:
        """Seconds left of the pass under way, once a tile of it is done.

        Measured at the last report and counted down since: asked between reports (a status bar refreshed every
        second while a 40 s tile runs) it goes down as time passes, rather than standing still or growing; it stops
        at 0 when the work takes longer than measured (:meth:`overdue`).
        """
        done = self.fraction - self._pass_from
        if done <= 0.0 or self.tiles == 0:
            return None
        pass_elapsed = self._last_time - self._pass_start
        at_report = pass_elapsed / done * (1.0 - self.fraction)
        return max(0.0, at_report - (self._clock() - self._last_time))

    def overdue(self) -> bool:
        """The time left counted down to 0 but the work is not finished: slower than its tiles so far."""
        return self.fraction < 1.0 and self.eta() == 0.0

    def total_estimate(self) -> float | None:
        """Seconds the whole render will take (elapsed plus what is left), once a tile is done."""
        eta = self.eta()
        return None if eta is None else self.elapsed + eta

    def seconds_per_tile(self) -> float | None:
        return self.elapsed / self.tiles if self.tiles else None
