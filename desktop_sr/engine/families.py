"""The model families: each declares what it is, the files it needs and what it can do, and opens itself.

A family is one folder under :mod:`desktop_sr.engine.backends` with a torch-free ``family.py`` and one line in
:data:`desktop_sr.engine.backends.BUILT_IN` (or, for a plug-in package, an entry point in the group
:data:`ENTRY_POINT_GROUP`). Everything above the engine - the model store, the settings file, the model dialogs, the
model manager, the CLI and the batch - is built from what a family declares here (its :class:`FileRole` s and its
:class:`Capabilities`), so none of them names a family: chaiNNer's rule, that an architecture is added without
touching a central file.

Declarations are torch-free: the GUI reads them on its own thread at start-up. ``inspect`` and ``open`` may import
torch (they run on worker threads).
"""

from __future__ import annotations

import importlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelError
from .spec import ModelSpec

if TYPE_CHECKING:
    from .api import UpscaleSession
    from .control import Control
    from .faces.restore import FaceRestorer
    from .tile_settings import TileSettings

log = logging.getLogger(__name__)

#: Where a plug-in package declares its families: ``[project.entry-points."desktop_sr.model_families"]``,
#: ``name = "package.module:FamilyClass"``.
ENTRY_POINT_GROUP = "desktop_sr.model_families"

#: What chaiNNer, ComfyUI and OpenModelDB publish single-file models as (upscalers and face models alike). ``.pt`` and
#: ``.ckpt`` are pickles too: all are read with ``torch.load(weights_only=True)`` (:mod:`.weights_file`).
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


@dataclass(frozen=True)
class FileRole:
    """One part of a model on disk, as the dialogs and the CLI ask for it."""

    key: str  # the role's name in specs, the registry and the settings file: "base", "adapter", "weights"
    label: str  # what a person is asked for: "Stable Diffusion 2.1-base folder"
    folder: bool = False  # a folder (chosen with a folder dialog) rather than a file
    suffixes: tuple[str, ...] = ()  # accepted file types, lower case with the dot (empty: any)
    hint: str = ""  # one line under the field: where to get it, what it looks like

    def dialog_filter(self) -> str:
        """A Qt file-dialog filter, e.g. ``"Weights (*.pth *.safetensors)"`` (the string is Qt-free)."""
        if not self.suffixes:
            return "All files (*)"
        return f"{self.label} ({' '.join('*' + s for s in self.suffixes)})"


@dataclass(frozen=True)
class RoleFiles:
    """What importing one role brings into the store: files under ``root``, and the one the spec points at."""

    root: Path  # the folder the names are relative to
    names: tuple[str, ...]  # POSIX paths relative to ``root``, each copied or hashed
    entry: str = ""  # the path (relative to ``root``) the spec names; "" = ``root`` itself (a folder role)


@dataclass(frozen=True)
class Capabilities:
    """What the controls mean for a family, known before anything loads (the loaded model's
    :class:`~desktop_sr.engine.api.ModelInfo` says the same for one model, and may narrow it)."""

    strengths: bool = True  # pixel fidelity / semantic detail
    realism: bool = False  # RCOD realism levels
    prompt: bool = False  # a text description
    color_fix: bool = False
    scales: tuple[int, ...] = (1, 2, 3, 4)
    #: A short note for what the family's weights are and who may use them (shown before use).
    licence_note: str = ""
    #: Runs on Vulkan devices (``vulkan:N``, through ncnn) as well as torch's; a family without it is opened on the
    #: CPU when a Vulkan device is chosen, and the session's notice says so.
    vulkan: bool = False
    #: Offered as the model that makes the result (Choose model, the default, ``--model``). A face model is not: it
    #: restores 512 x 512 aligned faces of a finished result.
    upscaler: bool = True
    #: Restores faces of a finished result (``open_restorer``): offered where faces are restored, not as the model.
    face_restoration: bool = False
    #: The factor the network itself runs at, whatever scale is asked (the result is then resized): what a render
    #: costs follows it. None: the network renders at the scale asked.
    native_scale: int | None = None


@dataclass(frozen=True)
class OpenOptions:
    """How to open a model: the device and precision asked for, the cache budget, tiles, the store's folder."""

    device: str = "auto"
    dtype: str = "auto"
    cache_mb: int = 1024
    tiles: TileSettings | None = None
    #: The model store's folder (the caller asks :mod:`desktop_sr.models` for it: the engine never looks it up).
    models_dir: Path | None = None


@dataclass(frozen=True)
class BuiltIn:
    """A model that comes with the app (no import): its store id and name, and where its files are."""

    id: str
    name: str
    spec: ModelSpec
    #: Where its files are, for the model manager's size and location columns.
    folders: tuple[Path, ...] = ()
    where: str = "installed with the app"


@dataclass(frozen=True)
class Published:
    """A model of the family its authors publish at a plain URL: the model manager can download it (resumable, its
    sha256 recorded) after showing its licence; a non-commercial one is downloaded only once the user accepts that."""

    key: str  # what ``desktop-sr models get KEY`` takes
    name: str
    url: str
    page: str  # the authors' page (where the licence is)
    licence: str
    non_commercial: bool

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass
class Details:
    """What :meth:`ModelFamily.inspect` found in a model's files, recorded by the store and shown to the user."""

    facts: dict[str, str] = field(default_factory=dict)  # e.g. {"architecture": "SwinIR", "scale": "4"}

    def line(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.facts.items())


class ModelFamily(ABC):
    """A kind of model the engine can open. Subclasses set the class attributes and implement ``open``."""

    kind: str  # the id in specs, the registry and settings files: never changes once released
    label: str  # "PiSA-SR (Stable Diffusion 2.1 + adapters)"
    roles: tuple[FileRole, ...] = ()
    capabilities: Capabilities = Capabilities()
    #: Sort order in lists (lower first); the built-in default model's family comes first.
    order: int = 100
    #: Models of the family published at plain URLs (single-file roles only), for the model manager to download.
    published: tuple[Published, ...] = ()
    #: What the import lists call the family ("" = ``label``); and whether its files are an alternative to a model
    #: that comes with the app (listed after the others: the first kind a dialog proposes is one a model needs).
    import_label: str = ""
    files_optional: bool = False

    # -- the files ----------------------------------------------------------------------------------------------
    def role(self, key: str) -> FileRole:
        for r in self.roles:
            if r.key == key:
                return r
        raise KeyError(f"{self.kind} has no file role {key!r}")

    def role_files(self, role: FileRole, path: Path) -> RoleFiles:
        """The files importing ``path`` as ``role`` brings in; raises :class:`ModelError` naming what is wrong.
        Torch-free and quick (the dialogs call it as the user picks a file). The default: one file."""
        check_file(path, role)
        return RoleFiles(path.parent, (path.name,), path.name)

    def claims(self, paths: Sequence[Path]) -> dict[str, Path] | None:
        """The role of each path if these paths, given without roles (``models import A [B]``), look like this
        family's model; None otherwise. Torch-free. The default: one path per role, in order, matching the role's
        kind (folder or file) and suffixes."""
        if len(paths) != len(self.roles):
            return None
        for role, path in zip(self.roles, paths, strict=True):
            if role.folder != path.is_dir():
                return None
            if not role.folder and role.suffixes and path.suffix.lower() not in role.suffixes:
                return None
        return {role.key: path for role, path in zip(self.roles, paths, strict=True)}

    def take(self, paths: Sequence[Path]) -> dict[str, Path] | None:
        """The role of each path when the user named this family (``models import --kind``): what :meth:`claims`
        says, unless the family claims nothing unasked (the bundled model's own weights are a community upscaler's
        file too)."""
        return self.claims(paths)

    def inspect(self, files: Mapping[str, Path]) -> Details:
        """Read the model the way opening it would (may import torch) and say what it is, so a wrong file is refused
        at import rather than at first use. Raises :class:`ModelError`. The default checks the layout only."""
        for role in self.roles:
            path = files.get(role.key)
            if path is None:
                raise ModelError(Path(role.key), f"{self.label} needs a {role.label}")
            self.role_files(role, path)
        return Details()

    def spec(self, files: Mapping[str, str | Path], name: str = "", **options: str) -> ModelSpec:
        """A spec of this family, its files in role order (checked against the roles: a missing one is named)."""
        missing = [r.label for r in self.roles if r.key not in files]
        if missing:
            raise ModelError(Path(name or self.kind), f"{self.label} needs: {', '.join(missing)}")
        ordered = {r.key: files[r.key] for r in self.roles}
        return ModelSpec.of(self.kind, name or self.default_name(ordered), ordered, **options)

    def default_name(self, files: Mapping[str, str | Path]) -> str:
        """A display name when the user gives none: the last role's file name without its suffix."""
        if not files:
            return self.label
        return Path(list(files.values())[-1]).stem

    def work_megapixels(self, width: int, height: int, scale: int) -> float:
        """Megapixels the network computes for a ``scale`` render of a ``width`` x ``height`` photo: what a render's
        time follows (:mod:`desktop_sr.render_cost`). The default: the output's, or the native scale's."""
        factor = self.capabilities.native_scale or scale
        return width * height * factor * factor / 1e6

    # -- what comes with the app --------------------------------------------------------------------------------
    def built_in(self, models_dir: Path | None) -> BuiltIn | None:
        """The model of this family that ships with the app, if it can run here (torch-free); None for most."""
        return None

    def verify_built_in(self, models_dir: Path | None) -> tuple[int, list[tuple[Path, str]]]:
        """(files checked, problems) for the built-in model's files (may import torch)."""
        return 0, []

    # -- opening ------------------------------------------------------------------------------------------------
    @abstractmethod
    def open(self, spec: ModelSpec, options: OpenOptions, control: Control | None = None) -> UpscaleSession:
        """Load the model ``spec`` names. Raises :class:`ModelError` naming the file at fault."""

    def open_restorer(self, spec: ModelSpec, options: OpenOptions) -> FaceRestorer:
        """Load a face model (a family whose capabilities say ``face_restoration``). The default refuses."""
        raise ModelError(Path(spec.name or self.kind), f"{self.label} is not a face restoration model")


def check_file(path: Path, role: FileRole) -> None:
    """The common checks of a file role: it exists, is a file, has an accepted suffix and is not empty."""
    if not path.exists():
        raise ModelError(path, f"{role.label}: not found")
    if role.folder:
        if not path.is_dir():
            raise ModelError(path, f"{role.label}: expected a folder")
        return
    if not path.is_file():
        raise ModelError(path, f"is a folder; choose the {role.label.lower()} file")
    if role.suffixes and path.suffix.lower() not in role.suffixes:
        raise ModelError(path, f"not a {role.label.lower()} file (expected {', '.join(role.suffixes)})")
    if path.stat().st_size == 0:
        raise ModelError(path, "the file is empty")


# -- the registry ---------------------------------------------------------------------------------------------------
_families: dict[str, ModelFamily] = {}
_loaded = False
_lock = threading.RLock()


def register(family: ModelFamily) -> ModelFamily:
    """Add a family (a plug-in, or a test's fake). A second family with the same kind replaces the first."""
    with _lock:
        _families[family.kind] = family
    return family


def unregister(kind: str) -> None:
    with _lock:
        _families.pop(kind, None)


def _load_built_ins() -> None:
    """Import the families that ship with the app, then any plug-in's (a broken plug-in is logged, not fatal)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        from .backends import BUILT_IN

        for module in BUILT_IN:
            try:
                importlib.import_module(module)
            except ImportError as exc:  # a family whose own dependency is missing: the others still work
                log.warning("model family %s is not available: %s", module, exc)
        try:
            found = entry_points(group=ENTRY_POINT_GROUP)
        except Exception as exc:  # noqa: BLE001 - broken package metadata must not stop the app
            log.warning("cannot read model family plug-ins: %s", exc)
            return
        for ep in found:
            try:
                cls = ep.load()
                register(cls() if isinstance(cls, type) else cls)
            except Exception as exc:  # noqa: BLE001 - one broken plug-in must not stop the app
                log.warning("model family plug-in %s failed to load: %s", ep.value, exc)


def families() -> list[ModelFamily]:
    """Every registered family, the built-in default's first."""
    _load_built_ins()
    with _lock:
        return sorted(_families.values(), key=lambda f: (f.order, f.label))


def family(kind: str) -> ModelFamily:
    """The family of ``kind``; :class:`ModelError` naming the known ones otherwise."""
    _load_built_ins()
    with _lock:
        found = _families.get(kind)
    if found is None:
        known = ", ".join(f.kind for f in families())
        raise ModelError(Path(kind or "?"), f"unknown model kind {kind!r} (this app knows: {known})")
    return found


def family_for(paths: Sequence[Path]) -> ModelFamily | None:
    """The first family that claims these role-less paths (``models import FILE``, ``--model FILE``)."""
    for fam in families():
        if fam.claims(paths) is not None:
            return fam
    return None


def built_ins(models_dir: Path | None) -> list[tuple[ModelFamily, BuiltIn]]:
    """The models that come with the app and can run here, with their families."""
    found: list[tuple[ModelFamily, BuiltIn]] = []
    for fam in families():
        b = fam.built_in(models_dir)
        if b is not None:
            found.append((fam, b))
    return found
