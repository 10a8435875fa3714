"""A face restoration chosen for a batch or a command: the face model and how it is applied, small and picklable
(a batch's settings carry it to a Ray worker), and the one loaded copy of its model per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..control import Control
from ..spec import ModelSpec
from .restore import FaceRestoration, FacesDone, FaceSettings


@dataclass(frozen=True)
class FaceChoice:
    """Restore faces with ``spec``'s model at these settings, after whatever model made the result."""

    spec: ModelSpec
    settings: FaceSettings = FaceSettings()
    device: str = "auto"  # where the face model runs (no part of the pixels' signature)

    def signature(self) -> dict[str, object]:
        """What decides the pixels (for a batch's manifest): the model's files and the settings."""
        files = {role: str(path) for role, path in self.spec.files}
        return {"kind": self.spec.kind, "files": files, "strength": self.settings.strength,
                "fidelity": self.settings.fidelity, "min_face": self.settings.min_face}  # fmt: skip

    def apply(self, result: np.ndarray, *, control: Control | None = None) -> FacesDone:
        """The result with its faces restored (the model loaded once per process and device)."""
        return restoration_for(self.spec, self.device).apply(result, self.settings, control=control)


_lock = threading.Lock()
_loaded: dict[tuple[ModelSpec, str], FaceRestoration] = {}


def restoration_for(spec: ModelSpec, device: str = "auto") -> FaceRestoration:
    """The face model ``spec`` names, loaded once per process and device (the newest one kept: a batch or a command
    uses one face model). Raises :class:`~desktop_sr.engine.errors.ModelError` naming the file."""
    from . import open_face_restorer

    with _lock:
        found = _loaded.get((spec, device))
        if found is None:
            found = FaceRestoration(open_face_restorer(spec, device=device))
            _loaded.clear()
            _loaded[(spec, device)] = found
        return found
