"""What the Faces panel sets, as one undoable value: the face model, its strength and fidelity, the faces switched off.

A step of the editor's undo history holds one :class:`FaceEdit` beside the render parameters, so choosing a model,
a strength drag (one step) and a face switched off are undone like any slider. Faces are found again on every new
result (the pixels changed: a face's box can move by a pixel or two, or scale with the result), so a face switched
off is kept as its box in fractions of the result's size, and a face found later is off when its box overlaps one of
those by more than :data:`SAME_FACE` (intersection over union): the choice survives a strength change, a region
render and a scale change without being remapped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..engine.faces import Face, FaceSettings
from ..engine.spec import ModelSpec

#: Two boxes with at least this intersection over union are the same face (in two renders of one photo).
SAME_FACE = 0.5
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in result pixels
Fractions = tuple[float, float, float, float]  # the same box in fractions of the result's width and height


def fractions(box: Box, size: tuple[int, int]) -> Fractions:
    w, h = size
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def overlap(a: Fractions, b: Fractions) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FaceEdit:
    """The Faces panel's state: no ``model`` means faces are not restored."""

    model: ModelSpec | None = None
    strength: float = 1.0
    fidelity: float = 0.5
    off: frozenset[Fractions] = frozenset()

    def __post_init__(self) -> None:
        FaceSettings(strength=self.strength, fidelity=self.fidelity)  # the same ranges, the same message

    def settings(self) -> FaceSettings:
        return FaceSettings(strength=self.strength, fidelity=self.fidelity)

    def with_(self, **changes: object) -> FaceEdit:
        return replace(self, **changes)  # type: ignore[arg-type]

    def is_on(self, face: Face, size: tuple[int, int]) -> bool:
        here = fractions(face.box, size)
        return not any(overlap(here, o) >= SAME_FACE for o in self.off)

    def switched(self, face: Face, size: tuple[int, int], on: bool) -> FaceEdit:
        """This face on or off (the other faces as they were)."""
        here = fractions(face.box, size)
        off = frozenset(o for o in self.off if overlap(here, o) < SAME_FACE)
        return self.with_(off=off if on else off | {here})

    def on_keys(self, faces: Iterable[Face], size: tuple[int, int]) -> set[Box]:
        """The keys of the faces this edit leaves on."""
        return {f.key for f in faces if self.is_on(f, size)}
