"""The part of a Ray batch that runs on the cluster's nodes: one model replica, photos through :mod:`.photo_job`.

A plain class, wrapped into a Ray actor by :mod:`.cluster` at run time, so this module imports (and can be read
and tested) without Ray. The model is loaded once, when the actor starts; every photo then goes through
:func:`~.photo_job.process_photo`, the function the local runner calls, so results are the same bytes. The worker
never touches the manifest: only the driver writes it, and it learns about each photo from the returned outcome.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine.api import ModelInfo, UpscaleSession
from ..engine.control import Control
from ..engine.errors import EngineError
from ..engine.loader import ModelSpec, open_session
from ..engine.tile_settings import TileSettings
from .photo_job import PhotoOutcome, process_photo
from .plan import BatchSettings
from .results import Status


@dataclass(frozen=True)
class WorkerLoad:
    """How each worker opens the model. Paths must exist on every node (a shared folder or the same store)."""

    spec: ModelSpec
    device: str = "auto"  # each worker sees only the GPUs Ray gave it, so "auto" or "cuda" means "mine"
    dtype: str = "auto"
    cache_mb: int = 256  # one photo at a time: a small result cache is enough
    tiles: TileSettings | None = None
    #: torch's CPU threads; the driver sets the worker's CPU allotment. Explicit because the last bit of a CPU
    #: result depends on it: a worker with as many threads as a local run writes the same bytes.
    threads: int | None = None


@dataclass(frozen=True)
class WorkerReady:
    """What a worker reports once its model is loaded (or could not be)."""

    pid: int
    node: str
    load_seconds: float
    error: str = ""  # the engine's message when the model could not be loaded
    info: ModelInfo | None = None


class PhotoWorker:
    """One model replica. Photos are processed one at a time (Ray's default concurrency group holds one slot);
    :meth:`cancel` is called through a separate group so it is heard during a render."""

    def __init__(self, load: WorkerLoad, settings: BatchSettings) -> None:
        self.settings = settings
        self._token = Control()
        self._session: UpscaleSession | None = None
        self._error = ""
        if load.threads:
            import torch

            torch.set_num_threads(load.threads)
        t0 = time.perf_counter()
        try:
            self._session = open_session(load.spec, device=load.device, dtype=load.dtype, cache_mb=load.cache_mb,
                                         tiles=load.tiles)  # fmt: skip
        except (EngineError, OSError, ValueError, ImportError, MemoryError) as exc:
            self._error = str(exc) or type(exc).__name__
        self._load_seconds = time.perf_counter() - t0

    def ready(self) -> WorkerReady:
        info = self._session.info if self._session is not None else None
        return WorkerReady(os.getpid(), _node_name(), self._load_seconds, self._error, info)

    def process(self, source: str, target: str) -> PhotoOutcome:
        """Read, render and write one photo. Paths are strings as the driver sees them (shared storage)."""
        if self._token.cancelled:
            return PhotoOutcome(Status.CANCELLED, "cancelled")
        if self._session is None:  # the driver never sends work to a worker whose model failed; be safe anyway
            raise RuntimeError(f"this worker has no model: {self._error}")
        session = self._session
        return process_photo(Path(source), Path(target), self.settings, lambda: session, control=self._token)

    def cancel(self) -> None:
        """Abandon the photo in progress at the next tile and every photo still sent here."""
        self._token.cancel()


def _node_name() -> str:
    try:
        import ray.util

        return str(ray.util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - a name for the log only; outside Ray (a unit test) the host name will do
        return socket.gethostname()
