"""The engine worker: the background relay that owns the model session and runs the editor's jobs one at a time.

The GUI thread never waits on torch. The editor model posts typed jobs (:mod:`desktop_sr.editor.jobs`); a newer job
of the same slot replaces a queued one (dragging a slider queues one render, not twenty); the running job can be
cancelled between tiles. What each job does is :class:`~desktop_sr.editor.executor.Executor`'s (Qt-free); how it
gets to a thread and back is :class:`~desktop_sr.ui.relay.BackgroundRelay`'s.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from ..editor.executor import Executor, SessionOpener, open_engine_session
from ..editor.jobs import LoadModel
from ..engine.api import UpscaleSession
from .relay import BackgroundRelay, RelayJob


class EngineWorker(BackgroundRelay):
    def __init__(self, parent: QObject | None = None, open_model: SessionOpener = open_engine_session) -> None:
        self.executor = Executor(open_model)
        super().__init__(self.executor.run, name="engine", parent=parent, on_exit=self.executor.close)

    @property
    def session(self) -> UpscaleSession | None:
        return self.executor.session

    def submit(self, job: RelayJob) -> int:
        """Queue ``job``; a model load is announced to the shared model at once, so a batch started before it
        runs waits for it instead of loading a copy of its own."""
        if isinstance(job, LoadModel):
            self.executor.shared.expect(job.spec)
        return super().submit(job)
