"""The editor model: everything one editing session knows, and the rules that decide what to render when.

It holds the one current :class:`RenderParams`, the photo, the model, the undo history, what the "after" side shows
(:class:`Shown`), the instant-preview corners and the detail-map state. Widgets call its intents (``set_params``,
``set_scale``, ``open_photo``, ``load_model``, ``set_view`` ...) and subscribe to its events; background work goes out
as typed jobs (:mod:`desktop_sr.editor.jobs`) to a :class:`JobQueue` and comes back through ``on_result`` with the
job's id, so a result of superseded work is dropped by id. No Qt here: the rules are tested in milliseconds against a
numpy session (tests/test_editor_model.py), and the window is wiring and layout.

Render order: an instant preview from cached corner images when only the strengths changed, then the exact render of
the visible region, then the whole photo. Panning while that runs re-submits the render for the new visible region.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from ..engine.api import ModelInfo, Region, RenderParams
from ..engine.loader import ModelSpec
from ..imaging import Photo, SaveOptions
from ..render_cost import Estimate, render_work
from ..timing import CostBook, format_duration
from .events import Event
from .face_edit import FaceEdit
from .face_restore import FaceContext, FaceEditor, for_new_photo
from .history import Change, ParamsHistory
from .jobs import (
    SCREEN_JOBS,
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
from .mask import as_maps
from .masking import MaskContext, MaskEditor
from .preview import CornerBlend
from .render_time import JobClock, JobProgress, LongRenderGate


class Shown(str, Enum):
    """What the "after" side shows. A str so it reads (and compares) as its name."""

    NONE = "none"  # nothing: no photo, no model, or nothing rendered yet
    PREVIEW = "preview"  # an instant blend of cached corner images for the current settings
    PARTIAL = "partial"  # exact where the user looks, the rest still what was there before
    EXACT = "exact"  # the exact result for the current settings
    STALE = "stale"  # the previous result, kept on screen while the new one renders (never the original)


BADGES = {
    Shown.EXACT: ("Exact", "The exact result for these settings."),
    Shown.PREVIEW: ("Preview", "An instant blend of cached results; the exact render follows."),
    Shown.PARTIAL: (
        "Visible part first",
        "The part in view is rendered first (on a large photo its tone comes from a sample of the photo, so it can\n"
        "differ very slightly); the exact result of the whole photo replaces it when it is ready.",
    ),
    Shown.STALE: ("Previous settings", "The last result stays on screen while the new settings render."),
}
FAILURE_TITLES: dict[type[Job], str] = {
    OpenPhoto: "Cannot open the photo",
    Rescale: "Cannot open the photo",
    Export: "Export failed",
    Render: "Render failed",
    PrepareCorners: "Preview failed",
    DetailMap: "Detail map failed",
    FindFaces: "Cannot find faces",
    RestoreFaces: "Cannot restore faces",
}


def corner_key(p: RenderParams) -> tuple[object, ...]:
    """What the corner images depend on: everything but the two strengths."""
    return (p.realism, p.scale, p.color_fix, p.prompt)


def params_for_model(p: RenderParams, info: ModelInfo) -> RenderParams:
    """The settings a newly loaded model can render: its trained realism levels only, the default without any."""
    t = p.realism if info.supports_realism else 1
    if info.trained_timesteps and t not in info.trained_timesteps:
        t = info.trained_timesteps[0]
    return p.with_(realism=t)


def contains(outer: Region | None, inner: Region | None) -> bool:
    if outer is None or inner is None:
        return False
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


class JobQueue(Protocol):
    """Where the model sends background work (the GUI's relay, or a test's inline runner)."""

    def submit(self, job: Job) -> int: ...

    def supersede(self, slot: str) -> None:
        """Cancel the running job of this slot (a newer one was just submitted)."""

    def cancel(self, kinds: tuple[type[Job], ...]) -> None:
        """Cancel the running job and drop queued ones, of these kinds."""


class EditorModel:
    def __init__(
        self,
        jobs: JobQueue,
        params: RenderParams | None = None,
        *,
        default_spec: Callable[[], ModelSpec | None] = lambda: None,
        device: str = "auto",
        models_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        cost_book: CostBook | None = None,
        faces: FaceEdit | None = None,
    ) -> None:
        """``cost_book``: where render times are measured and estimated (default: the app's cache folder);
        ``faces``: the Faces panel's state to start with (the last session's face model)."""
        self.jobs = jobs
        self.default_spec = default_spec  # the model to fall back to when loading one fails
        self.device, self.models_dir = device, models_dir
        self.clock = clock
        self.params = params or RenderParams()
        self.history = ParamsHistory(self.params, faces or FaceEdit())
        self.photo: Photo | None = None
        self.photo_path: Path | None = None
        self.before_scale: int | None = None  # the scale of the 'before' image on screen
        self.model_info: ModelInfo | None = None
        self.model_spec: ModelSpec | None = None
        self.loaded_specs: list[ModelSpec] = []  # models loaded in this run, offered for A/B even if unregistered
        self.shown = Shown.NONE
        self.shown_params: RenderParams | None = None  # params of the result (or preview) on screen
        self.has_after = False
        self.blender: CornerBlend | None = None
        self.corners_for: tuple[object, ...] | None = None
        self.detail_on = False
        self.detail_for: RenderParams | None = None
        self.visible: Region | None = None  # output pixels on screen, rendered first
        self.busy = False
        self.last_render_seconds: float | None = None
        self.last_render_stages = ""  # the last exact render's per-stage times, one line
        self.last_preview_ms: float | None = None
        self.preview_count = 0
        self._latest: dict[str, int] = {}  # slot -> id of the newest job submitted for it
        self._render_pending: Render | None = None  # the render whose whole result has not arrived yet
        self._painted: Region | None = None  # the exact region of it already on screen
        self._falling_back = False  # a fallback model is loading after a failed load (never chain fallbacks)
        self._notice = ""  # the last notice of the session said in the status bar (see _say_notice)
        self.gate = LongRenderGate(cost_book)  # asks before a render estimated as long
        self._held: Callable[[], None] | None = None  # what runs if the user says yes to the question on screen
        self._job_clock: JobClock | None = None  # the running job's progress and rate

        # Events the widgets bind to (all called on the thread that calls the intents: the GUI thread).
        self.params_changed: Event[[RenderParams]] = Event()
        self.history_changed: Event[[bool, bool]] = Event()  # can undo, can redo
        self.model_loading: Event[[ModelSpec]] = Event()
        self.model_changed: Event[[ModelInfo | None, str]] = Event()  # info (None: no model), description
        self.photo_changed: Event[[Photo, np.ndarray, bool]] = Event()  # photo, 'before' uint8, new photo?
        self.after_changed: Event[[np.ndarray | None]] = Event()  # the whole "after" image (uint8) or none
        self.after_patched: Event[[np.ndarray, int, int]] = Event()  # an exact region at (x, y)
        self.shown_changed: Event[[Shown]] = Event()
        self.detail_changed: Event[[np.ndarray | None]] = Event()  # float32 map of the current settings, or none
        self.timing_changed: Event[[float, float | None]] = Event()  # exact render s, last preview ms
        self.status: Event[[str, int]] = Event()  # a status-bar message and how long it stays (ms)
        self.error: Event[[str, str]] = Event()  # title, message
        self.progress: Event[[JobProgress]] = Event()  # the running job: fraction, rate and time left
        self.long_render: Event[[float, str]] = Event()  # estimated seconds, the question: answer_long_render()
        #: The painted mask's intents (``masks.begin_stroke`` ...) and its ``changed`` event: see :mod:`.masking`.
        self.masks = MaskEditor(
            self._mask_context,
            commit=lambda maps: self.set_params(self.params.with_(maps=maps), Change.MASK),
            preview=self._preview_stroke,
            submit=self._submit,
            status=self.status,
        )
        #: The Faces panel's intents (``faces.choose``, ``set_strength`` ...) and its ``changed`` event: see
        #: :mod:`.face_restore`.
        self.faces = FaceEditor(
            self._face_context,
            record=self._record_faces,
            follow=self._follow_faces,
            submit=self._submit,
            show=self.after_changed.emit,
            status=self.status,
            error=self.error,
        )
        self.faces.edit = faces or FaceEdit()

    # -- intents: settings ----------------------------------------------------------------------------------------
    def set_params(self, params: RenderParams, kind: Change = Change.OTHER) -> None:
        """The user changed the controls. :attr:`Change.STRENGTH` (pixel/semantic only) merges a drag into one undo
        step. The controls carry no mask: the painted one stays (only :attr:`Change.MASK` changes it: :attr:`masks`).
        The word ("strength") is taken too: a Qt signal may deliver the change as one."""
        kind = Change(kind)
        if kind is not Change.MASK:
            params = params.with_(maps=self.params.maps)
        self.history.record(params, kind, self.clock())
        self._history_changed()
        self._apply(params)

    def set_scale(self, scale: int) -> None:
        self.set_params(self.params.with_(scale=scale))

    def undo(self) -> None:
        self._restore(self.history.undo())

    def redo(self) -> None:
        self._restore(self.history.redo())

    def _restore(self, params: RenderParams | None) -> None:
        if params is not None:
            self._apply(params)
            faces = self.history.faces
            if isinstance(faces, FaceEdit) and faces != self.faces.edit:
                self.faces.apply(faces)
        self._history_changed()

    def _record_faces(self, edit: FaceEdit, kind: Change) -> None:
        """The Faces panel changed (one undo step; a strength drag merges into one)."""
        self.history.record_faces(edit, kind, self.clock())
        self._history_changed()
        self.faces.apply(edit)

    def _follow_faces(self, edit: FaceEdit) -> None:
        """A change of the Faces panel the user did not make (a face model that failed: off)."""
        self.history.reset_faces(edit)
        self.faces.apply(edit)

    def _face_context(self) -> FaceContext:
        exact = self.shown_params if self.shown is Shown.EXACT else None
        return FaceContext(exact, self.device)

    def _history_changed(self) -> None:
        self.history_changed.emit(self.history.can_undo(), self.history.can_redo())

    def _apply(self, params: RenderParams) -> None:
        mask_moved = params.maps != self.params.maps
        self.params = params
        self.params_changed.emit(params)
        if mask_moved:
            self.masks.moved()
        if self.photo is not None and self.before_scale is not None and self.before_scale != params.scale:
            self._submit(Rescale(params.scale))  # the new 'before' arrives first, then the render
            return
        self.request_render()

    # -- intents: model, photo, view ------------------------------------------------------------------------------
    def load_model(self, spec: ModelSpec) -> None:
        self.model_spec = spec
        self.model_loading.emit(spec)
        self._submit(LoadModel(spec, self.device, self.models_dir))

    def open_photo(self, path: str | Path) -> None:
        self.status.emit(f"Opening {path}…", 0)
        self._submit(OpenPhoto(Path(path), self.params.scale))

    def set_view(self, visible: Region | None) -> None:
        """The visible part of the result changed (zoom, pan, resize): a render still under way does it first."""
        self.visible = visible
        job = self._render_pending
        if job is None or job.params != self.params or visible is None or job.region == visible:
            return
        if self.shown is Shown.EXACT or contains(self._painted, visible):
            return
        self._submit_render()

    def set_detail(self, on: bool) -> None:
        self.detail_on = on
        if on and self.model_info is not None and self.photo is not None and self.detail_for != self.params:
            self._submit(DetailMap(self.params))

    def photo_has_transparency(self) -> bool:
        """The photo has transparent pixels (a format without alpha flattens them onto white; the save dialog says
        so first)."""
        alpha = self.photo.alpha if self.photo is not None else None
        return alpha is not None and float(alpha.min()) < 1.0

    def export(self, path: Path, options: SaveOptions) -> None:
        """Save the result; a render estimated as long that has not been agreed to yet is asked about first."""
        faces = self.faces.edit if self.faces.wanted() else None
        job = Export(self.params, path, options, faces=faces, device=self.device)

        def submit() -> None:
            self.status.emit(f"Saving {path}…", 0)
            self._submit(job)

        if not self._held_back(job.params, submit, explicit=True):
            submit()

    def cancel(self) -> None:
        self.jobs.cancel(SCREEN_JOBS)
        self._render_pending = None
        self.faces.on_cancelled()
        self.status.emit("Render cancelled", 4000)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.shown_changed.emit(self.shown)

    def badge(self) -> tuple[str, str]:
        """What the "after" side is labelled with, and its tooltip."""
        text, tip = BADGES.get(self.shown, ("", ""))
        if self.busy and self._render_pending is not None and self.shown is not Shown.EXACT:
            text = f"{text} · rendering…" if text else "rendering…"  # only while a render is under way
        elif self.busy and self.faces.restoring() and self.shown is Shown.EXACT:
            text = f"{text} · restoring faces…"
        return text, tip

    # -- rendering ------------------------------------------------------------------------------------------------
    def request_render(self) -> None:
        """Show an instant preview if the cached corners allow it, then queue the exact render (newest wins).

        The exact render does the visible region first, then the whole photo; a newer request cancels a running
        render of older settings between tiles, so dragging never builds a queue of stale work.
        """
        if self.model_info is None or self.photo is None:
            return
        params = self.params
        if params == self.shown_params and self.shown is Shown.EXACT:
            return
        if self._held_back(params, self.request_render):
            return
        if self.blender is not None and self.corners_for == corner_key(params):
            self._show_preview(params)
        elif self.has_after:
            self.shown = Shown.STALE
        self._submit_render()
        if self.detail_on:
            self._submit(DetailMap(params))
        self.shown_changed.emit(self.shown)

    # -- how long: estimates before, rate and time left during ---------------------------------------------------
    def render_key(self, params: RenderParams) -> tuple[object, ...]:
        """What decides whether a render needs model time: photo, model, scale, realism, description."""
        return (self.photo_path, self.model_spec, params.scale, params.realism, params.prompt.strip())

    def output_megapixels(self, params: RenderParams) -> float:
        return 0.0 if self.photo is None else self.photo.width * self.photo.height * params.scale**2 / 1e6

    def work_megapixels(self, params: RenderParams) -> float:
        """What the network computes for ``params`` (what the render's time follows; see :mod:`..render_cost`)."""
        if self.photo is None or self.model_spec is None:
            return 0.0
        return render_work(self.model_spec.kind, self.photo.width, self.photo.height, params.scale)

    def estimate_seconds(self, params: RenderParams) -> Estimate | None:
        """The render's length from earlier renders of this model on this device, or None where they cannot say."""
        if self.photo is None or self.model_info is None or self.model_spec is None:
            return None
        return self.gate.estimate(self.model_spec.name, self.model_info.device, self.work_megapixels(params))

    def _held_back(self, params: RenderParams, action: Callable[[], None], *, explicit: bool = False) -> bool:
        """True when the render of ``params`` must wait: it is estimated as long and the user has not agreed yet.

        Asks (``long_render``) unless it was declined before and this is not an ``explicit`` request (an export);
        ``action`` runs if the answer is yes.
        """
        key = self.render_key(params)
        if key in self.gate.confirmed:
            return False
        seconds = self.estimate_seconds(params)
        if not self.gate.is_long(seconds):
            return False
        assert seconds is not None
        if self.gate.asking == key:
            self._held = action  # the question is on screen: the newest request waits for its answer
            return True
        if key in self.gate.declined and not explicit:
            self._say_not_rendered(seconds)
            return True
        self.gate.asking, self._held = key, action
        w, h = self.photo.width * params.scale, self.photo.height * params.scale  # type: ignore[union-attr]
        name = self.model_spec.name if self.model_spec else "the model"
        self.long_render.emit(
            seconds.seconds,
            f"This render ({w} × {h}, {self.output_megapixels(params):.0f} megapixels at ×{params.scale}) will take "
            f"{seconds.describe()} with {name} on this machine (measured on earlier renders).",
        )
        return True

    def answer_long_render(self, yes: bool) -> None:
        """The user's answer to ``long_render``: yes starts what waited, no leaves the screen as it is."""
        key, action = self.gate.asking, self._held
        self._held = None
        if key is None:
            return
        self.gate.answer(key, yes)
        if yes and action is not None:
            action()
        elif not yes:
            self._say_not_rendered(self.estimate_seconds(self.params))

    def render_now(self) -> None:
        """Start the render of the current settings even though it was estimated as long and declined."""
        self.gate.answer(self.render_key(self.params), True)
        self.request_render()

    def _say_not_rendered(self, seconds: Estimate | None) -> None:
        how_long = f" ({seconds.describe()})" if seconds is not None else ""
        self.status.emit(f"Not rendered{how_long}: Model ▸ Render now (F5) starts it, or choose a smaller scale", 0)

    def on_started(self, job: Job) -> None:
        """A job began on the worker: its clock starts now, and the progress line names it."""
        self._job_clock = JobClock(job.id, job.label, self.clock)
        self.progress.emit(JobProgress(job.label, None, ""))

    def on_progress(self, job: Job, done: int, total: int, stage: str) -> None:
        clock = self._job_clock
        if clock is None or clock.job_id != job.id:
            clock = self._job_clock = JobClock(job.id, job.label, self.clock)
        had_estimate = clock.first_estimate is not None
        progress = clock.report(done, total, stage)
        self.progress.emit(progress)
        first = clock.first_estimate
        if not had_estimate and self.gate.is_long(first) and isinstance(job, Render | Export):
            assert first is not None
            self.status.emit(f"{job.label}: about {format_duration(first)} in all (from its first tiles); "
                             "Esc cancels", 0)  # fmt: skip

    def tick(self) -> None:
        """Re-say the running job's progress as of now (a timer calls it: the time left counts down between the
        engine's reports, which can be a tile of tens of seconds apart)."""
        if self._job_clock is not None and self._job_clock.render.tiles:
            self.progress.emit(self._job_clock.now())

    def _measured(self, job_id: int, params: RenderParams, seconds: float) -> None:
        """A whole render finished: agreed to from now on, and its time kept if the model ran in it."""
        self.gate.confirmed.add(self.render_key(params))
        clock = self._job_clock
        if clock is None or clock.job_id != job_id or not clock.model_ran:
            return
        if self.model_spec is not None and self.model_info is not None:
            self.gate.record(self.model_spec.name, self.model_info.device, self.work_megapixels(params), seconds)

    def _submit_render(self) -> None:
        self.jobs.supersede("render")
        self.jobs.supersede("face-restore")  # faces of the result this render replaces: stale
        job = Render(self.params, self.visible, keep=self.faces.wanted())
        self._render_pending, self._painted = job, None
        self._submit(job)

    def _show_preview(self, params: RenderParams) -> None:
        """The first update of a strength change: blend the cached corners (a few ms, on this thread)."""
        assert self.blender is not None
        start = time.perf_counter()
        self.has_after = True
        self.shown_params, self.shown = params, Shown.PREVIEW
        self.after_changed.emit(self.faces.dress(self.blender.blend(params.pix, params.sem, params.maps)))
        self.last_preview_ms = (time.perf_counter() - start) * 1000
        self.preview_count += 1

    # -- the painted mask's view of the editor (see :mod:`.masking`) -------------------------------------------------
    def _mask_context(self) -> MaskContext:
        size = None
        if self.photo is not None:
            scale = self.before_scale or self.params.scale  # strokes are in pixels of the result on screen
            size = (self.photo.width * scale, self.photo.height * scale)
        return MaskContext(self.params, self.photo, self.photo_path, size, can_render=self.model_info is not None)

    def _preview_stroke(self, values: np.ndarray) -> None:
        """A stroke under way: the instant preview with its mask, when the corners of these settings are cached."""
        if self.blender is None or self.corners_for is None or self.model_info is None:
            return
        preview = self.params.with_(maps=as_maps(values))
        if self.corners_for == corner_key(preview):
            self._show_preview(preview)
            self.shown_changed.emit(self.shown)

    def _photo_opened(self) -> None:
        """A new photo: its saved mask comes back (or none); masks of the previous photo leave the undo history."""
        self.history.forget_masks(for_new_photo)
        maps = self.masks.photo_opened(self.photo_path)
        self.params = self.params.with_(maps=maps)
        self.history.reset(self.params)
        self.params_changed.emit(self.params)
        self.masks.restored()

    def _submit(self, job: Job) -> int:
        if isinstance(job, RestoreFaces):
            self.jobs.supersede("face-restore")  # the running one is for a result or a model the user has left
        if job.slot is not None:
            self._latest[job.slot] = job.id
        return self.jobs.submit(job)

    def _is_latest(self, job: Job) -> bool:
        return job.slot is None or self._latest.get(job.slot) == job.id

    # -- results (from the relay, on the GUI thread) --------------------------------------------------------------
    def on_result(self, job: Job, result: Result) -> None:
        if not self._is_latest(job):
            return  # superseded work: a newer job of the same kind was submitted after it
        if isinstance(result, Rendered):
            self.on_rendered(job.id, result)
        elif isinstance(result, PhotoReady):
            self.on_photo_ready(result, new_photo=isinstance(job, OpenPhoto))
        elif isinstance(result, ModelLoaded):
            self.on_model_loaded(result)
        elif isinstance(result, CornersReady):
            if corner_key(result.params) == corner_key(self.params):
                self.blender, self.corners_for = result.blend, corner_key(result.params)
        elif isinstance(result, DetailReady):
            if result.params.with_(maps=None) == self.params.with_(maps=None):  # the mask does not change it
                if self.detail_on:
                    self.detail_for = result.params
                    self.detail_changed.emit(result.values)
                self.masks.detail_ready(result.params.with_(maps=None), result.values)
        elif isinstance(result, Exported):
            self.status.emit(f"Saved {result.path} ({result.seconds:.1f} s)", 10000)
        elif isinstance(result, FacesFound):
            self.masks.on_faces(result.boxes)
        elif isinstance(result, FacesPrepared):
            self.faces.on_prepared(result)

    def on_rendered(self, job_id: int, r: Rendered) -> None:
        if self._latest.get("render") != job_id or r.params != self.params:
            return  # a stale result: the settings have moved on
        self.has_after = True
        self.shown_params = r.params
        self._say_notice(r.notice)
        if r.region is not None:
            x, y = r.region[0], r.region[1]
            self.after_patched.emit(self.faces.dress_part(r.params, r.image, x, y), x, y)
            self.shown, self._painted = Shown.PARTIAL, r.region
            self.shown_changed.emit(self.shown)
            return
        self._render_pending = None
        self.shown = Shown.EXACT
        self.after_changed.emit(self.faces.dress(r.image))  # the faces at hand until its own are restored
        self.faces.result_changed(r.params, r.image)
        self._measured(job_id, r.params, r.seconds)
        self.last_render_seconds = r.seconds
        self.last_render_stages = r.stages
        self.timing_changed.emit(r.seconds, self.last_preview_ms)
        self.shown_changed.emit(self.shown)
        if self.corners_for != corner_key(r.params) and self.model_info is not None:
            self._submit(PrepareCorners(r.params))

    def on_photo_ready(self, r: PhotoReady, *, new_photo: bool) -> None:
        """A new photo, or the same photo at a new scale (then the old result stays on screen, stretched)."""
        self.photo, self.before_scale = r.photo, r.scale
        self.blender = self.corners_for = None
        if new_photo:
            self.photo_path = r.photo.source  # only once it opened (a failed open keeps the photo on screen)
            self._photo_opened()  # its saved mask, or none
            for slot in ("render", "corners", "detail", "faces", "face-restore"):  # under way for the old photo
                self._latest.pop(slot, None)
            self.faces.photo_opened()
            self.detail_for = self.shown_params = None
            self.shown, self.has_after = Shown.NONE, False
            self._render_pending = None
            self.after_changed.emit(None)
            self.detail_changed.emit(None)
        elif self.has_after:
            self.shown = Shown.STALE
            self.detail_changed.emit(None)
        self.photo_changed.emit(r.photo, r.before, new_photo)
        self.shown_changed.emit(self.shown)
        # the name and size fit beside the permanent widgets (a full path was cut to ".../sa..."); the title keeps it
        self.status.emit(f"Opened {r.photo.source.name} ({r.photo.width} × {r.photo.height})", 8000)
        self.request_render()

    def on_model_loaded(self, r: ModelLoaded) -> None:
        self.model_info = r.info
        self.blender = self.corners_for = self.detail_for = None
        self.faces.cleared()  # faces restored on the old model's results
        self.detail_changed.emit(None)
        if self.has_after:
            self.shown = Shown.STALE  # keep the old model's result on screen until the new one is ready
        self._falling_back = False
        spec = self.model_spec
        if spec is not None:
            self.loaded_specs = [s for s in self.loaded_specs if s != spec] + [spec]  # the last one worked last
        self.model_changed.emit(r.info, r.description)
        self.params = params_for_model(self.params, r.info)
        self.history.reset(self.params)
        self.params_changed.emit(self.params)
        self.status.emit(f"Model loaded: {r.description}", 8000)
        self._notice = ""
        self._say_notice(r.notice)
        self.request_render()

    def _say_notice(self, notice: str) -> None:
        """The session's line about running elsewhere than asked (a GPU that failed: the CPU finishes), once: it
        stays in the status bar until something else is said."""
        if notice and notice != self._notice:
            self._notice = notice
            self.status.emit(notice, 0)

    def on_failed(self, job: Job, message: str) -> None:
        if isinstance(job, LoadModel):
            self.on_model_failed(message)
            return
        if isinstance(job, Render) and self._render_pending is job:
            self._render_pending = None
        if isinstance(job, RestoreFaces):
            if self._is_latest(job):
                self.faces.on_failed(message)
            return
        self.error.emit(FAILURE_TITLES.get(type(job), "Failed"), message)

    def on_cancelled(self, job: Job) -> None:
        """A job stopped between tiles: by the user (said in the status bar), or superseded (said by nothing)."""
        if self._render_pending is job:
            self._render_pending = None
        if isinstance(job, RestoreFaces):
            self.faces.on_cancelled(job)
        if self._is_latest(job):
            self.status.emit("Render cancelled", 4000)

    def on_model_failed(self, message: str) -> None:
        """Say why, then get back to a working model: the one that worked before this attempt, else the default.
        Loading a model releases the previous one first (two diffusion models rarely fit), so without this a typo in
        a path, or a model removed since last time, would leave the user with none."""
        self.model_info = None
        failed = self.model_spec
        fallback = None
        if not self._falling_back:
            for candidate in (self.loaded_specs[-1] if self.loaded_specs else None, self.default_spec()):
                if candidate is not None and candidate != failed:
                    fallback = candidate
                    break
        self._falling_back = fallback is not None
        self.model_changed.emit(None, "")  # before the fallback's load begins, which the window then shows
        if fallback is not None:
            self.load_model(fallback)
            message += f"\n\nUsing {fallback.name} instead."
        self.error.emit("Cannot load the model", message)
