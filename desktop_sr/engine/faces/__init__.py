"""Face restoration after any model: find faces with landmarks, align them to the 512 template, restore them with a
face model, paste them back so the rest of the result stays as it was.

``landmarks`` (OpenCV 4's cascades: boxes, eye centres, the five points), ``template`` (the 512 x 512 five-point
template), ``align`` (warp, feathered mask, colour match, paste-back), ``restore`` (the step and its cache). Torch-free:
the face model itself is opened by its family (:func:`open_face_restorer`), whose ``restore`` is the only torch call.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..families import OpenOptions, family
from ..spec import ModelSpec
from .choice import FaceChoice, restoration_for
from .landmarks import Face, NoFaceDetector
from .restore import MIN_FACE_PX, FaceRestoration, FaceRestorer, FacesDone, FaceSettings

__all__ = [
    "MIN_FACE_PX",
    "Face",
    "FaceChoice",
    "FaceRestoration",
    "FaceRestorer",
    "FaceSettings",
    "FacesDone",
    "NoFaceDetector",
    "open_face_restorer",
    "restoration_for",
]


def open_face_restorer(spec: ModelSpec, *, device: str = "auto", dtype: str = "auto") -> FaceRestorer:
    """Load the face model ``spec`` names (any family whose capabilities say ``face_restoration``). Raises
    :class:`ModelError` naming the file, e.g. for an upscaler given as a face model."""
    fam = family(spec.kind)
    if not fam.capabilities.face_restoration:
        raise ModelError(
            Path(spec.name or spec.kind),
            f"is a {fam.label.split(' (')[0].lower()} model, not a face restoration model (GFPGAN, RestoreFormer, "
            "CodeFormer)",
        )
    return fam.open_restorer(spec, OpenOptions(device=device, dtype=dtype))
