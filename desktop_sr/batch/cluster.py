"""Running a batch plan on Ray: a pool of workers, one model replica each, fed one photo at a time by this driver.

Why an actor pool driven by hand and not Ray Data's ``map_batches``: the batch must keep the local runner's
guarantees, which need a decision per photo. The driver re-checks each photo's name just before it is sent (the
collision policy, as locally), writes every event to the manifest itself (workers never touch it, so a resume works
however many nodes took part), notices a dead worker and retries its photo elsewhere (bounded), stops sending work
on cancel and tells the workers to abandon what they hold at the next tile (nothing half-written: writes are
atomic). Photos are read and written by the workers, so inputs and outputs must be on storage every node sees at
the same path; only paths and small outcomes travel between driver and workers.

Connecting and sizing the pool live in :mod:`.cluster_setup`; the workers' side in :mod:`.cluster_worker`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.api import ModelInfo
from ..engine.control import Control
from .cluster_setup import LOCAL, ClusterError, ClusterOptions, import_ray, pool_size
from .cluster_worker import PhotoWorker, WorkerLoad, WorkerReady
from .manifest import Manifest, ManifestError
from .photo_job import PhotoOutcome
from .plan import Action, Plan, PlanItem, path_key
from .progress import Progress, Throughput
from .results import BatchSummary, FileResult, ModelLoadFailed, Status, disk_full_stop, log_result
from .runner import BatchListener, recheck_target, remove_stale_temps, remove_temps_beside

log = logging.getLogger(__name__)

# Worker states, as --verbose shows them.
STARTING, IDLE, WORKING, DEAD, NO_MODEL, STOPPED = "loading the model", "idle", "working", "died", "no model", "stopped"
_POLL = 0.25  # seconds between looks at Ctrl-C / pause while waiting for workers
_TELL_EVERY = 30.0  # seconds without a worker event before the listener hears the pool's state anyway


@dataclass
class WorkerState:
    """One worker slot as the user sees it; a replacement keeps the slot and counts a new generation."""

    slot: int  # 1-based
    state: str = STARTING
    generation: int = 0
    pid: int | None = None
    node: str = ""
    photo: Path | None = None
    since: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    load_seconds: float | None = None
    note: str = ""  # the latest event worth a line: why it died, the load error

    def describe(self) -> str:
        where = f"pid {self.pid} on {self.node}" if self.pid else "not started yet"
        text = f"worker {self.slot} ({where}): {self.state}"
        if self.state == WORKING and self.photo is not None:
            text += f" on {self.photo.name} for {time.monotonic() - self.since:.0f} s"
        text += f"; {self.done} done" + (f", {self.failed} failed" if self.failed else "")
        return text + (f" - {self.note}" if self.note else "")


@dataclass
class _Job:
    index: int
    item: PlanItem
    target: Path
    attempts: int = 0
    deaths: list[str] = field(default_factory=list)


@dataclass
class _Slot:
    state: WorkerState
    actor: Any = None
    job: _Job | None = None


# -- the run ----------------------------------------------------------------------------------------------------


class ClusterRunner:
    """Executes one :class:`Plan` on a connected Ray. Use once: create, :meth:`run`, read the summary.

    Same contract as :class:`~.runner.BatchRunner`: raises ModelLoadFailed when no worker could load the model,
    ManifestError when the output folder is unusable, ClusterError when no worker could start at all; every per-photo
    problem is a result and the batch goes on.
    """

    def __init__(
        self,
        plan: Plan,
        load: WorkerLoad,
        options: ClusterOptions | None = None,
        *,
        listener: BatchListener | None = None,
        control: Control | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.load = load
        self.options = options or ClusterOptions()
        self.listener = listener or BatchListener()
        self.control = control or Control()
        self.manifest = manifest or Manifest(self.settings.output_dir)
        self.signature = self.settings.signature()
        self.summary = BatchSummary(refused=list(plan.refused), output_dir=Path(self.settings.output_dir))
        self.notes: list[str] = []
        self.slots: list[_Slot] = []
        self._rate = Throughput(sum(1 for i in plan.items if i.runs))
        self._finished = 0
        self._refs: dict[Any, tuple[str, _Slot]] = {}  # object ref -> ("ready" | "photo", slot)
        self._replacements_left = 0
        self._load_errors: list[str] = []
        self._stopping = False
        self._cancel_sent_at: float | None = None
        self._paused_at: float | None = None
        self._ray: Any = None
        self._actor_class: Any = None
        self._gpus = 0.0
        self._cpus = 1.0
        self._last_death = ""
        self._load_started = 0.0
        self._worker_load = load
        self._told_at = time.monotonic()
        self.model_info: ModelInfo | None = None

    @property
    def workers(self) -> list[WorkerState]:
        return [replace(s.state) for s in self.slots]

    # -- progress -------------------------------------------------------------------------------------------------
    def _progress(self, current: Path | None = None) -> Progress:
        total = len(self.plan.items)
        return Progress(total, self._finished, min(self._finished, max(0, total - 1)), current,
                        fraction=self._finished / total if total else 1.0, eta_seconds=self._rate.eta(),
                        elapsed=self._rate.elapsed(), per_minute=self._rate.per_minute())  # fmt: skip

    def _settle(self, result: FileResult) -> None:
        self.summary.results.append(result)
        self._finished += 1
        log_result(result)
        self.listener.file_finished(result, self._progress(result.source))

    def _changed(self) -> None:
        self._told_at = time.monotonic()
        self.listener.workers_changed(self.workers)

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self) -> BatchSummary:
        t0 = time.perf_counter()
        self.manifest.open()
        try:
            remove_stale_temps(self.plan.items)
            self._run()
        finally:
            self._stop_workers()
            self.manifest.close()
            self.summary.seconds = time.perf_counter() - t0
        return self.summary

    def _run(self) -> None:
        taken = {path_key(i.target) for i in self.plan.items if i.action == Action.DONE}
        todo: deque[_Job] = deque(_Job(n, item, item.target) for n, item in enumerate(self.plan.items))
        retry: deque[_Job] = deque()  # photos whose worker died; they go before the rest
        if any(i.runs for i in self.plan.items) and not self.control.cancelled:
            self._start_pool()
        while True:
            self._watch_control()
            if not self._stopping and not self.control.paused:
                self._dispatch(todo, retry, taken)
            busy = [s for s in self.slots if s.job is not None]
            if not busy and (self._stopping or not (todo or retry)):
                break
            if not busy and not self._alive():
                self._stop(f"no worker left: {self._last_death or 'they died'}")
                break
            self._check_start_timeout()
            self._wait_one(retry)
            if time.monotonic() - self._told_at > _TELL_EVERY:
                self._changed()  # nothing happened for a while: still let --verbose show who holds what
            waited = time.monotonic() - (self._cancel_sent_at or time.monotonic())
            if waited > self.options.cancel_timeout:
                self._abandon_busy()
        self.summary.not_reached += len(todo) + len(retry)

    # -- the pool -------------------------------------------------------------------------------------------------
    def _start_pool(self) -> None:
        ray = self._ray = import_ray(local=self.options.address in (None, LOCAL))
        workers, self._gpus, self._cpus, notes = pool_size(self.options, ray.cluster_resources())
        for note in notes:
            log.warning("%s", note)
        self.notes += notes
        self._replacements_left = (
            self.options.max_replacements if self.options.max_replacements is not None else 2 * workers
        )
        threads = self.load.threads or max(1, int(self._cpus))
        self._worker_load = replace(self.load, threads=threads)
        # cancel is heard while a photo renders in the default group (which runs one call at a time)
        self._actor_class = ray.remote(concurrency_groups={"control": 1})(PhotoWorker)
        self.listener.model_loading()
        self._load_started = time.perf_counter()
        for n in range(workers):
            slot = _Slot(WorkerState(n + 1))
            self.slots.append(slot)
            self._start_actor(slot)
        self._changed()

    def _start_actor(self, slot: _Slot) -> None:
        slot.actor = self._actor_class.options(
            num_cpus=self._cpus,
            num_gpus=self._gpus,
            max_restarts=0,  # the driver replaces a dead worker itself, so it knows which photo to retry
        ).remote(self._worker_load, self.settings)
        slot.state.state, slot.state.since, slot.state.pid, slot.state.photo = STARTING, time.monotonic(), None, None
        self._refs[slot.actor.ready.remote()] = ("ready", slot)

    def _check_start_timeout(self) -> None:
        """No worker ready, and the most recent start is older than the limit: the pool cannot start."""
        if any(s.state.state in (IDLE, WORKING) for s in self.slots):
            return
        starting = [time.monotonic() - s.state.since for s in self.slots if s.state.state == STARTING]
        if starting and min(starting) > self.options.start_timeout:
            raise ClusterError(self._no_worker_message())

    def _alive(self) -> bool:
        return any(s.state.state in (STARTING, IDLE, WORKING) for s in self.slots)

    def _no_worker_message(self) -> str:
        need = f"{self._cpus:g} CPU" + (f" and {self._gpus:g} GPU" if self._gpus else "")
        have = {k: v for k, v in self._ray.cluster_resources().items() if k in ("CPU", "GPU")}
        return (
            f"no worker started within {self.options.start_timeout:.0f} s; each asks for {need}, the cluster has "
            f"{have or 'nothing'} (fewer --workers or --gpus-per-worker, or wait for nodes to join)"
        )

    def _stop_workers(self) -> None:
        for slot in self.slots:
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    self._ray.kill(slot.actor)
                slot.actor = None
                if slot.state.state in (STARTING, IDLE, WORKING):
                    slot.state.state = STOPPED
        self._refs.clear()

    def _replace(self, slot: _Slot, why: str) -> None:
        """A worker died: replace it while the batch's budget lasts."""
        with contextlib.suppress(Exception):
            self._ray.kill(slot.actor)
        slot.actor, slot.job = None, None
        slot.state.state, slot.state.note = DEAD, why
        if self._replacements_left > 0 and not self._stopping:
            self._replacements_left -= 1
            slot.state.generation += 1
            slot.state.note = f"{why}; replaced"
            self._start_actor(slot)
        self._changed()

    # -- control --------------------------------------------------------------------------------------------------
    def _watch_control(self) -> None:
        if self.control.cancelled and not self.summary.cancelled:
            self.summary.cancelled = True
            self._stop_sending()
        paused = self.control.paused
        if paused and self._paused_at is None:
            self._paused_at = time.perf_counter()
            self.listener.paused(True)
        elif not paused and self._paused_at is not None:
            self._rate.add_pause(time.perf_counter() - self._paused_at)
            self._paused_at = None
            self.listener.paused(False)

    def _stop(self, why: str) -> None:
        """Stop on our own (a full disk, no workers left): the reason goes in the summary."""
        if not self.summary.stopped:
            self.summary.stopped = why
        self._stop_sending()

    def _stop_sending(self) -> None:
        """No new photos; the ones in progress are abandoned at their next tile (a bounded wait, then a kill)."""
        if self._stopping:
            return
        self._stopping = True
        self._cancel_sent_at = time.monotonic()
        for slot in self.slots:
            if slot.actor is not None and slot.state.state in (STARTING, IDLE, WORKING):
                with contextlib.suppress(Exception):
                    slot.actor.cancel.options(concurrency_group="control").remote()

    def _abandon_busy(self) -> None:
        """Cancelled workers that did not reach a tile boundary in time: kill them; their photos are not done."""
        for slot in self.slots:
            if slot.job is not None:
                self._unfinished(slot.job, "cancelled: the worker did not stop in time")
                with contextlib.suppress(Exception):
                    self._ray.kill(slot.actor)
                remove_temps_beside([slot.job.target])
                slot.actor, slot.job = None, None
                slot.state.state = STOPPED
        self._refs = {r: v for r, v in self._refs.items() if v[1].actor is not None}
        self._changed()

    def _unfinished(self, job: _Job, reason: str) -> None:
        if self.summary.cancelled:
            self.summary.results.append(FileResult(job.item.source, job.target, Status.CANCELLED, reason))
        else:
            self.summary.not_reached += 1

    # -- sending and receiving ------------------------------------------------------------------------------------
    def _dispatch(self, todo: deque[_Job], retry: deque[_Job], taken: set[str]) -> None:
        """Settle photos that need no worker, send the others to idle workers, in plan order."""
        idle = [s for s in self.slots if s.state.state == IDLE and s.job is None]
        while retry and idle:
            self._send(idle.pop(0), retry.popleft())
        while todo:
            job = todo[0]
            item = job.item
            if item.action == Action.DONE:
                todo.popleft()
                self._settle(FileResult(item.source, item.target, Status.DONE_BEFORE, "finished by an earlier run"))
                continue
            if item.action == Action.UNREADABLE:  # the plan found it from its header: no worker needed
                todo.popleft()
                with contextlib.suppress(OSError, ManifestError):
                    self.manifest.failed(item.source, self.signature, item.target, item.conflict)
                self._settle(FileResult(item.source, item.target, Status.FAILED, item.conflict))
                continue
            if item.runs and not idle:
                return
            todo.popleft()
            target, action = recheck_target(item, self.settings, taken)
            taken.add(path_key(target))
            if action == Action.SKIP:
                if item.runs:
                    self._rate.file_abandoned()
                self._settle(FileResult(item.source, target, Status.SKIPPED, "a file with this name exists"))
                continue
            job.target = target
            try:
                self.manifest.writing(item.source, self.signature, target)
            except ManifestError as exc:
                self._rate.file_abandoned()
                self._settle(FileResult(item.source, target, Status.FAILED, str(exc)))
                continue
            self._send(idle.pop(0), job)

    def _send(self, slot: _Slot, job: _Job) -> None:
        job.attempts += 1
        slot.job = job
        slot.state.state, slot.state.photo, slot.state.since = WORKING, job.item.source, time.monotonic()
        self._refs[slot.actor.process.remote(str(job.item.source), str(job.target))] = ("photo", slot)
        self.listener.file_started(job.item, self._progress(job.item.source))
        self._changed()

    def _wait_one(self, retry: deque[_Job]) -> None:
        if not self._refs:
            time.sleep(_POLL)
            return
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=_POLL)
        for ref in ready:
            kind, slot = self._refs.pop(ref)
            if kind == "ready":
                self._on_ready(slot, ref)
            else:
                self._on_photo(slot, ref, retry)

    def _on_ready(self, slot: _Slot, ref: Any) -> None:
        ray = self._ray
        try:
            info: WorkerReady = ray.get(ref, timeout=60)
        except ray.exceptions.RayActorError as exc:
            self._last_death = f"died while loading the model ({_short(exc)})"
            self._replace(slot, self._last_death)
            return
        slot.state.pid, slot.state.node, slot.state.load_seconds = info.pid, info.node, info.load_seconds
        if info.error:
            # The same files on every node fail the same way: do not replace, and give up once no worker is left.
            slot.state.state, slot.state.note = NO_MODEL, info.error
            self._load_errors.append(info.error)
            with contextlib.suppress(Exception):
                ray.kill(slot.actor)
            slot.actor = None
            self._changed()
            if not self._alive():
                raise ModelLoadFailed(f"{info.error} (on {info.node})")
            return
        if not any(s.state.state in (IDLE, WORKING) for s in self.slots):
            self.summary.load_seconds = time.perf_counter() - self._load_started
            self.listener.model_loaded(self.summary.load_seconds)
            self._rate.start()
        slot.state.state, slot.state.since = IDLE, time.monotonic()
        if self.summary.cancelled or self._stopping:
            with contextlib.suppress(Exception):
                slot.actor.cancel.options(concurrency_group="control").remote()
        self.model_info = info.info
        self._changed()

    def _on_photo(self, slot: _Slot, ref: Any, retry: deque[_Job]) -> None:
        ray = self._ray
        job = slot.job
        assert job is not None
        try:
            outcome: PhotoOutcome = ray.get(ref, timeout=60)
        except ray.exceptions.RayActorError as exc:
            why = f"died while on {job.item.source.name} ({_short(exc)})"
            self._last_death = why
            job.deaths.append(_short(exc))
            self._replace(slot, why)
            remove_temps_beside([job.target])  # killed mid-write: its temp file stays behind
            if self._stopping:
                self._unfinished(job, "cancelled")
            elif job.attempts >= self.options.max_attempts:
                self._fail(job, f"the worker processing it died {job.attempts} times (last: {job.deaths[-1]})")
            else:
                retry.append(job)
            return
        except Exception as exc:  # noqa: BLE001 - an error from Ray itself (not a worker death): this photo only
            outcome = PhotoOutcome(Status.FAILED, f"{type(exc).__name__}: {_short(exc)}")
        slot.job = None
        slot.state.state, slot.state.photo, slot.state.since = IDLE, None, time.monotonic()
        if outcome.status == Status.CANCELLED:
            self._unfinished(job, "cancelled")
            self._changed()
            return
        if outcome.status == Status.WRITTEN:
            try:
                self.manifest.done(job.item.source, self.signature, job.target, outcome.seconds, outcome.size)
            except OSError as exc:
                outcome = replace(outcome, status=Status.FAILED, reason=str(exc))
        result = FileResult(job.item.source, job.target, outcome.status, outcome.reason, outcome.seconds,
                            outcome.model_seconds, disk_full=outcome.disk_full, notes=outcome.notes)  # fmt: skip
        if result.status == Status.WRITTEN:
            slot.state.done += 1
            self._rate.file_rendered()
            self._settle(result)
        else:
            slot.state.failed += 1
            self._fail(job, result.reason, result)
            if result.disk_full:
                self._stop(disk_full_stop(result.reason))
        self._changed()

    def _fail(self, job: _Job, reason: str, result: FileResult | None = None) -> None:
        self._rate.file_abandoned()
        with contextlib.suppress(OSError, ManifestError):
            self.manifest.failed(job.item.source, self.signature, job.target, reason)
        self._settle(result or FileResult(job.item.source, job.target, Status.FAILED, reason))


def _short(exc: BaseException) -> str:
    """The first line of a Ray error (they carry pages of context)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
