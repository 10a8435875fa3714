"""Progress snapshots and the ETA of a batch.

The ETA learns seconds per output megapixel from the files rendered so far rather than seconds per file: a folder
mixes phone snaps and 40 MP scans, and per-file averages swing wildly. Files not read yet are assumed to be of the
average size seen so far. Skipped, already-done and failed files take no model time and do not count. Time spent
paused is excluded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Progress:
    """Where the batch is. ``fraction`` is overall (0..1), counting the current file's tiles."""

    total: int  # items in the plan
    finished: int  # items settled (written, skipped, done before, failed)
    index: int  # 0-based index of the current item
    current: Path | None
    tile_done: int = 0
    tile_total: int = 0
    stage: str = ""  # the engine's last report: a Stage ("unet-pix") or nothing
    fraction: float = 0.0
    eta_seconds: float | None = None
    elapsed: float = 0.0
    per_minute: float | None = None  # photos rendered per minute (Ray batches, where photos run side by side)


class EtaEstimator:
    def __init__(self, to_render: int) -> None:
        self.to_render = to_render
        self.rendered = 0
        self.render_seconds = 0.0
        self.megapixels = 0.0
        self._started = time.perf_counter()
        self._paused_total = 0.0
        self._file_start: float | None = None
        self._file_mp: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self._started - self._paused_total

    def add_pause(self, seconds: float) -> None:
        self._paused_total += seconds
        if self._file_start is not None:
            self._file_start += seconds

    def file_started(self, megapixels: float | None = None) -> None:
        self._file_start = time.perf_counter()
        self._file_mp = megapixels

    def file_sized(self, megapixels: float) -> None:
        self._file_mp = megapixels

    def file_rendered(self) -> None:
        """The current file finished successfully: learn from it."""
        if self._file_start is not None:
            self.render_seconds += time.perf_counter() - self._file_start
            self.megapixels += self._file_mp or 0.0
            self.rendered += 1
        self._file_start = None

    def file_abandoned(self, counted: bool = True) -> None:
        """The current file failed or was skipped: it leaves the queue without teaching us anything."""
        self._file_start = None
        if counted:
            self.to_render = max(0, self.to_render - 1)

    def eta(self, current_fraction: float = 0.0) -> float | None:
        """Seconds left, or None until one file has been rendered."""
        if self.rendered == 0 or self.render_seconds <= 0:
            return None
        remaining = max(0, self.to_render - self.rendered)
        if self.megapixels > 0:
            per_mp = self.render_seconds / self.megapixels
            avg_mp = self.megapixels / self.rendered
            current_mp = self._file_mp or avg_mp
        else:
            per_mp, avg_mp, current_mp = self.render_seconds / self.rendered, 1.0, 1.0
        if self._file_start is not None and remaining > 0:
            current_left = max(0.0, per_mp * current_mp * (1.0 - current_fraction))
            return current_left + per_mp * avg_mp * (remaining - 1)
        return per_mp * avg_mp * remaining


class Throughput:
    """Photos per minute and the ETA of a batch whose photos render side by side on several workers.

    Per-photo timing (what :class:`EtaEstimator` learns from) says nothing when N photos overlap; the rate at which
    results arrive does. The clock starts when the first worker is ready, so model loading does not count, and
    time spent paused is left out.
    """

    def __init__(self, to_render: int) -> None:
        self.to_render = to_render
        self.rendered = 0
        self._started: float | None = None
        self._paused_total = 0.0

    def start(self) -> None:
        if self._started is None:
            self._started = time.perf_counter()

    def add_pause(self, seconds: float) -> None:
        self._paused_total += seconds

    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.perf_counter() - self._started - self._paused_total

    def file_rendered(self) -> None:
        self.rendered += 1

    def file_abandoned(self) -> None:
        """Failed, skipped or cancelled: one photo fewer to wait for."""
        self.to_render = max(self.rendered, self.to_render - 1)

    def per_minute(self) -> float | None:
        elapsed = self.elapsed()
        return self.rendered * 60.0 / elapsed if self.rendered and elapsed > 0 else None

    def eta(self) -> float | None:
        rate = self.per_minute()
        return None if rate is None else (self.to_render - self.rendered) * 60.0 / rate


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
