"""A numpy stand-in for a model session, and an inline job queue, for fast tests of the editor model's rules.

``FakeSession`` implements :class:`desktop_sr.engine.api.UpscaleSession` with arithmetic instead of networks: the
result is linear in the two strengths (so the corner blend is exact), depends visibly on realism, colour fix and
prompt, reports progress per "tile" and honours cancel between tiles, and logs every call. ``InlineQueue`` runs the
editor's jobs with the real :class:`~desktop_sr.editor.executor.Executor` on the calling thread, one step at a time,
so a test can stop a job half-way (after its visible-region result) and change things under it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from desktop_sr.editor.executor import Executor, JobControl
from desktop_sr.editor.jobs import Job
from desktop_sr.editor.model import EditorModel
from desktop_sr.engine.api import Corners, ModelInfo, PhotoHolder, Region, RenderParams, check_photo
from desktop_sr.engine.control import Control
from desktop_sr.engine.errors import Cancelled, EngineError
from desktop_sr.engine.stages import Stage

TILES = 4


class FakeSession(PhotoHolder):
    BYTES_PER_OUTPUT_PX = 12
    RENDER_OVERHEAD = 0

    def __init__(self, name: str = "fake", *, supports_realism: bool = True, timesteps: tuple[int, ...] = ()) -> None:
        self.info = ModelInfo(name, "fake", "cpu", "fp32", supports_realism, True, trained_timesteps=timesteps)
        self.calls: list[tuple[str, RenderParams | None, Region | None]] = []
        self.closed = False

    def set_photo(self, rgb: np.ndarray) -> None:
        self._rgb = check_photo(rgb)

    def bicubic(self, scale: int) -> np.ndarray:
        self.calls.append(("bicubic", None, None))
        return np.repeat(np.repeat(self.photo, scale, axis=0), scale, axis=1)

    def _corners(self, params: RenderParams) -> Corners:
        up = np.repeat(np.repeat(self.photo, params.scale, axis=0), params.scale, axis=1)
        tint = {"adain": 0.0, "wavelet": 0.05, "none": 0.1}[params.color_fix] + 0.01 * len(params.prompt)
        base = up * 0.6
        pix = up * 0.8 + 0.05 + tint
        full = pix + 0.1 * np.sin(np.arange(up.shape[1]) * params.realism / 50.0)[None, :, None].astype(np.float32)
        return Corners(base.astype(np.float32), pix.astype(np.float32), full.astype(np.float32))

    def _work(self, control: Control | None) -> None:
        for i in range(TILES):
            if control is not None:
                control.check()
                control.report(i + 1, TILES, Stage.UNET)

    def render(self, params, *, region=None, control=None) -> np.ndarray:
        self.calls.append(("render", params, region))
        self._work(control)
        out = self._corners(params).blend(params.pix, params.sem, params.maps)
        if region is not None:
            x0, y0, x1, y1 = region
            h, w = out.shape[:2]
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):  # as the real sessions refuse it
                raise ValueError(f"region {tuple(region)} is outside the {w} x {h} result")
            out = out[y0:y1, x0:x1]
        return out

    def corners(self, params, *, control=None) -> Corners:
        self.calls.append(("corners", params, None))
        self._work(control)
        return self._corners(params)

    def detail_map(self, params, *, control=None) -> np.ndarray:
        self.calls.append(("detail", params, None))
        c = self._corners(params)
        return np.clip(np.abs(c.full - c.pix).mean(axis=2) * 5, 0, 1)

    def is_cached(self, params: RenderParams) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def renders(self) -> list[tuple[RenderParams | None, Region | None]]:
        return [(p, r) for kind, p, r in self.calls if kind == "render"]


class _Control(JobControl):
    """Progress reports go to the editor as the GUI's relay would deliver them."""

    def __init__(self, queue: InlineQueue, job: Job) -> None:
        super().__init__(lambda done, total, stage: queue.editor and queue.editor.on_progress(job, done, total, stage))
        self.queue, self.job = queue, job

    def superseded(self) -> bool:
        return any(j.slot == self.job.slot for j in self.queue.queued)


class InlineQueue:
    """The editor's :class:`JobQueue`, run by hand: ``run_all()``, or ``start()`` then ``step()`` per result."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.editor: EditorModel | None = None
        self.queued: list[Job] = []
        self.running: tuple[Job, _Control, Iterator[object]] | None = None

    # JobQueue
    def submit(self, job: Job) -> int:
        if job.slot is not None:
            self.queued = [j for j in self.queued if j.slot != job.slot]
        self.queued.append(job)
        return job.id

    def supersede(self, slot: str) -> None:
        if self.running is not None and self.running[0].slot == slot:
            self.running[1].cancel()

    def cancel(self, kinds: tuple[type[Job], ...]) -> None:
        self.queued = [j for j in self.queued if not isinstance(j, kinds)]
        if self.running is not None and isinstance(self.running[0], kinds):
            self.running[1].cancel()

    # driving
    def kinds(self) -> list[str]:
        return [type(j).__name__ for j in self.queued]

    def start(self) -> Job:
        job = min(self.queued, key=lambda j: (j.priority, j.id))
        self.queued.remove(job)
        control = _Control(self, job)
        if self.editor is not None:
            self.editor.on_started(job)
        self.running = (job, control, iter(self.executor.run(job, control)))
        return job

    def step(self) -> bool:
        """Deliver the running job's next result; False once it has ended (failed, cancelled or done)."""
        assert self.running is not None and self.editor is not None
        job, _control, results = self.running
        try:
            result = next(results)
        except StopIteration:
            self.running = None
            return False
        except Cancelled:
            self.running = None
            self.editor.on_cancelled(job)
            return False
        except (EngineError, OSError, ValueError) as exc:
            self.running = None
            self.editor.on_failed(job, str(exc))
            return False
        self.editor.on_result(job, result)  # type: ignore[arg-type]
        return True

    def run_all(self, limit: int = 100) -> None:
        for _ in range(limit):
            if self.running is None:
                if not self.queued:
                    return
                self.start()
            while self.step():
                pass
        raise AssertionError("the editor keeps submitting work")
