"""The editor's mask intents: paint, start from the detail map or from faces, clear; kept with the photo.

A mixin of :class:`~desktop_sr.editor.model.EditorModel` (its own module so the painting rules read on their own).
The mask lives in the render parameters (``params.maps``), so a finished stroke is an undo step like a slider drag,
the exact render and the export pick it up, and the cache keys follow it. While a stroke is under way only the
instant preview runs (a corner blend with the mask, a few ms); the exact render (visible region first) follows when
the stroke ends. Every committed change is saved with the photo (:mod:`desktop_sr.imaging.mask_store`), and opening
the photo again brings its mask back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..engine.api import RenderParams
from ..imaging import PhotoError
from ..imaging.mask_store import SavedMasks, load_masks, photo_key, save_masks
from .events import Event
from .jobs import DetailMap, FindFaces
from .mask import Brush, Stroke, as_maps, from_boxes, from_detail, mask_grid, neutral

if TYPE_CHECKING:
    from .model import EditorModel

#: What "protect faces" and "from the detail map" paint: the semantic strength multiplier there.
PROTECT_VALUE = 0.0
DETAIL_THRESHOLD = 0.5


class MaskEditing:
    def _init_masking(self: EditorModel) -> None:  # type: ignore[misc]
        self.stroke: Stroke | None = None
        self.mask_key: str | None = None  # the photo file's content hash: where its mask is kept
        self._detail_values: tuple[RenderParams, np.ndarray] | None = None  # for which settings (maps aside)
        self._pending_detail: tuple[float, float] | None = None  # threshold, value asked before the map arrived
        #: The mask grid's values (H x W multipliers of the semantic strength), or None when nothing is painted.
        self.mask_changed: Event[[np.ndarray | None]] = Event()

    # -- reading ----------------------------------------------------------------------------------------------------
    def mask_grid(self: EditorModel) -> tuple[int, int] | None:  # type: ignore[misc]
        return None if self.photo is None else mask_grid(*self.photo.size)

    def mask_values(self: EditorModel) -> np.ndarray | None:  # type: ignore[misc]
        """The painted mask on its grid (float32), None when nothing is painted."""
        if self.stroke is not None:
            return self.stroke.values()
        maps = self.params.maps
        return None if maps is None or maps.sem is None else maps.sem.astype(np.float32)

    def _output_size(self: EditorModel) -> tuple[int, int]:  # type: ignore[misc]
        assert self.photo is not None
        scale = self.before_scale or self.params.scale
        return self.photo.width * scale, self.photo.height * scale

    # -- painting ---------------------------------------------------------------------------------------------------
    def begin_stroke(self: EditorModel, brush: Brush, x: float, y: float) -> None:  # type: ignore[misc]
        """Start painting at (x, y) in output pixels of the image on screen."""
        grid = self.mask_grid()
        if grid is None:
            return
        start = self.mask_values()
        self.stroke = Stroke(start if start is not None and start.shape == grid[::-1] else neutral(grid), brush,
                             self._output_size())  # fmt: skip
        self.stroke_to(x, y)

    def stroke_to(self: EditorModel, x: float, y: float) -> None:  # type: ignore[misc]
        """Extend the stroke: the mask and the instant preview follow at once."""
        if self.stroke is None:
            return
        self.stroke.add(x, y)
        values = self.stroke.values()
        self.mask_changed.emit(values)
        if self.blender is not None and self.corners_for is not None and self.model_info is not None:
            from .model import corner_key

            preview = self.params.with_(maps=as_maps(values))
            if self.corners_for == corner_key(preview):
                self._show_preview(preview)
                self.shown_changed.emit(self.shown)

    def end_stroke(self: EditorModel) -> None:  # type: ignore[misc]
        """The stroke is one undo step; the exact render follows (visible region first) and the mask is saved."""
        stroke, self.stroke = self.stroke, None
        if stroke is not None:
            self._commit(stroke.values())

    def set_mask(self: EditorModel, values: np.ndarray | None) -> None:  # type: ignore[misc]
        """Replace the mask (None clears it): one undo step."""
        self.stroke = None
        self._commit(values)

    def _commit(self: EditorModel, values: np.ndarray | None) -> None:  # type: ignore[misc]
        maps = as_maps(values)
        if maps == self.params.maps:
            self.mask_changed.emit(self.mask_values())
            return
        self.set_params(self.params.with_(maps=maps), kind="mask")

    def _mask_moved(self: EditorModel) -> None:  # type: ignore[misc]
        """The mask in the parameters changed (a stroke, undo, redo, a starting mask): show it and keep it."""
        self.mask_changed.emit(self.mask_values())
        self._save_mask()

    # -- starting masks ---------------------------------------------------------------------------------------------
    def mask_from_detail(  # type: ignore[misc]
        self: EditorModel, threshold: float = DETAIL_THRESHOLD, value: float = PROTECT_VALUE
    ) -> None:
        """Less invention wherever the detail map is above ``threshold`` (computed first if need be)."""
        if self.photo is None or self.model_info is None:
            return
        if self._detail_values is None or self._detail_values[0] != self.params.with_(maps=None):
            self._pending_detail = (threshold, value)
            self._submit(DetailMap(self.params))
            self.status.emit("Computing the detail map for the mask…", 0)
            return
        self._pending_detail = None
        grid = self.mask_grid()
        assert grid is not None
        self.set_mask(self._combine(from_detail(self._detail_values[1], grid, threshold, value)))

    def _detail_arrived(self: EditorModel) -> None:  # type: ignore[misc]
        if self._pending_detail is not None:
            self.mask_from_detail(*self._pending_detail)

    def protect_faces(self: EditorModel) -> None:  # type: ignore[misc]
        """Find the faces (on the worker) and paint "less invention" over them."""
        if self.photo is not None:
            self.status.emit("Looking for faces…", 0)
            self._submit(FindFaces())

    def on_faces(self: EditorModel, boxes: tuple[tuple[int, int, int, int], ...]) -> None:  # type: ignore[misc]
        if self.photo is None:
            return
        if not boxes:
            self.status.emit("No face found; paint over faces with the brush instead", 8000)
            return
        grid = self.mask_grid()
        assert grid is not None
        self.set_mask(self._combine(from_boxes(list(boxes), self.photo.size, grid, PROTECT_VALUE)))
        self.status.emit(f"Protected {len(boxes)} face{'s' if len(boxes) > 1 else ''} from invented detail", 8000)

    def _combine(self: EditorModel, new: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        """A starting mask adds to what is painted: the lower multiplier wins where both say something."""
        current = self.mask_values()
        if current is None or current.shape != new.shape:
            return new
        return np.where(new < 1.0, np.minimum(current, new), current)

    # -- keeping it with the photo ----------------------------------------------------------------------------------
    def _photo_opened(self: EditorModel) -> None:  # type: ignore[misc]
        """A new photo: its saved mask comes back (or none); masks of the previous photo leave the undo history."""
        self.stroke = None
        self._detail_values = None
        self._pending_detail = None
        self.history.forget_masks()
        maps = None
        self.mask_key = None
        if self.photo_path is not None:
            try:
                self.mask_key = photo_key(self.photo_path)
                saved = load_masks(self.photo_path, key=self.mask_key)
                maps = as_maps(saved.sem) if saved is not None else None
            except (OSError, PhotoError, ValueError) as exc:
                self.status.emit(f"The saved mask was not loaded: {exc}", 10000)
        self.params = self.params.with_(maps=maps)
        self.history.reset(self.params)
        self.params_changed.emit(self.params)
        self.mask_changed.emit(self.mask_values())
        if maps is not None:
            self.status.emit("This photo's painted mask is back (Edit ▸ Undo or Clear mask to drop it)", 8000)

    def _save_mask(self: EditorModel) -> None:  # type: ignore[misc]
        if self.photo_path is None or self.photo is None or self.mask_key is None:
            return
        p: RenderParams = self.params
        settings = {"pix": p.pix, "sem": p.sem, "realism": p.realism, "scale": p.scale}
        try:
            save_masks(self.photo_path, SavedMasks(sem=self.mask_values(), settings=settings), size=self.photo.size,
                       key=self.mask_key)  # fmt: skip
        except (OSError, PhotoError) as exc:
            self.status.emit(f"The mask could not be saved: {exc}", 10000)
