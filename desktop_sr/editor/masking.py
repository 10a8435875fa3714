"""The editor's mask intents: paint, start from the detail map or from faces, clear; kept with the photo.

:class:`MaskEditor` is a collaborator of :class:`~desktop_sr.editor.model.EditorModel` (``model.masks``), its own
object so the painting rules read on their own and depend on the editor only through what its constructor is
handed. The mask lives in the render parameters (``params.maps``), so a finished stroke is an undo step like a
slider drag, the exact render and the export pick it up, and the cache keys follow it. While a stroke is under way
only the instant preview runs (a corner blend with the mask, a few ms); the exact render (visible region first)
follows when the stroke ends. Every committed change is saved with the photo (:mod:`desktop_sr.imaging.mask_store`),
and opening the photo again brings its mask back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.api import RenderParams
from ..engine.strength_map import StrengthMaps
from ..imaging import Photo, PhotoError
from ..imaging.mask_store import SavedMasks, load_masks, photo_key, save_masks
from .events import Event
from .jobs import DetailMap, FindFaces, Job
from .mask import Brush, Stroke, as_maps, from_boxes, from_detail, mask_grid, neutral

#: What "protect faces" and "from the detail map" paint: the semantic strength multiplier there.
PROTECT_VALUE = 0.0
DETAIL_THRESHOLD = 0.5


@dataclass(frozen=True)
class MaskContext:
    """What the mask rules read of the editor, at the moment they run (the editor's state moves on between calls,
    so they ask for it each time rather than keep a copy)."""

    params: RenderParams
    photo: Photo | None
    photo_path: Path | None  # the opened photo's file (None before one opened): where its mask is kept
    output_size: tuple[int, int] | None  # the result on screen, in pixels: the coordinates strokes come in
    can_render: bool  # a model is loaded (the detail map needs one)


class MaskEditor:
    """The painted mask of one editing session: the stroke under way, the starting masks, saving and loading.

    It changes the editor only through the callables it is handed: ``commit`` makes a mask the current one (one
    undo step), ``preview`` shows the instant preview with the stroke's mask when the corners are at hand,
    ``submit`` queues a background job (the detail map, the faces), ``status`` says something in the status bar.
    """

    def __init__(
        self,
        context: Callable[[], MaskContext],
        *,
        commit: Callable[[StrengthMaps | None], None],
        preview: Callable[[np.ndarray], None],
        submit: Callable[[Job], int],
        status: Event[[str, int]],
    ) -> None:
        self._context = context
        self._commit_maps, self._preview, self._submit, self._status = commit, preview, submit, status
        self.stroke: Stroke | None = None
        self.key: str | None = None  # the photo file's content hash: where its mask is kept
        self._detail_values: tuple[RenderParams, np.ndarray] | None = None  # for which settings (maps aside)
        self._pending_detail: tuple[float, float] | None = None  # threshold, value asked before the map arrived
        #: The mask grid's values (H x W multipliers of the semantic strength), or None when nothing is painted.
        self.changed: Event[[np.ndarray | None]] = Event()

    # -- reading ----------------------------------------------------------------------------------------------------
    def grid(self) -> tuple[int, int] | None:
        photo = self._context().photo
        return None if photo is None else mask_grid(*photo.size)

    def values(self) -> np.ndarray | None:
        """The painted mask on its grid (float32), None when nothing is painted."""
        if self.stroke is not None:
            return self.stroke.values()
        maps = self._context().params.maps
        return None if maps is None or maps.sem is None else maps.sem.astype(np.float32)

    # -- painting ---------------------------------------------------------------------------------------------------
    def begin_stroke(self, brush: Brush, x: float, y: float) -> None:
        """Start painting at (x, y) in output pixels of the image on screen."""
        grid = self.grid()
        size = self._context().output_size
        if grid is None or size is None:
            return
        start = self.values()
        self.stroke = Stroke(start if start is not None and start.shape == grid[::-1] else neutral(grid), brush, size)
        self.stroke_to(x, y)

    def stroke_to(self, x: float, y: float) -> None:
        """Extend the stroke: the mask and the instant preview follow at once."""
        if self.stroke is None:
            return
        self.stroke.add(x, y)
        values = self.stroke.values()
        self.changed.emit(values)
        self._preview(values)

    def end_stroke(self) -> None:
        """The stroke is one undo step; the exact render follows (visible region first) and the mask is saved."""
        stroke, self.stroke = self.stroke, None
        if stroke is not None:
            self._commit(stroke.values())

    def set(self, values: np.ndarray | None) -> None:
        """Replace the mask (None clears it): one undo step."""
        self.stroke = None
        self._commit(values)

    def _commit(self, values: np.ndarray | None) -> None:
        maps = as_maps(values)
        if maps == self._context().params.maps:
            self.changed.emit(self.values())
            return
        self._commit_maps(maps)

    def moved(self) -> None:
        """The mask in the parameters changed (a stroke, undo, redo, a starting mask): show it and keep it."""
        self.changed.emit(self.values())
        self._save()

    # -- starting masks ---------------------------------------------------------------------------------------------
    def from_detail(self, threshold: float = DETAIL_THRESHOLD, value: float = PROTECT_VALUE) -> None:
        """Less invention wherever the detail map is above ``threshold`` (computed first if need be)."""
        ctx = self._context()
        if ctx.photo is None or not ctx.can_render:
            return
        if self._detail_values is None or self._detail_values[0] != ctx.params.with_(maps=None):
            self._pending_detail = (threshold, value)
            self._submit(DetailMap(ctx.params))
            self._status.emit("Computing the detail map for the mask…", 0)
            return
        self._pending_detail = None
        grid = self.grid()
        assert grid is not None
        self.set(self._combine(from_detail(self._detail_values[1], grid, threshold, value)))

    def detail_ready(self, params: RenderParams, values: np.ndarray) -> None:
        """The detail map of ``params`` (maps aside) arrived: kept, and a starting mask that waited for it is made."""
        self._detail_values = (params, values)
        if self._pending_detail is not None:
            self.from_detail(*self._pending_detail)

    def protect_faces(self) -> None:
        """Find the faces (on the worker) and paint "less invention" over them."""
        if self._context().photo is not None:
            self._status.emit("Looking for faces…", 0)
            self._submit(FindFaces())

    def on_faces(self, boxes: tuple[tuple[int, int, int, int], ...]) -> None:
        photo = self._context().photo
        if photo is None:
            return
        if not boxes:
            self._status.emit("No face found; paint over faces with the brush instead", 8000)
            return
        grid = self.grid()
        assert grid is not None
        self.set(self._combine(from_boxes(list(boxes), photo.size, grid, PROTECT_VALUE)))
        self._status.emit(f"Protected {len(boxes)} face{'s' if len(boxes) > 1 else ''} from invented detail", 8000)

    def _combine(self, new: np.ndarray) -> np.ndarray:
        """A starting mask adds to what is painted: the lower multiplier wins where both say something."""
        current = self.values()
        if current is None or current.shape != new.shape:
            return new
        return np.where(new < 1.0, np.minimum(current, new), current)

    # -- keeping it with the photo ----------------------------------------------------------------------------------
    def photo_opened(self, path: Path | None) -> StrengthMaps | None:
        """A new photo: the last one's stroke and detail map are forgotten; returns the mask saved with this one
        (None if there is none, or it cannot be read: the status bar says so). The editor makes it the current
        one, then calls :meth:`restored`."""
        self.stroke = None
        self._detail_values = None
        self._pending_detail = None
        self.key = None
        if path is None:
            return None
        try:
            self.key = photo_key(path)
            saved = load_masks(path, key=self.key)
            return as_maps(saved.sem) if saved is not None else None
        except (OSError, PhotoError, ValueError) as exc:
            self._status.emit(f"The saved mask was not loaded: {exc}", 10000)
            return None

    def restored(self) -> None:
        """The opened photo's mask (or none) is the current one now: show it, and say when one came back."""
        values = self.values()
        self.changed.emit(values)
        if values is not None:
            self._status.emit("This photo's painted mask is back (Edit ▸ Undo or Clear mask to drop it)", 8000)

    def _save(self) -> None:
        ctx = self._context()
        if ctx.photo_path is None or ctx.photo is None or self.key is None:
            return
        p = ctx.params
        settings = {"pix": p.pix, "sem": p.sem, "realism": p.realism, "scale": p.scale}
        try:
            save_masks(ctx.photo_path, SavedMasks(sem=self.values(), settings=settings), size=ctx.photo.size,
                       key=self.key)  # fmt: skip
        except (OSError, PhotoError) as exc:
            self._status.emit(f"The mask could not be saved: {exc}", 10000)
