"""The resume record of a batch: a JSON-lines journal in the output folder that survives a crash or SIGKILL.

Why a journal and not one JSON document rewritten after every file: appending one line (then fsync) costs the
same for the 10th and the 10,000th photo, and a kill mid-append can only tear the last line, which loading skips.
On open the journal is compacted (one line per source) through an atomic rewrite. Why not SQLite: output folders
are often on NAS shares and USB disks where SQLite's locking is unreliable; an append-only text file is not.

Each line is one event for one source: ``writing`` (about to write ``target``; records what was at ``target``
before, if anything), ``done`` (written, with its size), ``failed`` (with the reason). A file counts as finished
when its latest event is ``done`` with the same settings signature, the source is unchanged (size and mtime) and
the result exists with the recorded size. The ``writing`` event closes the gap between the atomic rename of the
result and the ``done`` line: writes are atomic, so a ``writing`` target that now exists and differs from what
was there before is a complete result of this batch.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from enum import Enum
from pathlib import Path
from typing import IO, Any

from ..imaging import PhotoError, atomic_write

MANIFEST_NAME = ".desktop-sr-batch.jsonl"
LOCK_NAME = ".desktop-sr-batch.lock"
VERSION = 1


class State(str, Enum):
    """A journal line's ``state``: the event it records for its source. Its value is what the file holds."""

    WRITING = "writing"  # about to write the target
    DONE = "done"  # written, with its size
    FAILED = "failed"  # with the reason

    __str__ = str.__str__  # f"{state}" is the word on every Python (3.11 and later would print "State.DONE")


class ManifestError(OSError):
    """The manifest cannot be written or is locked by another batch. The message names the file."""


def _stat_pair(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def source_key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())


class Manifest:
    """Read an output folder's journal and append to it. Not thread-safe: the runner's thread owns it."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._fh: IO[str] | None = None
        self._lockfh: IO[str] | None = None
        self._load()

    # -- reading --------------------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot read the batch record ({exc.strerror or exc})") from exc
        for line in text.splitlines():
            self._lines += 1
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill mid-append
            if isinstance(rec, dict) and isinstance(rec.get("source"), str) and rec.get("v") == VERSION:
                self.entries[rec["source"]] = rec

    def finished_target(self, source: Path, signature: str) -> Path | None:
        """The result path if ``source`` was finished by a run with the same settings and the result is intact."""
        rec = self.entries.get(source_key(source))
        if rec is None or rec.get("sig") != signature:
            return None
        if _stat_pair(source) != (rec.get("src_size"), rec.get("src_mtime")):
            return None  # the photo changed since: redo it
        target = self.output_dir / str(rec.get("target", ""))
        now = _stat_pair(target)
        if now is None or not target.is_file():
            return None
        if rec.get("state") == State.DONE:
            return target if now[0] == rec.get("size") else None
        if rec.get("state") == State.WRITING:
            before = rec.get("prev")
            return target if before is None or list(now) != list(before) else None
        return None

    def last_error(self, source: Path) -> str | None:
        rec = self.entries.get(source_key(source))
        return str(rec.get("error")) if rec and rec.get("state") == State.FAILED else None

    # -- writing --------------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the output folder, take the batch lock, compact the journal and open it for appending.

        The lock is a separate file so compaction (an atomic rename of the journal) cannot slip from under it.
        """
        self._lockfh = self._take_lock()
        try:
            self._remove_compaction_temps()
            self.entries.clear()
            self._lines = 0
            self._load()  # again, under the lock: an earlier batch may have finished since we were created
            if self._lines > len(self.entries) + 16:
                self._compact()
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole batch
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:
                fh.seek(fh.tell() - 1)
                last = fh.read(1)
                fh.seek(0, os.SEEK_END)
                if last != "\n":
                    fh.write("\n")  # end a torn line so the next record starts clean
        except (OSError, PhotoError) as exc:
            self.close()
            raise ManifestError(f"{self.path}: cannot write the batch record ({exc})") from exc
        self._fh = fh

    def _take_lock(self) -> IO[str]:
        """Open and lock the lock file. :meth:`close` deletes it (no empty file stays in the user's folder), so a
        lock taken on a file another batch deleted meanwhile is dropped and taken again on the new one."""
        path = self.output_dir / LOCK_NAME
        for _ in range(20):
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                lock = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the batch
            except OSError as exc:
                raise ManifestError(f"{self.output_dir}: cannot write into the output folder ({exc})") from exc
            try:
                _lock(lock)
            except OSError:
                lock.close()
                raise ManifestError(f"{self.output_dir}: another batch is writing into this folder") from None
            try:
                current = os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
            except OSError:
                current = False
            if current:
                return lock
            lock.close()  # locked a file that was deleted after we opened it: take the one there now
        raise ManifestError(f"{self.output_dir}: cannot take the batch lock (the lock file keeps changing)")

    def _remove_compaction_temps(self) -> None:
        """Delete the temp of a compaction a killed run left (``..desktop-sr-batch.<random>.part``); under the lock,
        so no live batch is writing it."""
        for tmp in self.output_dir.glob(f".{self.path.stem}.*.part"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _compact(self) -> None:
        lines = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in self.entries.values())
        atomic_write(self.path, lambda tmp: tmp.write_text(lines, encoding="utf-8"))
        self._lines = len(self.entries)

    def _append(self, rec: dict[str, Any]) -> None:
        if self._fh is None:
            self.open()
        assert self._fh is not None
        rec = {"v": VERSION, **rec, "time": _dt.datetime.now().isoformat(timespec="seconds")}
        try:
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot write the batch record ({exc.strerror or exc})") from exc
        self.entries[rec["source"]] = rec
        self._lines += 1

    def _base(self, source: Path, signature: str, target: Path) -> dict[str, Any]:
        size_mtime = _stat_pair(source) or (None, None)
        try:
            rel = target.relative_to(self.output_dir)
        except ValueError:
            rel = target
        return {"source": source_key(source), "sig": signature, "target": rel.as_posix(),
                "src_size": size_mtime[0], "src_mtime": size_mtime[1]}  # fmt: skip

    def writing(self, source: Path, signature: str, target: Path) -> None:
        prev = _stat_pair(target)
        self._append({**self._base(source, signature, target), "state": State.WRITING, "prev": prev and list(prev)})

    def done(self, source: Path, signature: str, target: Path, seconds: float, size: int | None = None) -> None:
        """``size`` as the writer saw it (a Ray worker on another node), else read here."""
        if size is None:
            size = target.stat().st_size
        self._append({**self._base(source, signature, target), "state": State.DONE, "size": size,
                      "seconds": round(seconds, 3)})  # fmt: skip

    def failed(self, source: Path, signature: str, target: Path, reason: str) -> None:
        self._append({**self._base(source, signature, target), "state": State.FAILED, "error": reason})

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if self._lockfh is not None:
            with contextlib.suppress(OSError):  # while still locked; Windows keeps an open file (and this one)
                (self.output_dir / LOCK_NAME).unlink()
            with contextlib.suppress(OSError):
                _unlock(self._lockfh)
            with contextlib.suppress(OSError):
                self._lockfh.close()
            self._lockfh = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


try:  # an advisory lock; the OS drops it when the process dies, even on SIGKILL
    import fcntl

    def _lock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _unlock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
