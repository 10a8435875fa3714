"""What each editor job does, on the worker thread that owns the model session. Qt-free: the relay in the GUI runs
it on its thread, and the editor's tests run it inline against a numpy fake session.

Jobs yield their results: a render yields the visible region first, then the whole photo (unless a newer render is
already waiting, which makes the rest stale). The torch side is imported only here, lazily, through the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.errors import EngineError
from ..imaging import Photo, read_photo, to_uint8, write_photo
from .jobs import (
    CornersReady,
    DetailMap,
    DetailReady,
    Export,
    Exported,
    FacesFound,
    FindFaces,
    Job,
    LoadModel,
    ModelLoaded,
    OpenPhoto,
    PhotoReady,
    PrepareCorners,
    Render,
    Rendered,
    Rescale,
    Result,
)
from .preview import CornerBlend


class JobControl(Control):
    """What a running job gets from whoever runs it (the GUI's relay, a test): the progress-and-cancel object the
    engine takes, plus whether a newer job of the same kind is already waiting."""

    def superseded(self) -> bool:
        return False


SessionOpener = Callable[[LoadModel], UpscaleSession]


def open_engine_session(job: LoadModel) -> UpscaleSession:
    from ..engine.loader import open_session

    return open_session(job.spec, device=job.device, models_dir=job.models_dir)


def freeze(photo: Photo) -> Photo:
    """Make the photo's pixels read-only: from here on two threads hold it, and neither may change it."""
    for array in (photo.rgb, photo.alpha):
        if array is not None:
            array.flags.writeable = False
    return photo


class Executor:
    """Owns the session and the current photo; one job at a time, on one thread."""

    def __init__(self, open_model: SessionOpener = open_engine_session) -> None:
        self.open_model = open_model
        self.session: UpscaleSession | None = None
        self.photo: Photo | None = None
        self.render_count = 0  # whole-photo renders actually run (tests use it to prove coalescing)

    def run(self, job: Job, control: JobControl) -> Iterator[Result]:
        if isinstance(job, LoadModel):
            yield self._load(job)
        elif isinstance(job, OpenPhoto):
            yield self._open(job)
        elif isinstance(job, Rescale):
            if self.photo is not None:
                yield PhotoReady(self.photo, self._before(job.scale), job.scale)
        elif isinstance(job, Render):
            yield from self._render(job, control)
        elif isinstance(job, PrepareCorners):
            if self._ready():
                assert self.session is not None
                c = self.session.corners(job.params, control=control)
                yield CornersReady(job.params, CornerBlend(c.base, c.pix, c.full))
        elif isinstance(job, DetailMap):
            if self._ready():
                assert self.session is not None
                values = self.session.detail_map(job.params, control=control)
                yield DetailReady(job.params, values)
        elif isinstance(job, Export):
            yield self._export(job, control)
        elif isinstance(job, FindFaces):
            if self.photo is not None:
                from .faces import detect_faces

                yield FacesFound(tuple(detect_faces(self.photo.rgb)))
        else:
            raise TypeError(f"not an editor job: {job!r}")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _ready(self) -> bool:
        return self.session is not None and self.photo is not None

    def _load(self, job: LoadModel) -> ModelLoaded:
        self.close()  # two diffusion models rarely fit: release the old one first
        session = self.open_model(job)
        self.session = session
        if self.photo is not None:
            session.set_photo(self.photo.rgb)
        return ModelLoaded(session.info, job.spec.describe())

    def _open(self, job: OpenPhoto) -> PhotoReady:
        photo = freeze(read_photo(Path(job.path)))
        self.photo = photo
        if self.session is not None:
            self.session.set_photo(photo.rgb)
        return PhotoReady(photo, self._before(job.scale), job.scale)

    def _before(self, scale: int) -> np.ndarray:
        assert self.photo is not None
        if self.session is not None:
            return to_uint8(self.session.bicubic(scale))
        from ..engine.processing import bicubic_upscale

        return to_uint8(bicubic_upscale(self.photo.rgb, scale))

    def _render(self, job: Render, control: JobControl) -> Iterator[Rendered]:
        if not self._ready():
            return
        session = self.session
        assert session is not None
        params, region = job.params, job.region
        w, h = session.output_size(params.scale)
        timings = getattr(session, "timings", None)  # PiSA-SR sessions time their stages; the bundled model does not
        if timings is not None:
            timings.reset()
        start = time.perf_counter()
        if region is not None and region != (0, 0, w, h):
            part = session.render(params, region=region, control=control)
            yield Rendered(params, to_uint8(part), region, time.perf_counter() - start)
            if control.superseded():
                return  # the rest would be stale: the user has moved on
        image = session.render(params, control=control)
        self.render_count += 1
        stages = timings.line() if timings is not None else ""
        yield Rendered(params, to_uint8(image), None, time.perf_counter() - start, stages)

    def _export(self, job: Export, control: JobControl) -> Exported:
        if not self._ready():
            raise EngineError("nothing to export: open a photo and choose a model first")
        assert self.session is not None and self.photo is not None
        start = time.perf_counter()
        image = self.session.render(job.params, control=control)
        write_photo(job.path, image, like=self.photo, scale=job.params.scale, options=job.options)
        return Exported(job.path, time.perf_counter() - start)
