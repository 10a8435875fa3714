"""Undo and redo of the controls, as in any photo editor.

One drag of a slider is one step, not fifty: strength changes that follow each other within a short pause merge
into the step they continue. Plain Python (no Qt) so the rules are tested on their own.
"""

from __future__ import annotations

from enum import Enum

from ..engine.api import RenderParams

#: Strength changes closer together than this belong to one gesture (a drag, or arrow keys held down).
MERGE_SECONDS = 0.8
LIMIT = 200


class Change(str, Enum):
    """What kind of change the user made to the controls: it decides how the change enters the undo history and
    whether it may touch the painted mask (see :meth:`~.model.EditorModel.set_params`). A ``str`` enum, so a Qt
    signal may carry it as the word, which ``Change(word)`` turns back into the member (as ``set_params`` does)."""

    #: The pixel or semantic strength alone (a slider drag, arrow keys held): steps in quick succession merge.
    STRENGTH = "strength"
    #: The painted strength mask (a stroke, a starting mask): the only change that sets ``params.maps``.
    MASK = "mask"
    #: Anything else (realism, scale, colour fix, prompt): one undo step each.
    OTHER = "other"


class ParamsHistory:
    def __init__(self, current: RenderParams) -> None:
        self.current = current
        self._undo: list[RenderParams] = []
        self._redo: list[RenderParams] = []
        self._last: tuple[Change, float] | None = None  # kind and time of the last recorded change

    def record(self, params: RenderParams, kind: Change, now: float) -> None:
        """The user changed the controls to ``params``."""
        if params == self.current:
            return
        merge = (
            self._last is not None and kind is self._last[0] is Change.STRENGTH and now - self._last[1] < MERGE_SECONDS
        )
        if not merge or not self._undo:
            self._undo.append(self.current)
            del self._undo[:-LIMIT]
        self.current = params
        self._redo.clear()
        self._last = (kind, now)

    def reset(self, current: RenderParams) -> None:
        """Follow a change the user did not make (settings restored, a model that offers other realism levels)."""
        self.current = current
        self._last = None

    def forget_masks(self) -> None:
        """Another photo: the steps keep their settings but not the previous photo's painted mask."""
        self._undo = [p.with_(maps=None) for p in self._undo]
        self._redo = [p.with_(maps=None) for p in self._redo]

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> RenderParams | None:
        return self._step(self._undo, self._redo)

    def redo(self) -> RenderParams | None:
        return self._step(self._redo, self._undo)

    def _step(self, take: list[RenderParams], keep: list[RenderParams]) -> RenderParams | None:
        if not take:
            return None
        keep.append(self.current)
        self.current = take.pop()
        self._last = None
        return self.current
