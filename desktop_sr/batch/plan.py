"""A batch plan: every source paired with its output path and what will happen to it, decided before anything runs.

The plan is what the dialog previews and what the runner executes, so a user sees conflicts (an existing file, two
sources that would get the same name, a result that would replace its own source) before pressing Start. The same
collision rule (:func:`resolve_target`) runs again just before each write, because a long batch meets a folder that
changed since it was planned.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.api import RenderParams
from ..imaging import FORMATS, SaveOptions
from ..target_size import TargetSize
from .naming import DEFAULT_TEMPLATE, NameTemplate, NameValues, parse_template
from .sources import Refused, Source, find_sources

if TYPE_CHECKING:
    from ..engine.faces import FaceChoice
    from .manifest import Manifest


class OnConflict(str, Enum):
    """What to do when a result's name is taken by a file already there (``--on-conflict``)."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    RENAME = "rename"

    __str__ = str.__str__  # f"{policy}" is the word on every Python (3.11 and later would print "OnConflict.SKIP")


class Action(str, Enum):
    """What happens to one item of the plan (what ``batch --dry-run`` prints)."""

    WRITE = "write"  # a new file
    OVERWRITE = "overwrite"
    RENAME = "rename"  # the name was taken: a free variant of it
    SKIP = "skip"
    DONE = "done"  # finished by an earlier run of this batch (verified on disk)
    UNREADABLE = "cannot read"  # its header already shows it cannot be read (the reason is in ``conflict``)

    __str__ = str.__str__


#: The collision policies by name, as the command line offers them.
ON_CONFLICT = tuple(policy.value for policy in OnConflict)
RENAME_STYLES = {"paren": "{name} ({n})", "underscore": "{name}_{n}"}
OUTPUT_FORMATS = ("same", *FORMATS)  # "same" keeps the source's format where we can write it, else PNG
_SAME_FORMAT = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff",
                ".tiff": "tiff"}  # fmt: skip
MAX_RENAME = 9999


class PlanError(ValueError):
    """The batch settings cannot work (bad policy, no output folder, output folder is a file...)."""


@dataclass(frozen=True)
class BatchSettings:
    """Everything that decides what a batch writes. Frozen: one settings object = one manifest signature."""

    output_dir: Path
    params: RenderParams = field(default_factory=RenderParams)
    template: str = DEFAULT_TEMPLATE
    #: ``save.format`` None means "same as the source" (PNG for sources we cannot write, such as BMP or HEIC).
    save: SaveOptions = field(default_factory=lambda: SaveOptions(format="png"))
    on_conflict: str = OnConflict.SKIP  # an OnConflict (or its value)
    rename_style: str = "paren"
    recursive: bool = False
    model_name: str = "model"
    #: The {date} field; fixed when the batch is planned so a batch running past midnight keeps one date.
    date: _dt.date = field(default_factory=_dt.date.today)
    #: A target size (long edge, fit, print) instead of ``params.scale``: each photo runs at the smallest model
    #: scale that reaches it, then is resampled to exactly that size.
    target: TargetSize | None = None
    #: Use the strength mask painted in the editor for a photo that has one (see :mod:`desktop_sr.batch.masks`).
    use_saved_masks: bool = True
    #: Restore faces after the model (a face model and its strength), or None.
    faces: FaceChoice | None = None

    def validate(self) -> NameTemplate:
        """Check everything checkable up front; returns the parsed template. Raises TemplateError or PlanError."""
        template = parse_template(self.template)
        if self.on_conflict not in ON_CONFLICT:
            raise PlanError(f"unknown collision policy {self.on_conflict!r}; choose one of {', '.join(ON_CONFLICT)}")
        if self.rename_style not in RENAME_STYLES:
            raise PlanError(f"unknown rename style {self.rename_style!r}; choose one of {', '.join(RENAME_STYLES)}")
        out = Path(self.output_dir)
        if str(out).strip() in ("", "."):
            raise PlanError("choose an output folder")
        if out.exists() and not out.is_dir():
            raise PlanError(f"{out}: the output folder is a file")
        return template

    def output_format(self, source: Path) -> str:
        """The format key for ``source``'s result; "same" gives PNG for what we cannot write (BMP, HEIC, RAW)."""
        return self.save.format or _SAME_FORMAT.get(source.suffix.lower(), "png")

    def signature(self) -> str:
        """A hash of the settings that decide a result's pixels and name (not the collision policy).

        The manifest keeps it per finished file: a rerun with other strengths, another model or another format
        must redo the file, a rerun with the same ones must not.
        """
        save = asdict(self.save)
        for key, default in (("dpi_policy", "keep-print-size"), ("dpi", None), ("size", None)):
            if save.get(key) == default:  # options added later: at their defaults, earlier signatures still hold
                save.pop(key, None)
        params = asdict(replace(self.params, maps=None))
        params.pop("maps")  # earlier signatures stay valid; maps are per photo (saved masks) or named below
        data = {
            "params": params,
            "template": self.template,
            "save": save,
            "model": self.model_name,
            "date": self.date.isoformat() if "{date" in self.template else "",
        }
        if self.params.maps is not None:
            data["maps"] = self.params.maps.digest
        if not self.use_saved_masks:
            data["saved_masks"] = False
        if self.target is not None:  # only when set, so batches without a target keep their earlier signatures
            data["target"] = asdict(self.target)
        if self.faces is not None:
            data["faces"] = self.faces.signature()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class PlanItem:
    """One source and its output. ``desired`` is the template's name; ``target`` where the result will go."""

    source: Path
    desired: Path
    target: Path
    action: Action
    conflict: str = ""  # why the target is not simply a new file, or why the source cannot be read ("" = neither)
    #: The photo's upright (width, height) from its header, read once while planning: the estimate and the space
    #: check use it (None: camera RAW, known once developed, or an item finished earlier).
    size: tuple[int, int] | None = None

    @property
    def runs(self) -> bool:
        """True when this item needs the model."""
        return self.action in (Action.WRITE, Action.OVERWRITE, Action.RENAME)


@dataclass
class Plan:
    settings: BatchSettings
    items: list[PlanItem]
    refused: list[Refused] = field(default_factory=list)
    ignored: int = 0  # hidden, system and non-photo entries passed over inside folders

    @property
    def conflicts(self) -> list[PlanItem]:
        return [i for i in self.items if i.conflict]

    def count(self, action: Action) -> int:
        return sum(1 for i in self.items if i.action == action)

    def sized_runs(self) -> list[tuple[PlanItem, tuple[int, int]]]:
        """The items that need the model and whose size the plan read (what an estimate or a space check counts)."""
        return [(i, i.size) for i in self.items if i.runs and i.size is not None]

    def describe(self) -> str:
        """One line for a status bar or the CLI: what the batch is about to do."""
        parts = [f"{len(self.items)} photo{'s' if len(self.items) != 1 else ''}"]
        for action, word in ((Action.DONE, "already done"), (Action.SKIP, "skipped (exist)"),
                             (Action.OVERWRITE, "overwrite"), (Action.RENAME, "renamed"),
                             (Action.UNREADABLE, "cannot be read")):  # fmt: skip
            if n := self.count(action):
                parts.append(f"{n} {word}")
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        if self.ignored:
            parts.append(f"{self.ignored} other files ignored")
        return ", ".join(parts)


def path_key(path: Path) -> str:
    """Paths compared case-insensitively: on Windows and macOS 'A.png' and 'a.png' are one file."""
    return str(path).casefold()


def rename_candidate(desired: Path, n: int, style: str) -> Path:
    return desired.with_name(RENAME_STYLES[style].format(name=desired.stem, n=n) + desired.suffix)


def resolve_target(
    desired: Path, *, policy: str, style: str, taken: set[str], source: Path | None = None
) -> tuple[Path, Action, str]:
    """Apply the collision policy. Returns (target, action, conflict reason or "").

    ``taken`` holds the (case-folded) targets other items of this batch already claimed: two sources meeting on
    one name are always renamed whatever the policy, since overwriting or skipping would silently lose a result.
    A target that is the source itself is always renamed too.
    """
    own_source = source is not None and desired.exists() and _same_file(desired, source)
    in_batch = path_key(desired) in taken
    exists = desired.exists()
    if not (in_batch or exists):
        return desired, Action.WRITE, ""
    if own_source:
        reason = "would replace its own source"
    elif in_batch:
        reason = "same name as another photo of this batch"
    else:
        reason = "exists"
    if not in_batch and not own_source:
        if policy == OnConflict.SKIP:
            return desired, Action.SKIP, reason
        if policy == OnConflict.OVERWRITE:
            return desired, Action.OVERWRITE, reason
    for n in range(1, MAX_RENAME + 1):
        candidate = rename_candidate(desired, n, style)
        if path_key(candidate) not in taken and not candidate.exists():
            return candidate, Action.RENAME, reason
    raise PlanError(f"{desired}: no free name after {MAX_RENAME} tries")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def desired_target(template: NameTemplate, settings: BatchSettings, src: Source) -> Path:
    size = settings.target.label if settings.target is not None else ""
    values = NameValues.for_source(
        src.path.stem, src.path.suffix, settings.params, settings.model_name, settings.date, size
    )
    ext = FORMATS[settings.output_format(src.path)]
    return Path(settings.output_dir) / src.rel_dir / (template.render(values) + ext)


def read_size(path: Path) -> tuple[tuple[int, int] | None, str]:
    """(upright size, "") from the photo's header (size None for camera RAW), or (None, why it cannot be read):
    empty, not an image, a decompression bomb, no permission. Costs a file open, not a decode: a batch whose only
    work left is broken files reports them without loading a model, and ``--dry-run`` lists them as such."""
    from ..imaging import PhotoError, read_header

    try:
        header = read_header(path)
    except PhotoError as exc:
        return None, exc.reason
    return (None if header is None else header.size), ""


def header_problem(path: Path) -> str | None:
    """Why the photo at ``path`` cannot be read, as far as its header shows, or None (see :func:`read_size`)."""
    return read_size(path)[1] or None


def make_plan(inputs: Sequence[str | Path], settings: BatchSettings, manifest: Manifest | None = None) -> Plan:
    """Plan a batch. Raises TemplateError/PlanError before touching anything when the settings cannot work.

    With a ``manifest`` (from an earlier run into the same folder) files that run finished, with the same
    settings, and whose result is still there with the recorded size, are marked ``Action.DONE`` and keep their
    name.
    """
    template = settings.validate()
    out = Path(settings.output_dir)
    sources, refused, ignored = find_sources(inputs, recursive=settings.recursive, exclude=[out])
    signature = settings.signature()
    items: list[PlanItem] = []
    taken: set[str] = set()
    pending: list[tuple[Source, Path]] = []
    for src in sources:
        desired = desired_target(template, settings, src)
        finished = manifest.finished_target(src.path, signature) if manifest is not None else None
        if finished is not None:
            items.append(PlanItem(src.path, desired, finished, Action.DONE))
            taken.add(path_key(finished))
        else:
            size, problem = read_size(src.path)
            if problem:
                items.append(PlanItem(src.path, desired, desired, Action.UNREADABLE, problem))
                continue
            pending.append((src, desired))
            items.append(PlanItem(src.path, desired, desired, Action.WRITE, size=size))
    # Resolve collisions after every DONE target is known, so a redo never takes a finished file's name.
    todo = iter(pending)
    for item in items:
        if item.action in (Action.DONE, Action.UNREADABLE):
            continue
        src, desired = next(todo)
        target, action, conflict = resolve_target(
            desired, policy=settings.on_conflict, style=settings.rename_style, taken=taken, source=src.path
        )
        item.target, item.action, item.conflict = target, action, conflict
        taken.add(path_key(target))
    return Plan(settings, items, refused, ignored)
