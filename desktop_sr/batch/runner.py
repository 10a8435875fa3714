"""Running a batch plan: the model loaded once, every file read, rendered and written atomically, one bad file
never stopping the rest, and each step recorded in the manifest so a rerun picks up where a crash left off.

The runner is Qt-free and runs on whatever thread calls :meth:`BatchRunner.run` (the CLI's main thread, the
dialog's worker thread). It talks back through a :class:`BatchListener`, and is steered (pause, cancel) through
the engine's :class:`~desktop_sr.engine.control.Control`, the same object that carries its progress to the engine.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.errors import Cancelled, EngineError
from ..imaging import Photo, PhotoError, read_photo, write_photo
from .manifest import Manifest, ManifestError
from .plan import DONE, OVERWRITE, RENAME, SKIP, WRITE, BatchSettings, Plan, PlanItem, path_key, resolve_target
from .progress import EtaEstimator, Progress, stage_fraction
from .sources import Refused

log = logging.getLogger(__name__)

# What became of one file.
WRITTEN, SKIPPED, DONE_BEFORE, FAILED, CANCELLED = "written", "skipped", "done before", "failed", "cancelled"


@dataclass
class FileResult:
    source: Path
    target: Path
    status: str
    reason: str = ""
    seconds: float = 0.0  # read + render + write
    model_seconds: float = 0.0  # inside session.render only
    disk_full: bool = False  # the write failed for lack of space: the runner stops rather than fail every file


@dataclass
class BatchSummary:
    results: list[FileResult] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0  # wall clock, model loading included
    load_seconds: float = 0.0  # loading the model
    output_dir: Path | None = None
    not_reached: int = 0  # items a cancel (or a stop) left untouched
    stopped: str = ""  # why the batch stopped early on its own (e.g. the output disk is full)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def model_seconds(self) -> float:
        return sum(r.model_seconds for r in self.results)

    @property
    def failures(self) -> list[tuple[Path, str]]:
        """Every input that did not give a result and why: refused while planning, or failed while running."""
        return [(r.path, r.reason) for r in self.refused] + [
            (r.source, r.reason) for r in self.results if r.status == FAILED
        ]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.cancelled and not self.stopped

    def describe(self) -> str:
        parts = [f"{self.count(WRITTEN)} written"]
        for status in (SKIPPED, DONE_BEFORE):
            if n := self.count(status):
                parts.append(f"{n} {status}")
        if self.failures:
            parts.append(f"{len(self.failures)} failed")
        if self.cancelled:
            parts.append(f"cancelled with {self.count(CANCELLED) + self.not_reached} not done")
        if self.stopped:
            parts.append(f"stopped ({self.stopped}) with {self.not_reached} not done")
        return ", ".join(parts) + f" in {self.seconds:.1f} s (model {self.load_seconds + self.model_seconds:.1f} s)"


class BatchListener:
    """Callbacks from the runner's thread. The base class ignores everything; override what you show."""

    def model_loading(self) -> None: ...

    def model_loaded(self, seconds: float) -> None: ...

    def file_started(self, item: PlanItem, progress: Progress) -> None: ...

    def tile_progress(self, progress: Progress) -> None: ...

    def file_finished(self, result: FileResult, progress: Progress) -> None: ...

    def paused(self, paused: bool) -> None: ...


class ModelLoadFailed(Exception):
    """The model could not be loaded, so no file could run. Wraps the engine's error, whose message says why."""


SessionFactory = Callable[[], UpscaleSession]


class BatchRunner:
    """Executes one :class:`Plan`. Use once: create, :meth:`run`, read the summary."""

    def __init__(
        self,
        plan: Plan,
        session: UpscaleSession | SessionFactory,
        *,
        listener: BatchListener | None = None,
        control: Control | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        """``session`` is a loaded session (kept open) or a factory called once, on this thread, when the first
        file needs the model (closed at the end). The factory form lets the dialog's worker thread own torch."""
        self.plan = plan
        self.settings = plan.settings
        self._session: UpscaleSession | None = session if _is_session(session) else None  # type: ignore[assignment]
        self._factory: SessionFactory | None = None if self._session is not None else session  # type: ignore[assignment]
        self.listener = listener or BatchListener()
        self.control = control or Control()
        self.manifest = manifest or Manifest(self.settings.output_dir)
        self.signature = self.settings.signature()
        self.summary = BatchSummary(refused=list(plan.refused), output_dir=Path(self.settings.output_dir))
        self._eta = EtaEstimator(sum(1 for i in plan.items if i.runs))
        self._finished = 0
        self._index = 0
        self._current: Path | None = None
        self._fraction = 0.0

    # -- progress -------------------------------------------------------------------------------------------------
    def _progress(self, tile_done: int = 0, tile_total: int = 0, stage: str = "") -> Progress:
        total = len(self.plan.items)
        frac = (self._finished + self._fraction) / total if total else 1.0
        return Progress(total, self._finished, self._index, self._current, tile_done, tile_total, stage,
                        min(1.0, frac), self._eta.eta(self._fraction), self._eta.elapsed())  # fmt: skip

    def _on_tile(self, done: int, total: int, stage: str) -> None:
        """The engine's progress callback: between tiles, so this is also where a pause holds."""
        if self.control.paused:
            t0 = time.perf_counter()
            self.listener.paused(True)
            self.control.wait_while_paused()
            self._eta.add_pause(time.perf_counter() - t0)
            self.listener.paused(False)
        self._fraction = stage_fraction(stage, done, total)
        self.listener.tile_progress(self._progress(done, total, stage))

    def _settle(self, result: FileResult) -> None:
        self.summary.results.append(result)
        self._finished += 1
        self._fraction = 0.0
        self.listener.file_finished(result, self._progress())

    # -- the run --------------------------------------------------------------------------------------------------
    def _load(self) -> UpscaleSession:
        if self._session is None:
            assert self._factory is not None
            self.listener.model_loading()
            t0 = time.perf_counter()
            try:
                self._session = self._factory()
            except (EngineError, OSError, ValueError, ImportError) as exc:
                raise ModelLoadFailed(str(exc)) from exc
            self.summary.load_seconds = time.perf_counter() - t0
            self.listener.model_loaded(self.summary.load_seconds)
        return self._session

    def run(self) -> BatchSummary:
        """Run every item. Raises ModelLoadFailed (nothing ran) or ManifestError (output folder unusable).

        Per-file problems (unreadable photo, a write that fails, an engine error) are recorded and the batch
        goes on. Cancel abandons the file in progress: its result is never written, nothing half-written stays.
        """
        t0 = time.perf_counter()
        self.manifest.open()
        try:
            _remove_stale_temps(self.plan.items)
            if any(i.runs for i in self.plan.items) and not self.control.cancelled:
                self._load()
            taken = {path_key(i.target) for i in self.plan.items if i.action == DONE}
            for index, item in enumerate(self.plan.items):
                self._index, self._current = index, item.source
                if self.control.paused:
                    p0 = time.perf_counter()
                    self.listener.paused(True)
                    self.control.wait_while_paused()
                    self._eta.add_pause(time.perf_counter() - p0)
                    self.listener.paused(False)
                if self.control.cancelled:
                    self.summary.cancelled = True
                    self.summary.not_reached = len(self.plan.items) - index
                    break
                result = self._one(item, taken)
                if result.status == CANCELLED:
                    self.summary.cancelled = True
                    self.summary.not_reached = len(self.plan.items) - index - 1
                    self.summary.results.append(result)
                    break
                self._settle(result)
                if result.status == FAILED and result.disk_full:
                    # every later file would render for minutes and then fail the same way
                    self.summary.stopped = "the output disk is full: free some space and run again to continue"
                    self.summary.not_reached = len(self.plan.items) - index - 1
                    break
        finally:
            self.manifest.close()
            if self._factory is not None and self._session is not None:
                self._session.close()
                self._session = None
            self.summary.seconds = time.perf_counter() - t0
        return self.summary

    def _recheck(self, item: PlanItem, taken: set[str]) -> tuple[Path, str]:
        """The folder may have changed since planning: apply the collision policy again to the desired name."""
        if item.action in (DONE, SKIP, OVERWRITE):
            return item.target, item.action
        if item.action in (WRITE, RENAME) and not item.target.exists() and path_key(item.target) not in taken:
            return item.target, item.action
        s = self.settings
        target, action, _ = resolve_target(
            item.desired, policy=s.on_conflict, style=s.rename_style, taken=taken, source=item.source
        )
        return target, action

    def _one(self, item: PlanItem, taken: set[str]) -> FileResult:
        if item.action == DONE:
            return FileResult(item.source, item.target, DONE_BEFORE, "finished by an earlier run")
        target, action = self._recheck(item, taken)
        taken.add(path_key(target))
        if action == SKIP:
            self._eta.file_abandoned(counted=item.runs)
            return FileResult(item.source, target, SKIPPED, "a file with this name exists")
        self.listener.file_started(item, self._progress())
        self._eta.file_started()
        start = time.perf_counter()
        model_seconds = 0.0
        try:
            photo = read_photo(item.source)
            self._eta.file_sized(photo.width * photo.height * self.settings.params.scale**2 / 1e6)
            session = self._load()
            session.set_photo(photo.rgb)
            m0 = time.perf_counter()
            try:
                rgb = session.render(self.settings.params, control=self.control.sub(self._on_tile))
            finally:
                model_seconds = time.perf_counter() - m0
            self.control.check()  # a cancel that arrived during the last tile still abandons the file
            target.parent.mkdir(parents=True, exist_ok=True)
            self.manifest.writing(item.source, self.signature, target)
            _write(target, rgb, photo, self.settings)
            self.manifest.done(item.source, self.signature, target, time.perf_counter() - start)
        except Cancelled:
            self._eta.file_abandoned()
            return FileResult(item.source, target, CANCELLED, "cancelled", time.perf_counter() - start, model_seconds)
        except ModelLoadFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad file must never end the batch
            reason = _reason(exc)
            if not isinstance(exc, (PhotoError, EngineError, OSError, ValueError, MemoryError)):
                log.error("%s failed unexpectedly:\n%s", item.source, traceback.format_exc())
            self._eta.file_abandoned()
            with contextlib.suppress(OSError, ManifestError):  # the manifest may be on the same full disk
                self.manifest.failed(item.source, self.signature, target, reason)
            return FileResult(item.source, target, FAILED, reason, time.perf_counter() - start, model_seconds,
                              disk_full=_disk_full(exc))  # fmt: skip
        self._eta.file_rendered()
        return FileResult(item.source, target, WRITTEN, "", time.perf_counter() - start, model_seconds)


def _disk_full(exc: BaseException | None) -> bool:
    """True if ``exc`` or what caused it is "no space left on device" (the imaging layer wraps OSError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_session(obj: object) -> bool:
    return hasattr(obj, "render") and hasattr(obj, "set_photo")


def _write(target: Path, rgb: np.ndarray, photo: Photo, settings: BatchSettings) -> None:
    options = replace(settings.save, format=settings.output_format(photo.source))
    write_photo(target, rgb, like=photo, scale=settings.params.scale, options=options)


def _reason(exc: BaseException) -> str:
    """A reason without the path (the summary already shows which file): what a person can act on."""
    if isinstance(exc, PhotoError):
        return exc.reason
    if isinstance(exc, MemoryError):
        return "out of memory; try smaller tiles or a smaller scale"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (EngineError, ValueError)) else f"{type(exc).__name__}: {text}"


def _remove_stale_temps(items: list[PlanItem]) -> None:
    """Delete temp files a killed earlier run left beside the targets it was writing.

    The photo layer writes ``.<stem>.<random>.part`` next to the target and renames it; SIGKILL between the two
    leaves the temp behind. Only names matching a target of this plan are touched, in folders we hold the lock for.
    """
    for item in items:
        if not item.runs:
            continue
        folder = item.target.parent
        if not folder.is_dir():
            continue
        for stem in {item.target.stem, item.desired.stem}:
            for tmp in folder.glob(f".{_glob_escape(stem)}.*.part"):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)
