"""What a batch reports: the fate of each photo and the summary of the whole run.

Shared by the local runner and the Ray runner, so the CLI, the dialog and the tests read one kind of summary
whichever ran the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .sources import Refused

log = logging.getLogger(__name__)


class Status(str, Enum):
    """What became of one file. A str: the value is the word the summary prints ("3 written, 1 done before")."""

    WRITTEN = "written"
    SKIPPED = "skipped"  # a file with the result's name exists and the policy is to skip
    DONE_BEFORE = "done before"  # finished by an earlier run of this batch (the plan's Action.DONE)
    FAILED = "failed"
    CANCELLED = "cancelled"

    __str__ = str.__str__  # f"{status}" is the word on every Python (3.11 and later would print "Status.FAILED")


#: The name the command line imports (``desktop_sr/cli/batch_cluster.py``); everything else says ``Status.FAILED``.
FAILED = Status.FAILED


class ModelLoadFailed(Exception):
    """The model could not be loaded, so no file could run. Wraps the engine's error, whose message says why."""


def log_result(result: FileResult) -> None:
    """One line per photo in the log file (:mod:`desktop_sr.logfile`): what a report about a batch needs."""
    log.info("%s -> %s: %s%s", result.source, result.target, result.status.value,
             f" ({result.reason})" if result.reason else "")  # fmt: skip


def disk_full_stop(reason: str) -> str:
    """Why a batch stopped at a full disk, said once: the photo's reason (the folder, its free space, about how
    much a result needs) and what to do. Every later photo would render for minutes and then fail the same way."""
    return (f"{reason.removeprefix('cannot write: ')}. The remaining photos were not started: run the batch again "
            "once there is space, and it continues where it stopped")  # fmt: skip


@dataclass
class FileResult:
    source: Path
    target: Path
    status: Status
    reason: str = ""
    seconds: float = 0.0  # read + render + write
    model_seconds: float = 0.0  # inside session.render only
    disk_full: bool = False  # the write failed for lack of space: the runner stops rather than fail every file
    notes: tuple[str, ...] = ()  # what reading or writing the photo said (e.g. metadata partly unreadable)


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

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def model_seconds(self) -> float:
        return sum(r.model_seconds for r in self.results)

    @property
    def failures(self) -> list[tuple[Path, str]]:
        """Every input that did not give a result and why: refused while planning, or failed while running."""
        return [(r.path, r.reason) for r in self.refused] + [
            (r.source, r.reason) for r in self.results if r.status == Status.FAILED
        ]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.cancelled and not self.stopped

    def describe(self) -> str:
        parts = [f"{self.count(Status.WRITTEN)} written"]
        for status in (Status.SKIPPED, Status.DONE_BEFORE):
            if n := self.count(status):
                parts.append(f"{n} {status}")
        if self.failures:
            parts.append(f"{len(self.failures)} failed")
        if self.cancelled:
            parts.append(f"cancelled with {self.count(Status.CANCELLED) + self.not_reached} not done")
        if self.stopped:
            parts.append(f"stopped ({self.stopped}) with {self.not_reached} not done")
        return ", ".join(parts) + f" in {self.seconds:.1f} s (model {self.load_seconds + self.model_seconds:.1f} s)"
