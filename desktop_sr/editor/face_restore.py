"""The editor's face restoration: the Faces panel's intents, and the "after" side with the faces restored.

:class:`FaceEditor` is a collaborator of :class:`~desktop_sr.editor.model.EditorModel` (``model.faces``), like the
mask's :class:`~desktop_sr.editor.masking.MaskEditor`: it reads the editor through a :class:`FaceContext` and changes
it only through the callables it is handed (record an edit as an undo step, follow one the user did not make, submit
a job, show an image, say something).

What costs a network pass runs on the worker as a :class:`~desktop_sr.editor.jobs.RestoreFaces` job (progress and
cancel like a render): a face model chosen, a fidelity change, and every new exact result (its faces are found
again: the pixels changed). What comes back is each face restored and placed on the result, with the result's own
pixels under it, so a strength change or a face switched on or off re-blends those rectangles alone on this thread
(a few milliseconds for a 2 MP result: ``bench/face_restore.py``) and the exported file is the view's pixels. While
a new result's faces are under way, the faces at hand are blended onto it (and onto instant previews), so a slider
drag does not flash unrestored faces (:meth:`FaceEditor.dress`; the visible part rendered first:
:meth:`FaceEditor.dress_part`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from ..engine.api import RenderParams
from ..engine.faces import MIN_FACE_PX, Face, FaceChoice
from ..engine.faces.align import Placed, blend
from ..engine.spec import ModelSpec
from ..imaging import to_uint8
from .events import Event
from .face_edit import FaceEdit
from .history import Change
from .jobs import FacesPrepared, Job, RestoreFaces

NO_DETECTOR = 'Face detection needs OpenCV 4: pip install "desktop-sr[faces]"'
CANCELLED = "Face restoration cancelled: a change in this panel or the next result restores them."
FAILED_NOTE = "Faces are not restored: choose a face model again in the Faces panel."


def detector_available() -> bool:
    """OpenCV 4 with its cascades is installed (OpenCV 5 has none)."""
    from ..engine.faces.landmarks import available

    return available()


@dataclass(frozen=True)
class FaceContext:
    """What the face rules read of the editor, at the moment they run."""

    #: The settings of the exact whole result on screen (None while a preview, a part or nothing is shown).
    exact: RenderParams | None
    device: str


@dataclass(frozen=True)
class FaceRow:
    """One detected face as the panel lists it."""

    number: int
    face: Face
    on: bool
    too_small: bool

    @property
    def label(self) -> str:
        size = f"{round(self.face.size)} px"
        return f"Face {self.number} ({size}, too small)" if self.too_small else f"Face {self.number} ({size})"


@dataclass(frozen=True)
class FacePanel:
    """What the Faces panel and the outlines on the result show."""

    edit: FaceEdit
    rows: tuple[FaceRow, ...]
    summary: str
    has_fidelity: bool
    busy: bool
    size: tuple[int, int] | None  # the result the rows' boxes are in (width, height)


class FaceEditor:
    """The Faces panel's state and rules for one editing session (see the module's text)."""

    def __init__(
        self,
        context: Callable[[], FaceContext],
        *,
        record: Callable[[FaceEdit, Change], None],
        follow: Callable[[FaceEdit], None],
        submit: Callable[[Job], int],
        show: Callable[[np.ndarray], None],
        status: Event[[str, int]],
        error: Event[[str, str]],
    ) -> None:
        self._context, self._record, self._follow, self._submit, self._show = context, record, follow, submit, show
        self._status, self._error = status, error
        self.edit = FaceEdit()
        self._plain: tuple[RenderParams, np.ndarray] | None = None  # the exact whole result, faces not restored
        self._ready: FacesPrepared | None = None  # the last restored faces (of _plain, or of an earlier result)
        self._pending: RestoreFaces | None = None
        self._message = ""  # what the summary says instead (no detector)
        self.last_blend_ms: float | None = None  # the last re-blend's time (the instant preview)
        self.changed: Event[[FacePanel]] = Event()

    # -- intents (the panel) ----------------------------------------------------------------------------------------
    def choose(self, spec: ModelSpec | None) -> None:
        """Restore faces with this face model (None: not at all). One undo step."""
        if spec is not None and not detector_available():
            self._message = NO_DETECTOR
            self._status.emit(NO_DETECTOR, 15000)
            self._emit()
            return
        self._record(self.edit.with_(model=spec), Change.OTHER)

    def set_strength(self, strength: float) -> None:
        """How much of the restored faces is mixed in (0-1): a drag is one undo step, each move a re-blend."""
        self._record(self.edit.with_(strength=min(1.0, max(0.0, strength))), Change.FACE_STRENGTH)

    def set_fidelity(self, fidelity: float) -> None:
        """CodeFormer's fidelity weight (a network pass: on the worker)."""
        self._record(self.edit.with_(fidelity=min(1.0, max(0.0, fidelity))), Change.OTHER)

    def set_face(self, number: int, on: bool) -> None:
        """Face ``number`` (as the panel lists them, from 1) on or off."""
        rows = self.rows()
        r = self._ready
        if r is None or not 1 <= number <= len(rows):
            return
        self._record(self.edit.switched(rows[number - 1].face, r.size, on), Change.OTHER)
        self._status.emit(self.summary(), 8000)  # the status bar's line from the restoration follows

    def toggle_at(self, x: float, y: float) -> bool:
        """Switch the face whose box holds (x, y) (result pixels; the smallest such face); False if none does."""
        hits = [row for row in self.rows() if not row.too_small and _inside(row.face.box, x, y)]
        if not hits:
            return False
        row = min(hits, key=lambda row: row.face.size)
        self.set_face(row.number, not row.on)
        return True

    # -- what the editor tells it -----------------------------------------------------------------------------------
    def restoring(self) -> bool:
        """A face job is under way (the badge says so)."""
        return self._pending is not None

    def wanted(self) -> bool:
        """Faces are to be restored (a render keeps its whole result on the worker for that)."""
        return self.edit.model is not None

    def apply(self, edit: FaceEdit) -> None:
        """``edit`` is the current state now (the user's change, or one undo or redo brought back)."""
        self.edit = edit
        if edit.model is None:
            self._message = ""
        elif not self._exact_ready():
            self._request()
        self._show_current()
        self._emit()

    def result_changed(self, params: RenderParams, image: np.ndarray) -> None:
        """A new exact whole result (uint8) is on screen: its faces are found and restored again, unless they are
        those of the same settings (undo back to them: the same pixels)."""
        self._plain = (params, image)
        if self.edit.model is not None:
            if self._exact_ready():
                self._show_current()
            else:
                self._request()
        self._emit()

    def dress(self, image: np.ndarray) -> np.ndarray:
        """``image`` (uint8: an instant preview, a new result) with the restored faces at hand blended in, while its
        own are on their way; as it is when there are none of this model and size."""
        r = self._ready
        if r is None or self.edit.model is None or r.choice.spec != self.edit.model:
            return image
        if (image.shape[1], image.shape[0]) != r.size:
            return image
        return self._blend(image, r, exact=False)

    def dress_part(self, params: RenderParams, part: np.ndarray, x: int, y: int) -> np.ndarray:
        """A rendered part of the result (the visible region, at (x, y)) with the restored faces at hand blended
        in where they reach into it, so a face looked at does not flash unrestored while the whole result renders."""
        r = self._ready
        if r is None or self.edit.model is None or r.choice.spec != self.edit.model or r.params.scale != params.scale:
            return part
        out = part.copy()
        h, w = part.shape[:2]
        on = self.edit.on_keys(r.faces, r.size)
        for key, placed in r.placed.items():
            x0, y0, x1, y1 = placed.rect
            ix0, iy0, ix1, iy1 = max(x0, x), max(y0, y), min(x1, x + w), min(y1, y + h)
            if key not in on or ix1 <= ix0 or iy1 <= iy0:
                continue
            inside = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            local = Placed((0, 0, ix1 - ix0, iy1 - iy0), placed.pixels[inside], placed.weight[inside])
            base = part[iy0 - y : iy1 - y, ix0 - x : ix1 - x].astype(np.float32) / 255.0
            out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = to_uint8(blend(base, [local], self.edit.strength))
        return out

    def on_prepared(self, r: FacesPrepared) -> None:
        if self._pending is not None and self._pending.params == r.params and self._pending.choice == r.choice:
            self._pending = None
        plain = self._plain
        if plain is None or r.params != plain[0] or r.choice.spec != self.edit.model:
            self._emit()
            return  # for settings or a model the user has left
        self._ready = r
        self._message = ""
        self._show_current()
        panel = self._emit()
        self._status.emit(panel.summary, 8000)

    def on_failed(self, message: str) -> None:
        """The face model could not be used (a file gone missing, not a face model, no OpenCV): said once, and
        restoration is off (not an undo step); the app goes on with the result as it is."""
        self._pending = None
        self._follow(self.edit.with_(model=None))
        self._error.emit("Cannot restore faces", f"{message}\n\n{FAILED_NOTE}")

    def on_cancelled(self, job: Job | None = None) -> None:
        """``job`` stopped (superseded), or None: the user's Cancel stopped every face job; the panel no longer says
        it is under way (after the user's Cancel it says that; the next result or change restores them again)."""
        if job is None and self._pending is not None:
            self._message = CANCELLED
        if job is None or job is self._pending:
            self._pending = None
        self._emit()

    def cleared(self) -> None:
        """Another model: nothing restored so far belongs to its results (the faces switched off stay off)."""
        self._plain = self._ready = self._pending = None
        self._emit()

    def photo_opened(self) -> None:
        """Another photo: as :meth:`cleared`, and no face of it is off (the boxes switched off were the last
        photo's; the undo history forgets them too: :func:`for_new_photo`)."""
        self._plain = self._ready = self._pending = None
        if self.edit.off:
            self._follow(self.edit.with_(off=frozenset()))
        self._emit()

    # -- reading ----------------------------------------------------------------------------------------------------
    def rows(self) -> tuple[FaceRow, ...]:
        """The faces of the result on screen (largest first), as the panel lists them."""
        r, plain = self._ready, self._plain
        if r is None or plain is None or r.params != plain[0]:
            return ()
        small = {f.key for f in r.too_small}
        return tuple(FaceRow(i + 1, f, self.edit.is_on(f, r.size), f.key in small) for i, f in enumerate(r.faces))

    def panel(self) -> FacePanel:
        r = self._ready
        has_fidelity = r is not None and r.choice.spec == self.edit.model and r.has_fidelity
        return FacePanel(self.edit, self.rows(), self.summary(), has_fidelity, self._pending is not None,
                         r.size if r is not None else None)  # fmt: skip

    def summary(self) -> str:
        """One line: what was restored ("3 faces restored, 1 too small"), "No face found", or what is under way."""
        if self._message:
            return self._message
        if self.edit.model is None:
            return ""
        rows = self.rows()
        if self._pending is not None:
            return "Restoring faces…"
        if self._plain is None or not rows and not self._exact_ready():
            return "Faces are restored when the result is ready."
        if not rows:
            return "No face found"
        restored = [row for row in rows if not row.too_small and row.on]
        off = [row for row in rows if not row.too_small and not row.on]
        small = [row for row in rows if row.too_small]
        parts = [f"{len(restored)} face{'' if len(restored) == 1 else 's'} restored"]
        if off:
            parts.append(f"{len(off)} off")
        if small:
            parts.append(f"{len(small)} too small (under {MIN_FACE_PX} px)")
        return ", ".join(parts)

    # -- inside -----------------------------------------------------------------------------------------------------
    def _exact_ready(self) -> bool:
        """The restored faces at hand are those of the result on screen, this model and this fidelity."""
        r, plain = self._ready, self._plain
        if r is None or plain is None or r.params != plain[0] or r.choice.spec != self.edit.model:
            return False
        return not r.has_fidelity or r.choice.settings.fidelity == self.edit.fidelity

    def _request(self) -> None:
        plain, ctx = self._plain, self._context()
        if plain is None or self.edit.model is None or ctx.exact != plain[0]:
            return  # the next exact result restores them
        choice = FaceChoice(self.edit.model, self.edit.settings(), ctx.device)
        pending = self._pending
        same = pending is not None and pending.params == plain[0] and pending.choice.spec == choice.spec
        if same and pending.choice.settings.fidelity == choice.settings.fidelity:  # type: ignore[union-attr]
            return  # already under way (a strength change needs no new pass)
        self._pending = RestoreFaces(plain[0], choice)
        self._message = ""
        self._submit(self._pending)  # replaces a queued one; the model supersedes a running one (stale now)
        self._status.emit("Restoring faces…", 0)

    def _show_current(self) -> None:
        """Put the exact result on screen with the faces as the edit says (the plain result without a model)."""
        plain, ctx = self._plain, self._context()
        if plain is None or ctx.exact != plain[0]:
            return  # a preview or a part is on screen: the next exact result gets the faces
        r = self._ready
        if self.edit.model is None or r is None or r.params != plain[0] or r.choice.spec != self.edit.model:
            self._show(plain[1])
            return
        start = time.perf_counter()
        image = self._blend(plain[1], r, exact=True)
        self.last_blend_ms = (time.perf_counter() - start) * 1000
        self._show(image)

    def _blend(self, image: np.ndarray, r: FacesPrepared, *, exact: bool) -> np.ndarray:
        """A copy of ``image`` with the faces that are on blended in at the edit's strength, each face's rectangle
        alone rewritten. ``exact``: ``image`` is the result the faces were placed on, whose float pixels came back
        with them (then these are exactly the export's pixels); otherwise its own pixels are the base."""
        out = image.copy()
        on = self.edit.on_keys(r.faces, r.size)
        for key, placed in r.placed.items():
            if key not in on:
                continue
            x0, y0, x1, y1 = placed.rect
            base = r.bases[key] if exact else image[y0:y1, x0:x1].astype(np.float32) / 255.0
            local = Placed((0, 0, x1 - x0, y1 - y0), placed.pixels, placed.weight)
            out[y0:y1, x0:x1] = to_uint8(blend(base, [local], self.edit.strength))
        return out

    def _emit(self) -> FacePanel:
        panel = self.panel()
        self.changed.emit(panel)
        return panel


def for_new_photo(edit: Hashable) -> Hashable:
    """A step's Faces state for another photo: the same model and settings, no face switched off."""
    return edit.with_(off=frozenset()) if isinstance(edit, FaceEdit) and edit.off else edit


def _inside(box: tuple[int, int, int, int], x: float, y: float) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]
