"""A batch uses the strength mask painted in the editor for a photo that has one (issue 19).

The editor keeps masks by the photo file's content (:mod:`desktop_sr.imaging.mask_store`); here a batch photo's
render parameters pick up its mask. The batch's own strengths stay the sliders' values: the mask scales them place
by place, as it did in the editor. A damaged mask entry is a note on that photo, never a failed batch.
"""

from __future__ import annotations

from pathlib import Path

from ..engine.api import RenderParams
from ..engine.strength_map import StrengthMaps
from ..imaging import PhotoError
from ..imaging.mask_store import load_masks


def params_with_saved_mask(source: Path, params: RenderParams, notes: list[str]) -> RenderParams:
    """``params`` with the masks saved for ``source``, if any; a problem reading them goes to ``notes``."""
    try:
        saved = load_masks(source)
    except PhotoError as exc:
        notes.append(f"saved mask not used: {exc}")
        return params
    if saved is None:
        return params
    try:
        maps = StrengthMaps(pix=saved.pix, sem=saved.sem)
    except ValueError as exc:
        notes.append(f"saved mask not used: {exc}")
        return params
    notes.append("used the strength mask saved in the editor")
    return params.with_(maps=maps)
