"""What each editor job does, on the worker thread that owns the model session. Qt-free: the relay in the GUI runs
it on its thread, and the editor's tests run it inline against a numpy fake session.

Jobs yield their results: a render yields the visible region first, then the whole photo (unless a newer render is
already waiting, which makes the rest stale). The torch side is imported only here, lazily, through the engine.

The session lives in a :class:`SharedModel`, the app's one model on its device, which a batch may borrow rather than
load a second copy (see there): every step of an editor job runs in the editor's turn on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.api import Region, RenderParams, UpscaleSession
from ..engine.control import Control
from ..engine.errors import Cancelled, EngineError
from ..engine.faces import FaceRestoration, NoFaceDetector, restoration_for
from ..engine.loader import ModelSpec, notice_of
from ..engine.rect import Rect
from ..imaging import Photo, read_photo, to_uint8, write_photo
from .face_edit import FaceEdit
from .jobs import (
    CornersReady,
    DetailMap,
    DetailReady,
    Export,
    Exported,
    FacesFound,
    FacesPrepared,
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
    RestoreFaces,
    Result,
)
from .preview import CornerBlend


class JobControl(Control):
    """What a running job gets from whoever runs it (the GUI's relay, a test): the progress-and-cancel object the
    engine takes, plus whether a newer job of the same kind is already waiting."""

    def superseded(self) -> bool:
        return False


SessionOpener = Callable[[LoadModel], UpscaleSession]
#: Opens a face model (spec, device): the engine's one loaded copy per process by default, a counting one in tests.
FaceOpener = Callable[[ModelSpec, str], FaceRestoration]


def open_engine_session(job: LoadModel) -> UpscaleSession:
    from ..engine.loader import open_session

    return open_session(job.spec, device=job.device, models_dir=job.models_dir)


def freeze(photo: Photo) -> Photo:
    """Make the photo's pixels read-only: from here on two threads hold it, and neither may change it."""
    for array in (photo.rgb, photo.alpha):
        if array is not None:
            array.flags.writeable = False
    return photo


class Party(Enum):
    """Who computes with the shared model: the editor's worker or a batch."""

    EDITOR = "editor"
    BATCH = "batch"


EDITOR, BATCH = Party.EDITOR, Party.BATCH
#: How often a wait for the model looks at its job's cancel (a finished turn wakes it at once).
POLL_SECONDS = 0.05
#: How long a batch waits for the model the editor is loading before it loads its own (a large model on a slow
#: disk can take longer; then two copies, as before, rather than a batch that never starts).
EXPECT_SECONDS = 180.0


def device_key(device: str) -> str:
    """One name per device: ``cuda`` and ``cuda:0`` are one card (torch's current device, which this app never
    moves off the first), so a batch on "auto" and an editor on "cuda:0" find they share it."""
    kind, _, index = device.strip().lower().partition(":")
    return kind if index in ("", "0") else f"{kind}:{index}"


def holds_one_model(device: str) -> bool:
    """Whether a second model must never be loaded beside one already on ``device``: any GPU (two SD-2.1 copies and
    two renders' working memory do not fit an 8-12 GB card, and GPU memory does not swap). The CPU's RAM holds two on
    most machines, so there a batch with another model still loads its own beside the editor's, as it always did."""
    return device_key(device) != "cpu"


class SharedModel:
    """The editor's model on its device, and whose turn it is to compute with it: one model per GPU in the app.

    The editor's worker and a batch run on threads of their own, and a session is not thread-safe, so whoever
    computes with it holds the *turn*: the editor for each step of a job, a batch for each call on the session (in
    practice one photo's render). The editor goes first: a batch does not take the turn while an editor job waits
    for it, so an interactive render slips in between two batch photos rather than waiting for the batch. A batch
    asks :meth:`lend` for its model once, when its first photo needs it:

    - the editor's spec on the editor's device (and no tile settings of its own): it borrows this session
      (:class:`BorrowedSession`); no second copy is loaded;
    - another model on that same GPU (:func:`holds_one_model`): the editor's model is closed first and the GPU is
      the batch's until it ends; editor jobs that need the model wait for that (cancellable), then load it again;
    - otherwise (the CPU, or another device): the batch loads its own beside it, as before.

    If the editor switches model while a batch borrows its session, on a GPU the switch waits for the batch to end;
    on the CPU the batch keeps the old session (closed when it ends) and the new one loads beside it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: Party | None = None
        self._editor_waiting = 0
        self._reserved = False  # a batch with another model has the GPU: the editor's model jobs wait
        self._loan: BorrowedSession | None = None
        #: The editor's model (None: none loaded yet, or set aside for a batch with another model).
        self.session: UpscaleSession | None = None
        self.spec: ModelSpec | None = None
        #: Who last set the session's photo: the editor's executor or a borrowed session (set in their turn only).
        self.photo_user: object | None = None
        #: The model the editor asked for and is still loading (a batch started meanwhile waits for it rather than
        #: load a second copy), and until when it is worth waiting.
        self._expected: ModelSpec | None = None
        self._expected_until = 0.0

    # -- turns ----------------------------------------------------------------------------------------------------
    @contextmanager
    def turn(self, party: Party, control: Control | None = None, *, needs_model: bool = False) -> Iterator[None]:
        """Hold the turn for one step. Waits for the other party's step, and a batch also for every editor job
        waiting; with ``needs_model`` the editor also waits while a batch with another model holds the GPU.
        ``control``'s cancel ends the wait with :class:`Cancelled`."""
        editor = party == EDITOR
        with self._cond:
            self._editor_waiting += editor
            try:
                while (
                    self._holder is not None
                    or (not editor and self._editor_waiting > 0)
                    or (needs_model and self._reserved)
                ):
                    if control is not None and control.cancelled:
                        raise Cancelled()
                    self._cond.wait(POLL_SECONDS)
            finally:
                self._editor_waiting -= editor
            self._holder = party
        try:
            yield
        finally:
            with self._cond:
                if self._holder == party:  # a step that waited out a loan and was cancelled no longer holds it
                    self._holder = None
                self._cond.notify_all()

    def editor_waiting(self) -> bool:
        with self._cond:
            return self._editor_waiting > 0

    # -- the editor's side (in its turn) --------------------------------------------------------------------------
    def hold(self, session: UpscaleSession, spec: ModelSpec) -> None:
        with self._cond:
            self.session, self.spec, self.photo_user = session, spec, None
            self._expected = None
            self._cond.notify_all()

    def expect(self, spec: ModelSpec | None, patience: float = EXPECT_SECONDS) -> None:
        """The editor asked for ``spec`` (queued or loading; None: that load failed or was dropped): a batch of the
        same model that starts meanwhile borrows it when it arrives, rather than load a second copy beside it
        (measured: about 20 s and twice the memory when the batch dialog opened during the first start's load)."""
        with self._cond:
            self._expected, self._expected_until = spec, time.monotonic() + patience
            self._cond.notify_all()

    def _wait_for_expected(self, spec: ModelSpec) -> None:
        """Before a batch decides: while the editor's load of this same ``spec`` is on its way, wait for it."""
        with self._cond:
            while self._expected == spec and self.spec != spec and time.monotonic() < self._expected_until:
                self._cond.wait(POLL_SECONDS)

    def set_aside(self, control: Control | None = None, *, wait: bool = True) -> None:
        """Free the device of the editor's session, before another model loads or the worker ends. A batch that
        borrows it keeps it: on a GPU (``wait``) this waits until the batch ends, otherwise the batch closes it when
        it ends (two copies, on the CPU or at exit, only until then)."""
        with self._cond:
            session = self.session
            if session is None:
                return
            loan = self._loan
            if loan is not None and loan.session is session:
                if not (wait and holds_one_model(session.info.device)):
                    self.session = self.spec = None
                    return
                self._await_loan(control)
            self.session = self.spec = None
        session.close()

    def _await_loan(self, control: Control | None) -> None:
        """With the lock and the editor's turn held: give the turn up until the loan ends, then take it back."""
        self._holder = None
        self._cond.notify_all()
        while self._loan is not None or self._holder is not None:
            if control is not None and control.cancelled:
                raise Cancelled()
            self._cond.wait(POLL_SECONDS)
        self._holder = EDITOR

    # -- a batch's side (on its thread) ---------------------------------------------------------------------------
    def lend(
        self, spec: ModelSpec, device: str, tiles: object | None, open_own: Callable[[], UpscaleSession]
    ) -> UpscaleSession:
        """The session a batch with ``spec`` on ``device`` (resolved: "cuda:0", "cpu") renders with; its ``close``
        ends the loan. Waits for the editor's step in progress (not cancellable: one step at most), and for the
        editor's load of this same model when one is on its way (:meth:`expect`)."""
        self._wait_for_expected(spec)
        with self.turn(BATCH):
            session = self.session
            here = session is not None and device_key(session.info.device) == device_key(device)
            if here and self.spec == spec and (tiles is None or tiles == getattr(session, "tiles", None)):
                assert session is not None
                loan = BorrowedSession(self, session)
                with self._cond:
                    self._loan = loan
                return loan
            beside = not holds_one_model(device) or (session is not None and not here)
            if not beside:
                with self._cond:
                    self._reserved = True
                    self.session = self.spec = None
                if session is not None:
                    session.close()  # before the batch's model loads: never two on one GPU
        if beside:
            return open_own()
        try:
            return ReservedSession(self, open_own())
        except BaseException:
            self._end_reservation()
            raise

    def _end_loan(self, loan: BorrowedSession) -> None:
        with self._cond:
            if self._loan is loan:
                self._loan = None
            handed_over = self.session is not loan.session
            self._cond.notify_all()
        if handed_over:  # the editor moved on (CPU) or ended: the batch's copy is its own to close
            loan.session.close()

    def _end_reservation(self) -> None:
        with self._cond:
            self._reserved = False
            self._cond.notify_all()


class GiveWay(Control):
    """The engine's control for a borrowed render: the batch's cancel and progress, and a pause that does not keep
    the model from the editor. Paused between tiles, it waits there; if an editor job asks for the model meanwhile,
    the render gives way (stops like a cancel) and :meth:`BorrowedSession.render` starts that photo again after
    resume. (A pause pressed in the instant between this check and the runner's own holds the turn until resume.)"""

    def __init__(self, batch: Control, shared: SharedModel) -> None:
        super().__init__(self._forward, like=batch)  # a child (``sub``) still stops with the batch
        self.batch, self.shared = batch, shared
        self.gave_way = False

    @property
    def cancelled(self) -> bool:
        return self.batch.cancelled or self.gave_way

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def _forward(self, done: int, total: int, stage: str) -> None:
        while self.batch.paused:
            if self.shared.editor_waiting():
                self.gave_way = True
                return
            time.sleep(POLL_SECONDS)
        self.batch.report(done, total, stage)


class BorrowedSession:
    """A batch's handle on the editor's session (:meth:`SharedModel.lend`): each call runs in the batch's turn with
    the batch's photo set first (the editor may have set its own in between; ``set_photo`` costs nothing), and
    ``close`` ends the loan instead of closing the editor's model."""

    def __init__(self, shared: SharedModel, session: UpscaleSession) -> None:
        self.shared, self.session = shared, session
        self.info = session.info
        self._rgb: np.ndarray | None = None

    def set_photo(self, rgb: np.ndarray) -> None:
        self._rgb = rgb

    def render(
        self, params: RenderParams, *, region: Region | None = None, control: Control | None = None
    ) -> np.ndarray:
        while True:
            engine_control = GiveWay(control, self.shared) if control is not None else None
            with self.shared.turn(BATCH, control):
                self._show()
                try:
                    return self.session.render(params, region=region, control=engine_control)
                except Cancelled:
                    if engine_control is None or not engine_control.gave_way or engine_control.batch.cancelled:
                        raise
            engine_control.batch.wait_while_paused()  # the editor has the model; this photo starts again after

    def close(self) -> None:
        self.shared._end_loan(self)

    def _show(self) -> None:
        if self._rgb is not None:
            self.session.set_photo(self._rgb)
            self.shared.photo_user = self

    def __getattr__(self, name: str) -> Any:
        """What the runner reads besides (the session's memory figures), and any other call, in the batch's turn."""
        if name.startswith("_") or name in ("shared", "session", "info"):
            raise AttributeError(name)
        value = getattr(self.session, name)
        if not callable(value):
            return value

        def in_turn(*args: Any, **kwargs: Any) -> Any:
            with self.shared.turn(BATCH, kwargs.get("control")):
                self._show()
                return value(*args, **kwargs)

        return in_turn


class ReservedSession:
    """A batch's own session on the GPU the editor's model was set aside from: ``close`` also hands the GPU back
    (the editor's next job that needs its model loads it again)."""

    def __init__(self, shared: SharedModel, session: UpscaleSession) -> None:
        self.shared, self.session = shared, session
        self.info = session.info

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self.shared._end_reservation()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("shared", "session", "info"):
            raise AttributeError(name)
        return getattr(self.session, name)


#: Editor jobs that run without the model (they use it when it is there): they never wait for a batch's GPU.
WITHOUT_MODEL = (OpenPhoto, Rescale, FindFaces)


class Executor:
    """Owns the current photo and, in :attr:`shared`, the session; one job at a time, on one thread."""

    def __init__(
        self, open_model: SessionOpener = open_engine_session, open_faces: FaceOpener = restoration_for
    ) -> None:
        self.open_model, self.open_faces = open_model, open_faces
        self.shared = SharedModel()
        self.photo: Photo | None = None
        self.render_count = 0  # whole-photo renders actually run (tests use it to prove coalescing)
        self._model_job: LoadModel | None = None  # the model loaded: loaded again after a batch set it aside
        self._waited = 0.0  # seconds this executor's steps waited for their turn (a render's time leaves them out)
        #: The last whole result a render was asked to keep (for :class:`RestoreFaces`), and its params.
        self._kept: tuple[RenderParams, np.ndarray] | None = None

    @property
    def session(self) -> UpscaleSession | None:
        return self.shared.session

    def run(self, job: Job, control: JobControl) -> Iterator[Result]:
        """The job's results, each step computed in the editor's turn on the model (not held between results, so a
        batch photo may run between the visible region and the whole photo)."""
        steps = self._steps(job, control)
        needs_model = not isinstance(job, WITHOUT_MODEL)
        while True:
            asked = time.perf_counter()
            with self.shared.turn(EDITOR, control, needs_model=needs_model):
                self._waited += time.perf_counter() - asked
                if not isinstance(job, LoadModel):
                    self._take_back(needs_model)
                try:
                    result = next(steps)
                except StopIteration:
                    return
            yield result

    def _steps(self, job: Job, control: JobControl) -> Iterator[Result]:
        if isinstance(job, LoadModel):
            yield self._load(job, control)
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
        elif isinstance(job, RestoreFaces):
            if self._ready():
                yield self._restore_faces(job, control)
        elif isinstance(job, FindFaces):
            if self.photo is not None:
                from .faces import detect_faces

                yield FacesFound(tuple(detect_faces(self.photo.rgb)))
        else:
            raise TypeError(f"not an editor job: {job!r}")

    def close(self) -> None:
        """Release the model (the worker ends): one a batch still borrows is closed by the batch when it ends."""
        self._model_job = None
        self.shared.set_aside(wait=False)

    def _ready(self) -> bool:
        return self.session is not None and self.photo is not None

    def _take_back(self, needs_model: bool) -> None:
        """At the start of each step: the model again if a batch set it aside, and the editor's photo on it if a
        batch showed it one of its own."""
        session = self.session
        if session is None:
            if needs_model and self._model_job is not None:
                self._open_model(self._model_job)
            return
        if self.photo is not None and self.shared.photo_user is not self:
            self._show(session)

    def _show(self, session: UpscaleSession) -> None:
        assert self.photo is not None
        session.set_photo(self.photo.rgb)
        self.shared.photo_user = self

    def _load(self, job: LoadModel, control: JobControl) -> ModelLoaded:
        self._model_job = None
        self.shared.set_aside(control)  # two diffusion models rarely fit: release the old one first
        try:
            session = self._open_model(job)
        except BaseException:
            self.shared.expect(None)  # a batch waiting for it loads its own (or says why it cannot)
            raise
        return ModelLoaded(session.info, job.spec.describe(), notice_of(session))

    def _open_model(self, job: LoadModel) -> UpscaleSession:
        session = self.open_model(job)
        self.shared.hold(session, job.spec)
        self._model_job = job
        if self.photo is not None:
            self._show(session)
        return session

    def _open(self, job: OpenPhoto) -> PhotoReady:
        photo = freeze(read_photo(Path(job.path)))
        self.photo = photo
        if self.session is not None:
            self._show(self.session)
        return PhotoReady(photo, self._before(job.scale), job.scale)

    def _before(self, scale: int) -> np.ndarray:
        assert self.photo is not None
        if self.session is not None:
            return to_uint8(self.session.bicubic(scale))
        from ..engine.kernels.processing import bicubic_upscale

        return to_uint8(bicubic_upscale(self.photo.rgb, scale))

    def _render(self, job: Render, control: JobControl) -> Iterator[Rendered]:
        if not self._ready():
            return
        session = self.session
        assert session is not None
        params, region = job.params, job.region
        w, h = session.output_size(params.scale)
        if region is not None:  # a view measured at another scale (a target the model could not reach): keep its part
            region = Rect(*region).clipped(w, h)
            region = None if region.empty else tuple(region)
        timings = getattr(session, "timings", None)  # PiSA-SR sessions time their stages; the bundled model does not
        if timings is not None:
            timings.reset()
        start, waited = time.perf_counter(), self._waited
        if region is not None and region != (0, 0, w, h):
            part = session.render(params, region=region, control=control)
            yield Rendered(params, to_uint8(part), region, time.perf_counter() - start, notice=notice_of(session))
            if control.superseded():
                return  # the rest would be stale: the user has moved on
            if self.session is not session:  # a batch with another model set it aside meanwhile (and it came back)
                session = self.session
                if session is None:
                    return
        image = session.render(params, control=control)
        self.render_count += 1
        self._kept = (params, image) if job.keep else None
        stages = timings.line() if timings is not None and getattr(session, "timings", None) is timings else ""
        # the render's own time: a batch photo that ran between its two steps is not part of it
        seconds = time.perf_counter() - start - (self._waited - waited)
        yield Rendered(params, to_uint8(image), None, seconds, stages, notice_of(session))

    def _export(self, job: Export, control: JobControl) -> Exported:
        if not self._ready():
            raise EngineError("nothing to export: open a photo and choose a model first")
        assert self.session is not None and self.photo is not None
        start = time.perf_counter()
        image = self.session.render(job.params, control=control)
        if job.faces is not None and job.faces.model is not None:
            image = self._with_faces(image, job.faces, job.device, control)
        write_photo(job.path, image, like=self.photo, scale=job.params.scale, options=job.options)
        return Exported(job.path, time.perf_counter() - start)

    def _with_faces(self, image: np.ndarray, edit: FaceEdit, device: str, control: JobControl) -> np.ndarray:
        """The export's pixels with the faces restored as the view shows them (the same result, so the same faces
        and, from the face model's cache, the same restored pixels: no network pass)."""
        assert edit.model is not None
        restoration = self.open_faces(edit.model, device)
        with _detector():
            done = restoration.prepare(image, edit.settings(), control=control)
        size = (image.shape[1], image.shape[0])
        return FaceRestoration.blend(image, done, edit.strength, only=edit.on_keys(done.restored, size))

    def _restore_faces(self, job: RestoreFaces, control: JobControl) -> FacesPrepared:
        """Faces of the whole result of ``job.params`` (kept from its render, else rendered again: the engine's
        cache makes that cheap), restored and placed; only the rectangles they cover travel back."""
        kept = self._kept
        if kept is not None and kept[0] == job.params:
            result = kept[1]
        else:
            assert self.session is not None
            result = self.session.render(job.params, control=control)
            self._kept = (job.params, result)
        restoration = self.open_faces(job.choice.spec, job.choice.device)
        with _detector():
            done = restoration.prepare(result, job.choice.settings, control=control)
        bases = {}
        for key, placed in done.placed.items():
            x0, y0, x1, y1 = placed.rect
            bases[key] = np.array(result[y0:y1, x0:x1], np.float32)
        h, w = result.shape[:2]
        return FacesPrepared(job.params, job.choice, (w, h), tuple(done.faces), tuple(done.too_small), done.placed,
                             bases, bool(restoration.restorer.has_fidelity))  # fmt: skip


@contextmanager
def _detector() -> Iterator[None]:
    """No OpenCV 4: the engine's message, as an error the editor shows (and the app goes on)."""
    try:
        yield
    except NoFaceDetector as exc:
        raise EngineError(f'{exc}: pip install "desktop-sr[faces]"') from exc
