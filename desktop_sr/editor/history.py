"""Undo and redo of the controls, as in any photo editor.

One drag of a slider is one step, not fifty: strength changes that follow each other within a short pause merge
into the step they continue. Each step is the render parameters and the Faces panel's state together (one history:
undo takes back the last change, whichever control made it). Plain Python (no Qt) so the rules are tested on their
own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
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
    #: The face restoration's strength alone (the Faces panel's slider): steps in quick succession merge.
    FACE_STRENGTH = "face strength"


#: Changes that merge with the one before of the same kind (a drag).
MERGING = (Change.STRENGTH, Change.FACE_STRENGTH)


@dataclass(frozen=True)
class Step:
    """One state of the controls: the render parameters and the Faces panel's state (``faces``: opaque here, an
    :class:`~desktop_sr.editor.face_restore.FaceEdit` in the editor)."""

    params: RenderParams
    faces: Hashable = None


class ParamsHistory:
    def __init__(self, current: RenderParams, faces: Hashable = None) -> None:
        self._step = Step(current, faces)
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._last: tuple[Change, float] | None = None  # kind and time of the last recorded change

    @property
    def current(self) -> RenderParams:
        return self._step.params

    @property
    def faces(self) -> Hashable:
        """The Faces panel's state that goes with :attr:`current` (what undo and redo bring back with it)."""
        return self._step.faces

    def record(self, params: RenderParams, kind: Change, now: float) -> None:
        """The user changed the controls to ``params``."""
        self._record(Step(params, self._step.faces), kind, now)

    def record_faces(self, faces: Hashable, kind: Change, now: float) -> None:
        """The user changed the Faces panel to ``faces`` (:attr:`Change.FACE_STRENGTH` merges a drag)."""
        self._record(Step(self._step.params, faces), kind, now)

    def _record(self, step: Step, kind: Change, now: float) -> None:
        if step == self._step:
            return
        merge = (
            self._last is not None and kind is self._last[0] and kind in MERGING and now - self._last[1] < MERGE_SECONDS
        )
        if not merge or not self._undo:
            self._undo.append(self._step)
            del self._undo[:-LIMIT]
        self._step = step
        self._redo.clear()
        self._last = (kind, now)

    def reset(self, current: RenderParams) -> None:
        """Follow a change the user did not make (settings restored, a model that offers other realism levels)."""
        self._step = Step(current, self._step.faces)
        self._last = None

    def reset_faces(self, faces: Hashable) -> None:
        """Follow a change of the Faces panel the user did not make (a face model that failed to load: off)."""
        self._step = Step(self._step.params, faces)
        self._last = None

    def forget_masks(self, faces: Callable[[Hashable], Hashable] = lambda f: f) -> None:
        """Another photo: the steps keep their settings but not the previous photo's painted mask; ``faces`` maps
        each step's Faces state to what it is for the new photo (the faces switched off were the last photo's)."""
        self._undo = [Step(s.params.with_(maps=None), faces(s.faces)) for s in self._undo]
        self._redo = [Step(s.params.with_(maps=None), faces(s.faces)) for s in self._redo]

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> RenderParams | None:
        return self._move(self._undo, self._redo)

    def redo(self) -> RenderParams | None:
        return self._move(self._redo, self._undo)

    def _move(self, take: list[Step], keep: list[Step]) -> RenderParams | None:
        """One step back or forward: its parameters (its faces' state in :attr:`faces`), None at the end."""
        if not take:
            return None
        keep.append(self._step)
        self._step = take.pop()
        self._last = None
        return self.current
