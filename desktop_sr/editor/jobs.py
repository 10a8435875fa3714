"""The editor's background work as typed values: one dataclass per job, one per result.

The editor model creates jobs, a background relay (:mod:`desktop_sr.ui.relay`) runs them one at a time on a worker
thread with :class:`~desktop_sr.editor.executor.Executor`, and every result comes back with the id of the job that
made it, so the model drops what a newer job has superseded. Jobs sharing a ``slot`` replace each other while queued
(dragging a slider queues one render, not twenty); ``priority`` orders the queue (lower first).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..engine.api import ModelInfo, Region, RenderParams
from ..engine.faces import Face, FaceChoice
from ..engine.faces.align import Placed
from ..engine.loader import ModelSpec
from ..imaging import Photo, SaveOptions
from .face_edit import FaceEdit
from .preview import CornerBlend

_ids = itertools.count(1)


def next_job_id() -> int:
    return next(_ids)


@dataclass(frozen=True)
class Job:
    """Base of every background job: an id, a slot (``None``: never replaced) and a queue priority."""

    id: int = field(default_factory=next_job_id, init=False, compare=False)
    slot: ClassVar[str | None] = None
    priority: ClassVar[int] = 5
    #: What a person reads in the progress bar while it runs.
    label: ClassVar[str] = "Working"


@dataclass(frozen=True)
class LoadModel(Job):
    spec: ModelSpec
    device: str = "auto"
    models_dir: Path | None = None
    slot: ClassVar[str | None] = "model"
    priority: ClassVar[int] = 0
    label: ClassVar[str] = "Loading model"


@dataclass(frozen=True)
class OpenPhoto(Job):
    path: Path
    scale: int
    slot: ClassVar[str | None] = "photo"
    priority: ClassVar[int] = 1
    label: ClassVar[str] = "Opening"


@dataclass(frozen=True)
class Rescale(Job):
    """The same photo at another scale: only the 'before' (bicubic) image is new."""

    scale: int
    slot: ClassVar[str | None] = "photo"
    priority: ClassVar[int] = 1
    label: ClassVar[str] = "Opening"


@dataclass(frozen=True)
class Render(Job):
    """The exact result; with ``region``, that crop (the visible part) first, then the whole photo."""

    params: RenderParams
    region: Region | None = None
    #: Keep the whole result (float) on the worker: faces are restored on it next (:class:`RestoreFaces`).
    keep: bool = False
    slot: ClassVar[str | None] = "render"
    priority: ClassVar[int] = 2
    label: ClassVar[str] = "Rendering"


@dataclass(frozen=True)
class Export(Job):
    params: RenderParams
    path: Path
    options: SaveOptions
    #: The Faces panel's state: the result is written with its faces restored as the view shows them.
    faces: FaceEdit | None = None
    device: str = "auto"
    priority: ClassVar[int] = 3
    label: ClassVar[str] = "Saving"


@dataclass(frozen=True)
class DetailMap(Job):
    params: RenderParams
    slot: ClassVar[str | None] = "detail"
    priority: ClassVar[int] = 4
    label: ClassVar[str] = "Detail map"


@dataclass(frozen=True)
class PrepareCorners(Job):
    params: RenderParams
    slot: ClassVar[str | None] = "corners"
    priority: ClassVar[int] = 5
    label: ClassVar[str] = "Preparing instant previews"


@dataclass(frozen=True)
class FindFaces(Job):
    """Look for faces in the current photo (a starting mask that protects them)."""

    slot: ClassVar[str | None] = "faces"
    priority: ClassVar[int] = 4
    label: ClassVar[str] = "Finding faces"


@dataclass(frozen=True)
class RestoreFaces(Job):
    """Find the faces of the whole result of ``params`` and restore each with ``choice``'s model (a network pass per
    face not restored before; strength and on/off are applied on the GUI thread from what comes back)."""

    params: RenderParams
    choice: FaceChoice
    slot: ClassVar[str | None] = "face-restore"
    priority: ClassVar[int] = 3
    label: ClassVar[str] = "Restoring faces"


#: Jobs that only feed what is on screen: cancelling a render drops them too (an export is kept).
SCREEN_JOBS = (Render, PrepareCorners, DetailMap, RestoreFaces)


@dataclass(frozen=True)
class ModelLoaded:
    info: ModelInfo
    description: str
    #: The session's one line about running elsewhere than asked (a Vulkan device that could not start), or "".
    notice: str = ""


@dataclass(frozen=True)
class PhotoReady:
    """A photo at a scale and its 'before' image (uint8, output size). ``photo`` is never modified afterwards: its
    pixel arrays are read-only, so the worker and the GUI thread can both hold it."""

    photo: Photo
    before: np.ndarray
    scale: int


@dataclass(frozen=True)
class Rendered:
    params: RenderParams
    image: np.ndarray  # uint8 H x W x 3
    region: Region | None  # None: the whole result
    seconds: float
    #: Where the time went, one line ("encode 8.1 s · unet pix+full 13 s · decode 9 s ..."); empty if not measured.
    stages: str = ""
    #: The session's notice after this render ("vulkan:0 failed during the render ...; finishing on the CPU"), or "".
    notice: str = ""


@dataclass(frozen=True)
class CornersReady:
    params: RenderParams
    blend: CornerBlend


@dataclass(frozen=True)
class DetailReady:
    params: RenderParams
    values: np.ndarray  # float32 H x W in [0, 1]


@dataclass(frozen=True)
class FacesFound:
    boxes: tuple[tuple[int, int, int, int], ...]  # photo pixels


@dataclass(frozen=True)
class FacesPrepared:
    """The faces of the result of ``params``, restored with ``choice``'s model and placed on it, not yet blended:
    ``placed`` and ``bases`` (the result's float pixels under each placed face) by face key, so a strength or on/off
    change is a blend of these rectangles alone."""

    params: RenderParams
    choice: FaceChoice
    size: tuple[int, int]  # the result's width and height
    faces: tuple[Face, ...]
    too_small: tuple[Face, ...]
    placed: dict[tuple[int, int, int, int], Placed]
    bases: dict[tuple[int, int, int, int], np.ndarray]
    has_fidelity: bool


@dataclass(frozen=True)
class Exported:
    path: Path
    seconds: float


Result = ModelLoaded | PhotoReady | Rendered | CornersReady | DetailReady | Exported | FacesFound | FacesPrepared
