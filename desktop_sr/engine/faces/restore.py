"""Face restoration as a step applied to a finished result (numpy in, numpy out), after any model.

A face model (GFPGAN, RestoreFormer, CodeFormer) restores one 512 x 512 aligned face; it is no upscaler for whole
photos. So whatever made the result (PiSA-SR, the bundled model, a community upscaler), :class:`FaceRestoration`
finds its faces, aligns each to the template, restores it, colour-matches it and pastes it back with a feathered mask
(:mod:`.align`): outside the masks the result is returned bit for bit.

Restored faces are kept per face and model (the aligned crop's digest, the model, its fidelity weight), and what a
paste-back needs is kept with them, so a strength change or a face switched on or off is a re-blend of cached pixels
(:meth:`FaceRestoration.blend`: milliseconds, ``bench/face_restore.py``) and a second render of the same result costs
no network pass. Runs on the caller's thread: the GUI calls it from its worker, like every engine call.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import landmarks
from .align import Placed, blend, place, similarity_to_template, warp_face
from .landmarks import Face

if TYPE_CHECKING:
    from ..control import Control

#: Faces whose box in the result is smaller than this (pixels) are skipped and counted: a face model invents a face
#: at 512 x 512, and a face this small carries too little of the person to restore rather than replace.
MIN_FACE_PX = 48


class FaceRestorer(Protocol):
    """One loaded face model (the engine opens it: :func:`desktop_sr.engine.faces.open_face_restorer`)."""

    name: str
    architecture: str
    #: The model takes a fidelity weight (CodeFormer's w: 0 = the model's own face, 1 = closest to the photo).
    has_fidelity: bool
    licence: str

    def restore(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        """A 512 x 512 x 3 float32 RGB aligned face in [0, 1] -> its restored version (same layout)."""
        ...


@dataclass(frozen=True)
class FaceSettings:
    """How faces are restored: how much of the restored face is mixed in, and the model's fidelity weight."""

    strength: float = 1.0  # 0: the result unchanged, 1: the restored face (inside its feathered mask)
    fidelity: float = 0.5  # CodeFormer's w; ignored by a model without one
    min_face: int = MIN_FACE_PX

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"face strength must be in 0..1, not {self.strength}")
        if not 0.0 <= self.fidelity <= 1.0:
            raise ValueError(f"face fidelity must be in 0..1, not {self.fidelity}")


@dataclass
class FacesDone:
    """What a restoration did: the image, the faces found, which were restored, which were too small."""

    image: np.ndarray
    faces: list[Face] = field(default_factory=list)
    restored: list[Face] = field(default_factory=list)
    too_small: list[Face] = field(default_factory=list)
    placed: dict[tuple[int, int, int, int], Placed] = field(default_factory=dict)  # by face key

    def summary(self) -> str:
        if not self.faces:
            return "no face found"
        parts = [f"{len(self.restored)} face{'s' if len(self.restored) != 1 else ''} restored"]
        if self.too_small:
            parts.append(f"{len(self.too_small)} too small (under {MIN_FACE_PX} px), left as they were")
        return ", ".join(parts)


class FaceRestoration:
    """One face model applied to results, with its restored faces cached (``cache_items`` faces, least recently
    used dropped first: each is two 512 x 512 crops plus its paste-back, about 5 MB)."""

    def __init__(self, restorer: FaceRestorer, cache_items: int = 32) -> None:
        self.restorer = restorer
        self._cache: OrderedDict[tuple[str, float], np.ndarray] = OrderedDict()
        self._limit = cache_items
        #: One face at a time: the process's one loaded model (:func:`.choice.restoration_for`) is shared by the
        #: editor's worker and a batch's, each on its own thread.
        self._lock = threading.Lock()

    def find(self, result: np.ndarray) -> list[Face]:
        """The faces of a result (largest first). Raises :class:`~.landmarks.NoFaceDetector` without OpenCV 4."""
        return landmarks.detect(result)

    def prepare(
        self,
        result: np.ndarray,
        settings: FaceSettings,
        *,
        faces: list[Face] | None = None,
        only: Collection[tuple[int, int, int, int]] | None = None,
        control: Control | None = None,
    ) -> FacesDone:
        """Restore the faces of ``result`` (those in ``only``, by key, if given) and place them, without blending:
        ``FacesDone.image`` is the result itself. Cached faces cost no network pass."""
        found = self.find(result) if faces is None else faces
        done = FacesDone(result, faces=found)
        todo = [f for f in found if only is None or f.key in only]
        for i, face in enumerate(todo):
            if face.size < settings.min_face:
                done.too_small.append(face)
                continue
            if control is not None:
                control.check()
                control.report(i, len(todo), "restore faces")
            matrix = similarity_to_template(face.array())
            crop = warp_face(result, matrix)
            restored = self._restored(crop, settings.fidelity)
            placed = place(result, restored, matrix)
            if placed is not None:
                done.placed[face.key] = placed
                done.restored.append(face)
        if control is not None and todo:
            control.report(len(todo), len(todo), "restore faces")
        return done

    def apply(
        self,
        result: np.ndarray,
        settings: FaceSettings,
        *,
        faces: list[Face] | None = None,
        only: Collection[tuple[int, int, int, int]] | None = None,
        control: Control | None = None,
    ) -> FacesDone:
        """The result with its faces restored (a new array; ``result`` is not changed)."""
        done = self.prepare(result, settings, faces=faces, only=only, control=control)
        done.image = blend(result, list(done.placed.values()), settings.strength)
        return done

    @staticmethod
    def blend(
        result: np.ndarray,
        done: FacesDone,
        strength: float,
        only: Collection[tuple[int, int, int, int]] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """A prepared restoration mixed in at another strength, or with other faces on (no network pass); into
        ``out`` (an earlier blend of the same result) only the faces' rectangles are rewritten."""
        if out is not None:
            blend(result, list(done.placed.values()), 0.0, out)  # every face back to the result first
        placed = [p for k, p in done.placed.items() if only is None or k in only]
        return blend(result, placed, strength, out)

    def _restored(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        with self._lock:
            return self._restored_locked(crop, fidelity)

    def _restored_locked(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        w = round(fidelity, 3) if self.restorer.has_fidelity else 0.0
        key = (hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).hexdigest(), w)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        out = np.clip(np.asarray(self.restorer.restore(crop, w), np.float32), 0.0, 1.0)
        if out.shape != crop.shape:
            raise ValueError(f"{self.restorer.name} returned {out.shape}, expected {crop.shape}")
        self._cache[key] = out
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return out
