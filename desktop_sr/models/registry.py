"""The model store: a folder of models and a JSON registry that lists them, with the sha256 of every file.

Layout of the models folder (see :func:`desktop_sr.models.paths.models_dir`)::

    registry.json              the list of models and the default; replaced atomically, never edited in place
    <id>/<role>/...            a copied model: the files of each of its family's roles (PiSA-SR: ``base/`` holds the
                               SD-2.1-base files, ``adapter/`` the adapter and its manifest; a community upscaler:
                               ``weights/<file>``)
    <id>/.desktop-sr-model.json  marker written first, so a folder left by an interrupted import is recognisable
    .staging/<token>/          imports in progress (each held by a lock file while it runs)
    .downloads/                partial downloads, kept so a later download resumes

A model imported *by reference* has no folder here: the registry points at the user's files and records their
hashes; removing it never touches them.

Why imports are staged: copying 5 GB takes minutes and can be interrupted by a crash, a full disk or the user.
Files go to ``.staging/<token>/`` first, the finished folder is renamed to ``<id>/`` in one step, and the registry
entry is written last. Until that write the model does not exist for anyone (the GUI, the CLI, ``default_spec``);
an interrupted import leaves at most a stale staging folder, which the next import deletes, or (killed between
the rename and the registry write) a marked folder listed as "incomplete" that *Remove* deletes.

This module never imports torch or Qt: the GUI calls :func:`default_spec` at start-up, and ``models list`` should
be instant. Only a family's ``inspect`` (called during an import) touches torch. Which files a model has and how
they are checked is its family's business (:mod:`desktop_sr.engine.families`): the store names no family.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from .. import durable
from ..engine.control import Control
from ..engine.errors import ModelError
from ..engine.families import BuiltIn, ModelFamily, RoleFiles, built_ins, family
from ..engine.spec import ModelSpec
from . import files as _files
from .errors import StoreError, UnknownModel
from .files import atomic_write_text, check_cancel, folder_size, hash_file
from .paths import models_dir

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .listing import ModelRow

log = logging.getLogger(__name__)

FORMAT = "desktop-sr-models"
#: 2: an entry holds its files by role (``paths``, ``storage``) and what its family found (``details``); version 1
#: entries (PiSA-SR only: ``base_dir``, ``lora``, ``adapter_storage``) are read and rewritten as version 2.
VERSION = 2
REGISTRY_FILE = "registry.json"
MARKER = ".desktop-sr-model.json"
STAGING = ".staging"
DOWNLOADS = ".downloads"
BUILTIN_ID = "bundled"  # the store id of the model that comes with the app (``--model bundled``)


class ModelStatus(str, Enum):
    """A model's health as the list shows it (the values are what ``models list --json`` prints)."""

    OK = "ok"
    MISSING = "missing"
    MODIFIED = "modified"
    INCOMPLETE = "incomplete"
    BUILTIN = "built-in"

    def __str__(self) -> str:
        return self.value


class Storage(str, Enum):
    """How a role's files are held: copied into the store (it owns them) or referenced where the user keeps them."""

    COPY = "copy"
    REFERENCE = "reference"
    MOVE = "move"  # an import mode only: the downloader's own files are renamed in, then held as copies

    def __str__(self) -> str:
        return self.value


OK, MISSING, MODIFIED, INCOMPLETE, BUILTIN = (ModelStatus.OK, ModelStatus.MISSING, ModelStatus.MODIFIED,
                                              ModelStatus.INCOMPLETE, ModelStatus.BUILTIN)  # fmt: skip
STORAGE_MODES = (Storage.COPY.value, Storage.REFERENCE.value)
_SPACE_MARGIN = 64 << 20


@dataclass(frozen=True)
class FileRecord:
    """One file of a model as it was at import: enough to notice a change cheaply (size, mtime) or surely (sha256)."""

    role: str  # the family's role key ("base", "adapter", "weights", ...)
    path: str  # POSIX path relative to the role's folder (a folder role's folder, or a file role's parent)
    size: int
    sha256: str
    mtime_ns: int


@dataclass
class ModelEntry:
    """A registered model: its family's ``kind`` and, per role, where its files are and how they are held.

    A copied role's path is relative to the model's folder (``<role>/...``), a referenced role's is absolute. Roles
    are held independently, so a trained adapter can be copied in while it references a base that is already on
    disk: SD-2.1-base is 5 GB, adapters are small.
    """

    id: str
    name: str
    kind: str
    paths: dict[str, str]  # role -> path
    storage: dict[str, str]  # role -> "copy" or "reference"
    files: list[FileRecord]
    added: str = ""
    source: dict[str, str] = field(default_factory=dict)
    verified: dict[str, object] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)  # what the family found: architecture, scale, ...

    @property
    def owns_folder(self) -> bool:
        """Whether ``<models dir>/<id>/`` holds files of this model (and Remove deletes it)."""
        return Storage.COPY.value in self.storage.values()

    @property
    def storage_label(self) -> str:
        kinds = set(self.storage.values())
        if len(kinds) <= 1:
            return next(iter(kinds), Storage.COPY.value)
        return ", ".join(f"{role} {how}" for role, how in self.storage.items())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        return d

    @staticmethod
    def from_json(raw: dict[str, object]) -> ModelEntry:
        files = [FileRecord(**f) for f in raw["files"]]  # type: ignore[union-attr,arg-type]
        if "paths" in raw:
            paths = {str(k): str(v) for k, v in dict(raw["paths"]).items()}  # type: ignore[call-overload]
            storage = {str(k): str(v) for k, v in dict(raw["storage"]).items()}  # type: ignore[call-overload]
        else:  # version 1: a PiSA-SR model, base folder + adapter
            base_storage = str(raw["storage"])
            paths = {"base": str(raw["base_dir"]), "adapter": str(raw["lora"])}
            storage = {"base": base_storage, "adapter": str(raw.get("adapter_storage") or base_storage)}
        return ModelEntry(
            id=str(raw["id"]), name=str(raw["name"]), kind=str(raw["kind"]), paths=paths, storage=storage,
            files=files, added=str(raw.get("added", "")), source=dict(raw.get("source") or {}),  # type: ignore[arg-type]
            verified=dict(raw.get("verified") or {}), details=dict(raw.get("details") or {}),  # type: ignore[arg-type]
        )  # fmt: skip


@dataclass
class VerifyReport:
    """The result of re-hashing a model's files; ``problems`` name each file at fault."""

    id: str
    problems: list[tuple[Path, str]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.note:
            return self.note
        if self.ok:
            return f"{self.id}: all {self.files} files match the sha256 recorded at import"
        lines = [f"{self.id}: {len(self.problems)} of {self.files} files do not match what was imported"]
        lines += [f"  {path}: {reason}" for path, reason in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class RemoveResult:
    id: str
    name: str
    deleted: Path | None  # the folder deleted, None when the model was a reference (nothing deleted)
    freed: int
    kept: tuple[Path, ...] = ()  # the user's files a reference pointed at, left untouched


@dataclass
class _Registry:
    default: str | None = None
    models: list[ModelEntry] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def built_in(root: Path | None = None) -> tuple[ModelFamily, BuiltIn] | None:
    """The model that comes with the app, if it can run here (its family says; nothing that needs torch loads)."""
    found = built_ins(root if root is not None else models_dir())
    return found[0] if found else None


def bundled_available(root: Path | None = None) -> bool:
    """Whether the app's own model can run here (its weights are installed, or were converted into ``root``)."""
    return built_in(root) is not None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def slugify(name: str) -> str:
    """A folder-safe id from a display name: lower case letters, digits, ``.``, ``_`` and ``-``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-._")
    return slug[:60] or "model"


class ModelStore:
    """Operations on one models folder. Safe to use from several processes: registry changes take a file lock and
    re-read the registry, so a CLI import while the GUI verifies loses nothing."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else models_dir()

    @property
    def registry_path(self) -> Path:
        return self.root / REGISTRY_FILE

    # -- registry file ----------------------------------------------------------------------------------------------
    def _read(self) -> _Registry:
        path = self.registry_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _Registry()
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(path, f"cannot read the model registry ({exc})") from exc
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if int(raw.get("version", 0)) > VERSION:
                raise StoreError(path, f"written by a newer desktop-sr (version {raw['version']}); update the app")
            models = [ModelEntry.from_json(m) for m in raw.get("models", [])]
            default = raw.get("default")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(
                path,
                f"the model registry is damaged ({exc}); repair or move it aside (the model folders are untouched)",
            ) from exc
        return _Registry(default=str(default) if default else None, models=models)

    def _write(self, reg: _Registry) -> None:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "default": reg.default,
            "models": [m.to_json() for m in reg.models],
        }
        atomic_write_text(self.registry_path, json.dumps(data, indent=2, sort_keys=False) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Registry]:
        """Read-modify-write the registry under an inter-process lock; written only if the block succeeds."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self.root, f"cannot create the models folder ({exc.strerror or exc})") from exc
        lock = FileLock(str(self.root / ".registry.lock"), timeout=30)
        try:
            lock.acquire()
        except Timeout as exc:
            raise StoreError(self.root, "another desktop-sr is changing the models; try again") from exc
        try:
            durable.remove_stale_temps(self.registry_path)  # a writer killed mid-write left it; none is live now
            reg = self._read()
            yield reg
            self._write(reg)
        finally:
            lock.release()

    # -- queries ----------------------------------------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        return self._read().models

    def default_id(self) -> str | None:
        return self._read().default

    def resolve(self, key: str, reg: _Registry | None = None) -> ModelEntry:
        """The entry with id ``key``, else the one whose name is ``key`` (case-insensitive) if only one is."""
        reg = reg or self._read()
        for m in reg.models:
            if m.id == key:
                return m
        named = [m for m in reg.models if m.name.lower() == key.lower()]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise StoreError(Path(key), f"several models have this name; use an id: {', '.join(m.id for m in named)}")
        raise UnknownModel(key, reg.ids() + ([BUILTIN_ID] if bundled_available(self.root) else []))

    def role_path(self, entry: ModelEntry, role: str) -> Path:
        """Where the file (or folder) of ``role`` is: in the model's folder for a copy, where it was for a reference."""
        path = entry.paths[role]
        return self.root / entry.id / path if entry.storage.get(role) == Storage.COPY.value else Path(path)

    def file_path(self, entry: ModelEntry, rec: FileRecord) -> Path:
        """A recorded file: under a folder role's folder, or beside a file role's file."""
        where = self.role_path(entry, rec.role)
        folder = where if self._is_folder_role(entry, rec.role) else where.parent
        return folder / rec.path

    def _is_folder_role(self, entry: ModelEntry, role: str) -> bool:
        try:
            return family(entry.kind).role(role).folder
        except (ModelError, KeyError):
            return entry.paths[role] in (role, "") or self.role_path(entry, role).is_dir()

    def location(self, entry: ModelEntry) -> str:
        if set(entry.storage.values()) == {Storage.COPY.value}:
            return str(self.root / entry.id)
        return " + ".join(str(self.role_path(entry, role)) for role in entry.paths)

    def quick_status(self, entry: ModelEntry) -> tuple[str, str]:
        """Status from file sizes and times only (instant, no hashing), plus a plain-words detail.

        "modified" means a file's size or time changed since import (or the last verify found a changed file):
        *Verify* re-hashes and either confirms the damage, naming the files, or clears the mark.
        """
        missing: list[Path] = []
        changed: list[Path] = []
        for rec in entry.files:
            path = self.file_path(entry, rec)
            try:
                st = path.stat()
            except OSError:
                missing.append(path)
                continue
            if st.st_size != rec.size or st.st_mtime_ns != rec.mtime_ns:
                changed.append(path)
        if missing:
            return MISSING, f"{len(missing)} file(s) missing, e.g. {missing[0]}"
        if entry.verified.get("ok") is False:
            return MODIFIED, f"the last verify ({entry.verified.get('at', '')}) found: {entry.verified.get('problems')}"
        if changed:
            return MODIFIED, f"{len(changed)} file(s) changed since import, e.g. {changed[0]}; verify to check"
        return OK, ""

    def _orphans(self, reg: _Registry) -> list[tuple[Path, dict[str, object]]]:
        """Marked model folders without a registry entry: an import killed between its rename and registry write."""
        found: list[tuple[Path, dict[str, object]]] = []
        known = set(reg.ids())
        try:
            children = sorted(self.root.iterdir())
        except OSError:
            return found
        for d in children:
            if d.name.startswith(".") or d.name in known or not (d / MARKER).is_file():
                continue
            try:
                info = json.loads((d / MARKER).read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                info = {}
            found.append((d, info if isinstance(info, dict) else {}))
        return found

    def rows(self) -> list[ModelRow]:
        """Everything the manager shows (see :mod:`.listing`, which words it)."""
        from .listing import model_rows

        return model_rows(self)

    def snapshot(self) -> _Registry:
        """The registry as read now: pass it to the queries below so one listing reads the file once and sees one
        state (another process may write it between two reads)."""
        return self._read()

    def orphans(self, reg: _Registry | None = None) -> list[tuple[Path, dict[str, object]]]:
        return self._orphans(reg or self._read())

    def effective_default(self, reg: _Registry | None = None) -> str | None:
        return self._effective_default(reg or self._read())

    def _effective_default(self, reg: _Registry) -> str | None:
        """The id the app will actually load: the default if usable, else the bundled model if installed."""
        if reg.default and reg.default != BUILTIN_ID:
            for m in reg.models:
                if m.id == reg.default and self.quick_status(m)[0] in (OK, MODIFIED):
                    return m.id
        return BUILTIN_ID if bundled_available(self.root) else None

    # -- specs and the default --------------------------------------------------------------------------------------
    def spec(self, entry: ModelEntry) -> ModelSpec:
        """The spec the engine opens: the family's roles, each at its path in the store or where it is referenced."""
        return ModelSpec.of(entry.kind, entry.name, {role: self.role_path(entry, role) for role in entry.paths})

    def spec_for(self, key: str) -> ModelSpec:
        """The spec of a model by id or name (``bundled`` for the one that comes with the app)."""
        if key == BUILTIN_ID:
            found = built_in(self.root)
            if found is None:
                raise StoreError(Path(key), "the bundled model is not installed with this build")
            return found[1].spec
        return self.spec(self.resolve(key))

    def default_spec(self) -> ModelSpec | None:
        """The default model's spec; None when there is none or its files are gone (the app then uses the bundled
        model). A model whose files changed is still returned: loading it names the broken file if it is broken."""
        reg = self._read()
        if reg.default is None:
            return None
        if reg.default == BUILTIN_ID:
            return self.spec_for(BUILTIN_ID) if bundled_available(self.root) else None
        try:
            entry = self.resolve(reg.default, reg)
        except UnknownModel:
            log.warning("the default model %r is not registered in %s", reg.default, self.registry_path)
            return None
        status, detail = self.quick_status(entry)
        if status == MISSING:
            log.warning("the default model %s cannot be used: %s", entry.name, detail)
            return None
        if status == MODIFIED:
            log.warning("the default model %s: %s", entry.name, detail)
        return self.spec(entry)

    def set_default(self, key: str | None) -> str | None:
        """Make ``key`` (id, name or ``bundled``) the default, or clear it with None. Returns the id."""
        with self._locked() as reg:
            if key is None:
                reg.default = None
            elif key == BUILTIN_ID:
                if not bundled_available(self.root):
                    raise StoreError(Path(key), "the bundled model is not installed with this build")
                reg.default = BUILTIN_ID
            else:
                entry = self.resolve(key, reg)
                status, detail = self.quick_status(entry)
                if status == MISSING:
                    raise StoreError(Path(entry.id), f"cannot be the default: {detail}")
                fam = family(entry.kind)
                if not fam.capabilities.upscaler:
                    raise StoreError(Path(entry.id), f"cannot be the default: {fam.label} makes no result")
                reg.default = entry.id
            return reg.default

    # -- import -----------------------------------------------------------------------------------------------------
    def import_model(
        self,
        kind: str,
        files: Mapping[str, str | Path],
        *,
        name: str = "",
        mode: str | Mapping[str, str] = "copy",
        validate: bool = True,
        make_default: bool = False,
        control: Control | None = None,
        source: dict[str, str] | None = None,
    ) -> ModelEntry:
        """Add a model of family ``kind`` from its files by role (``{"weights": path}``, ``{"base": ..., ...}``).

        ``mode`` (one for all roles, or per role) is ``copy`` (into the models folder; the originals are only read),
        ``reference`` (hash the files where they are; nothing is copied) or ``move`` (for the downloader: its own
        files are renamed in, not copied, to avoid needing twice the disk space). ``validate`` has the family read
        the model first (torch), so a wrong file is refused now rather than at first use; what it finds (an
        architecture, a scale) is recorded. The entry is registered only once every file is in place and hashed;
        any failure or cancel (``control.cancel()``) leaves nothing usable and no partial files.
        """
        fam = family(kind)
        paths = {r.key: Path(files[r.key]).expanduser().absolute() for r in fam.roles if r.key in files}
        missing = [r.label for r in fam.roles if r.key not in paths]
        if missing:
            raise StoreError(Path(kind), f"{fam.label} needs: {', '.join(missing)}")
        modes = {role: (mode if isinstance(mode, str) else mode.get(role, "copy")) for role in paths}
        for m in modes.values():
            if m not in (*STORAGE_MODES, Storage.MOVE.value):
                raise StoreError(Path(m), f"unknown import mode (use one of {', '.join(STORAGE_MODES)})")
        parts: dict[str, RoleFiles] = {role: fam.role_files(fam.role(role), path) for role, path in paths.items()}
        details = fam.inspect(paths).facts if validate else {}
        plan = [(role, rf.root, rel) for role, rf in parts.items() for rel in rf.names]
        try:
            sizes = [(src / rel).stat().st_size for _role, src, rel in plan]
        except OSError as exc:
            raise StoreError(Path(exc.filename or kind), f"cannot read ({exc.strerror or exc})") from exc
        total = sum(sizes)
        to_copy = sum(n for (role, _src, _rel), n in zip(plan, sizes, strict=True) if modes[role] == "copy")
        display = name.strip() or fam.default_name(paths)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self.root, f"cannot create the models folder ({exc.strerror or exc})") from exc
        if to_copy:
            free = shutil.disk_usage(self.root).free
            if free < to_copy + _SPACE_MARGIN:
                raise StoreError(self.root, f"not enough free space: the copy needs {_files.human_size(to_copy)}, "
                                            f"{_files.human_size(free)} is free; import by reference instead, or "
                                            "choose another models folder")  # fmt: skip
        self.cleanup()
        staging_root = self.root / STAGING
        staging_root.mkdir(exist_ok=True)
        staging = staging_root / secrets.token_hex(6)
        lock = FileLock(str(staging) + ".lock", timeout=0)
        lock.acquire()
        final: Path | None = None
        moved: list[tuple[Path, Path]] = []
        origin = {role: str(path) for role, path in paths.items()}
        try:
            staging.mkdir()
            marker = {"name": display, "kind": kind, "started": _now(), "source": origin}
            atomic_write_text(staging / MARKER, json.dumps(marker, indent=2))
            records = self._bring_in(plan, total, modes, staging, control)
            moved = self._move_in(parts, staging, modes)
            check_cancel(control, next(iter(paths.values()), self.root))
            owned = {role: m != Storage.REFERENCE.value for role, m in modes.items()}
            stored = {role: (f"{role}/{parts[role].entry}".rstrip("/") if owned[role] else str(paths[role]))
                      for role in paths}  # fmt: skip
            with self._locked() as reg:
                ident = self._unique_id(slugify(display), reg)
                if any(owned.values()):
                    final = self.root / ident
                    os.replace(staging, final)
                    durable.fsync_folder(self.root)
                entry = ModelEntry(
                    id=ident, name=display, kind=kind, paths=stored,
                    storage={role: Storage.COPY.value if owned[role] else Storage.REFERENCE.value for role in paths},
                    files=records, added=_now(), source={**origin, **(source or {})}, details=details,
                )  # fmt: skip
                reg.models.append(entry)
                if make_default:
                    reg.default = entry.id
            return entry
        except BaseException:
            if final is not None and final.exists():
                with contextlib.suppress(OSError):
                    os.replace(final, staging)  # registered nothing: undo the rename, then clean up below
                    final = None
            for src, dst in reversed(moved):  # the downloader's files go back where they were, for a retry
                with contextlib.suppress(OSError):
                    os.replace(dst, src)
            for folder in (staging, final):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            lock.release()
            with contextlib.suppress(OSError):
                Path(str(staging) + ".lock").unlink()
            with contextlib.suppress(OSError):
                staging_root.rmdir()  # only when empty: another import may be staging too

    def _bring_in(
        self,
        plan: list[tuple[str, Path, str]],
        total: int,
        modes: dict[str, str],
        staging: Path,
        control: Control | None,
    ) -> list[FileRecord]:
        """Copy (or hash in place) every planned file, returning its record; reports progress over all bytes."""
        done = 0
        records: list[FileRecord] = []

        for role, src_root, rel in plan:
            src = src_root / rel
            mode = modes[role]
            label = f"{'Copying' if mode == 'copy' else 'Checking'} {role}/{rel}"
            if control:
                control.report(done, total, label)

            def on_bytes(n: int, label: str = label) -> None:
                nonlocal done
                done += n
                if control:
                    control.report(done, total, label)

            check_cancel(control, src)
            if mode == "copy":
                dst = staging / role / rel
                sha, size = _files.copy_with_hash(src, dst, on_bytes=on_bytes, control=control)
                mtime = dst.stat().st_mtime_ns
            else:
                before = src.stat()
                sha, size = hash_file(src, on_bytes=on_bytes, control=control)
                after = src.stat()
                if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or size != after.st_size:
                    raise StoreError(src, "the file changed while it was being read; try again when nothing writes it")
                mtime = after.st_mtime_ns
            records.append(FileRecord(role, rel, size, sha, mtime))
        if control:
            control.report(total, total, "Registering")
        return records

    @staticmethod
    def _move_in(parts: Mapping[str, RoleFiles], staging: Path, modes: Mapping[str, str]) -> list[tuple[Path, Path]]:
        """Rename the downloader's files into the staging folder (same file system: instant, no extra space)."""
        moved: list[tuple[Path, Path]] = []
        for role, rf in parts.items():
            if modes[role] != Storage.MOVE.value:
                continue
            if not rf.entry:  # a folder role: the whole folder moves
                shutil.rmtree(rf.root / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
                os.replace(rf.root, staging / role)
                moved.append((rf.root, staging / role))
                continue
            (staging / role).mkdir(exist_ok=True)
            for n in rf.names:
                os.replace(rf.root / n, staging / role / n)
                moved.append((rf.root / n, staging / role / n))
        return moved

    def _unique_id(self, slug: str, reg: _Registry) -> str:
        taken = set(reg.ids()) | {BUILTIN_ID}
        ident, n = slug, 1
        while ident in taken or (self.root / ident).exists():
            n += 1
            ident = f"{slug}-{n}"
        return ident

    def cleanup(self) -> list[Path]:
        """Delete staging folders of imports that are no longer running (their lock is free). Returns them."""
        removed: list[Path] = []
        staging_root = self.root / STAGING
        if not staging_root.is_dir():
            return removed
        for d in sorted(staging_root.iterdir()):
            if d.suffix == ".lock" and not d.with_suffix("").exists():
                with contextlib.suppress(OSError, Timeout), FileLock(str(d), timeout=0):
                    d.unlink()  # left by an import killed after its folder was renamed into place
                continue
            if not d.is_dir():
                continue
            lock = FileLock(str(d) + ".lock", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue  # an import in progress (this or another process)
            try:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
            finally:
                lock.release()
                with contextlib.suppress(OSError):
                    Path(str(d) + ".lock").unlink()
        with contextlib.suppress(OSError):
            staging_root.rmdir()  # only when empty
        return removed

    # -- verify and remove ------------------------------------------------------------------------------------------
    def verify(self, key: str, *, control: Control | None = None) -> VerifyReport:
        """Re-hash every file of a model and compare with the sha256 recorded at import; records the outcome.

        A passing verify also refreshes the recorded file times, so a file that was merely touched stops showing
        as "modified".
        """
        found = built_in(self.root) if key == BUILTIN_ID else None
        if found is not None:
            checked, problems = found[0].verify_built_in(self.root)  # its family checks (torch: only now)
            report = VerifyReport(BUILTIN_ID, problems=problems, files=checked)
            if not problems:
                report.note = f"{BUILTIN_ID}: all {checked} files of the built-in model are intact"
            return report
        entry = self.resolve(key)
        report = VerifyReport(entry.id)
        total, done = entry.size, 0
        fresh: dict[tuple[str, str], int] = {}
        for rec in entry.files:
            path = self.file_path(entry, rec)
            label = f"Verifying {rec.role}/{rec.path}"
            if control:
                control.report(done, total, label)
            report.files += 1
            if not path.is_file():
                report.problems.append((path, "missing"))
                done += rec.size
                continue

            def on_bytes(n: int, label: str = label) -> None:
                nonlocal done
                done += n
                if control:
                    control.report(done, total, label)

            try:
                sha, size = hash_file(path, on_bytes=on_bytes, control=control)
            except StoreError as exc:
                report.problems.append((path, exc.reason))
                continue
            report.bytes += size
            if size != rec.size:
                report.problems.append((path, f"size changed from {rec.size} to {size} bytes"))
            elif sha != rec.sha256:
                report.problems.append((path, "content changed: sha256 differs from the one recorded at import"))
            else:
                fresh[(rec.role, rec.path)] = path.stat().st_mtime_ns
        with self._locked() as reg:
            for m in reg.models:
                if m.id != entry.id:
                    continue
                if report.ok:
                    m.files = [FileRecord(f.role, f.path, f.size, f.sha256, fresh.get((f.role, f.path), f.mtime_ns))
                               for f in m.files]  # fmt: skip
                problems = "; ".join(f"{p.name}: {r}" for p, r in report.problems[:3])
                m.verified = {"at": _now(), "ok": report.ok, **({"problems": problems} if problems else {})}
        return report

    def remove(self, key: str) -> RemoveResult:
        """Unregister a model and delete the files the store owns; a reference's files are never touched.

        The registry entry goes first, so an interruption leaves at most a marked folder ("incomplete"), never an
        entry pointing at half-deleted files.
        """
        if key == BUILTIN_ID and bundled_available(self.root):
            raise StoreError(Path(key), "the built-in model comes with the app and cannot be removed")
        self.cleanup()
        with self._locked() as reg:
            try:
                entry: ModelEntry | None = self.resolve(key, reg)
            except UnknownModel:
                entry = None
                orphan = next((d for d, _ in self._orphans(reg) if d.name == key), None)
                if orphan is None:
                    raise
            if entry is not None:
                reg.models = [m for m in reg.models if m.id != entry.id]
                if reg.default == entry.id:
                    reg.default = None
        if entry is None:
            return self._delete_owned(key, key, ())
        kept = tuple(self.role_path(entry, role) for role, how in entry.storage.items()
                     if how == Storage.REFERENCE.value)  # fmt: skip
        if not entry.owns_folder:
            return RemoveResult(entry.id, entry.name, None, 0, kept)
        return self._delete_owned(entry.id, entry.name, kept)

    def _delete_owned(self, ident: str, name: str, kept: tuple[Path, ...]) -> RemoveResult:
        folder = self.root / ident
        if "/" in ident or "\\" in ident or ident in ("", ".", "..") or folder.is_symlink():
            raise StoreError(folder, "refusing to delete: not a folder owned by the model store")
        if not folder.exists():
            return RemoveResult(ident, name, None, 0, kept)
        freed = folder_size(folder)
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            reason = f"{exc.filename}: {exc.strerror or exc}"
            raise StoreError(
                folder,
                f"the model was removed from the list, but its folder could not be deleted ({reason}); "
                "delete it by hand",
            ) from exc
        return RemoveResult(ident, name, folder, freed, kept)


def default_spec() -> ModelSpec | None:
    """The default model of the models folder, or None (then the app falls back to the bundled model).

    Called by the GUI at start-up and by the CLI when no ``--model`` is given, so it never raises: a damaged
    registry is logged and treated as "no default".
    """
    try:
        return ModelStore().default_spec()
    except (ModelError, OSError) as exc:
        log.warning("no default model: %s", exc)
        return None
