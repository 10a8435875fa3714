"""Wall time per render stage (load, encode, each UNet pass, decode, colour fix, ...), Qt- and torch-free.

The session fills one :class:`StageTimes` as it works; the CLI prints :meth:`StageTimes.line` with ``--verbose``
and the GUI can show it as a tooltip, so a user (or a bug report) says where a slow render spent its time. Stages
that ran on a GPU are timed after a synchronisation, so the figure is the work's, not the kernel launch's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from .stages import Stage


class StageTimes:
    """Seconds per stage in the order they first ran; a stage that runs twice (two tiles' worth) adds up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._times[stage] = self._times.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def stage(self, name: Stage | str, sync: Callable[[], None] | None = None) -> Iterator[None]:
        """Time the block as ``name`` (a :class:`Stage` by its :attr:`~Stage.label`); ``sync`` (e.g.
        ``torch.cuda.synchronize``) runs before the clock stops."""
        key = name.label if isinstance(name, Stage) else name
        start = time.perf_counter()
        try:
            yield
        finally:
            if sync is not None:
                sync()
            self.add(key, time.perf_counter() - start)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self._times)

    def total(self) -> float:
        return sum(self.as_dict().values())

    def line(self) -> str:
        """``load 12.1 s · encode 4.0 s · unet pix 6.2 s · ... · total 31.0 s`` (empty when nothing ran)."""
        times = self.as_dict()
        if not times:
            return ""
        parts = [f"{name} {_fmt(t)}" for name, t in times.items()]
        return " · ".join([*parts, f"total {_fmt(sum(times.values()))}"])


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 0.1 else f"{seconds:.1f} s"


__all__ = ["StageTimes"]
