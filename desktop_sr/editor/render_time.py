"""How long the editor's work takes: the running job's progress line, and whether a render is long enough to ask.

The progress line (fraction, rate and time left) comes from :class:`~desktop_sr.timing.RenderClock`, from the first
tile on. Whole renders that ran the model are measured into the :class:`~desktop_sr.timing.CostBook` (per model and
device), and the next render is estimated from it before it starts: over
:data:`~desktop_sr.timing.LONG_JOB_SECONDS`, the editor asks first (:class:`LongRenderGate`). Qt-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..engine.stages import Stage
from ..render_cost import Estimate
from ..timing import LONG_JOB_SECONDS, CostBook, RenderClock, format_duration

#: Stages in which the model itself runs (an encode or decode of cached latents alone is not a render to measure).
MODEL_STAGES = (Stage.UNET, Stage.UPSCALE)


@dataclass(frozen=True)
class JobProgress:
    """What the status bar shows for the running job."""

    label: str  # "Rendering"
    fraction: float | None  # 0..1 of the job (of its current pass); None: started, nothing measured yet
    detail: str  # "2.1 s/tile · about 4 min 10 s left", what is still unknown, or nothing


class JobClock:
    """The running job's :class:`RenderClock`, and whether the model ran in it (then its time is worth keeping)."""

    def __init__(self, job_id: int, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id, self.label = job_id, label
        self.render = RenderClock(clock)
        self.model_ran = False
        self.first_estimate: float | None = None  # the whole job's length once its first tile was measured

    def report(self, done: int, total: int, stage: str) -> JobProgress:
        self.render.update(done, total, stage)
        if done > 0 and Stage.kind_of(stage) in MODEL_STAGES:
            self.model_ran = True
        if self.first_estimate is None and self.render.eta() is not None:
            self.first_estimate = self.render.total_estimate()
        return self.now()

    def now(self) -> JobProgress:
        """The progress line as of now: the time left counts down between the engine's reports (a status bar
        refreshes it every second), and says so when the work runs longer than its tiles so far promised."""
        eta, per_tile = self.render.eta(), self.render.seconds_per_tile()
        if eta is None:
            detail = "time left: after the first tile"
        elif self.render.overdue():
            detail = f"{per_tile:.1f} s/tile · finishing (slower than its first tiles)"
        else:
            detail = f"{per_tile:.1f} s/tile · about {format_duration(eta)} left"
        return JobProgress(self.label, self.render.fraction, detail)


class LongRenderGate:
    """Asks before a render estimated over the threshold, once per photo, model and expensive setting.

    ``key`` names what makes a render cost model time (photo, model, scale, realism, description): once the user
    said yes to it, strength and colour changes of that render are cheap and never ask again; a no holds it until
    the user starts it (Render now) or changes to something else.
    """

    def __init__(self, book: CostBook | None = None, threshold: float = LONG_JOB_SECONDS) -> None:
        self.book = book if book is not None else CostBook()
        self.threshold = threshold
        self.confirmed: set[Hashable] = set()
        self.declined: set[Hashable] = set()
        self.asking: Hashable | None = None  # the key whose question is on screen

    def estimate(self, model: str, device: str, work: float) -> Estimate | None:
        return self.book.estimate(model, device, work)

    def is_long(self, estimate: Estimate | float | None) -> bool:
        seconds = estimate.seconds if isinstance(estimate, Estimate) else estimate
        return seconds is not None and seconds > self.threshold

    def answer(self, key: Hashable, yes: bool) -> None:
        self.asking = None
        (self.confirmed if yes else self.declined).add(key)
        (self.declined if yes else self.confirmed).discard(key)

    def record(self, model: str, device: str, work: float, seconds: float) -> None:
        self.book.record(model, device, work, seconds)
