"""The batch dialog's "Restore faces" row: a face model of the store (or none), its strength, and its licence shown
beside it before it is used. Which models restore faces is learnt from their family's capabilities
(:func:`face_models`, which the editor's Faces panel lists too)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..engine.faces import FaceChoice, FaceSettings
from ..engine.families import family
from ..engine.spec import ModelSpec
from ..models import ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceModel:
    """A face model of the store, as a list offers it."""

    id: str
    name: str
    spec: ModelSpec
    licence: str
    #: The model takes a fidelity weight (CodeFormer's w), as recorded when it was imported: the panel offers the
    #: slider before the model is first loaded.
    has_fidelity: bool = False


def face_models(models_dir: Path | None) -> list[FaceModel]:
    """The store's face models (an unreadable store lists none and says so in the log)."""
    if models_dir is None:
        return []
    out = []
    try:
        store = ModelStore(models_dir)
        for entry in store.entries():
            try:
                restores = family(entry.kind).capabilities.face_restoration
            except Exception:  # noqa: BLE001 - a model of a family that is not installed is not offered
                restores = False
            if restores:
                details = entry.details
                out.append(FaceModel(entry.id, entry.name, store.spec(entry), details.get("licence", ""),
                                     details.get("fidelity weight") == "yes"))  # fmt: skip
    except OSError as exc:
        log.warning("cannot list the face models in %s: %s", models_dir, exc)
    return out


class FaceChoiceRow(QWidget):
    """Off, or one of the store's face models and a strength (0-1); ``changed`` when either changes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setToolTip("Restore the faces of each result with a face model (Model ▸ Models… imports one; "
                              "'desktop-sr models get' downloads one)")  # fmt: skip
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.1)
        self.strength.setDecimals(2)
        self.strength.setValue(1.0)
        self.strength.setToolTip("How much of the restored face is mixed in (outside the faces nothing changes)")
        self.licence = QLabel()
        self.licence.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Restore faces"))
        row.addWidget(self.model, 1)
        row.addWidget(QLabel("Strength"))
        row.addWidget(self.strength)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.licence)
        self._specs: dict[str, ModelSpec] = {}
        self._licences: dict[str, str] = {}
        self.model.currentIndexChanged.connect(self._model_changed)
        self.strength.valueChanged.connect(self.changed)
        self.fill(None)

    def fill(self, models_dir: Path | None) -> None:
        """List the store's face models (an unreadable store lists none and says so in the log)."""
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem("Off", "")
        self._specs, self._licences = {}, {}
        for found in face_models(models_dir):
            self._specs[found.id] = found.spec
            self._licences[found.id] = found.licence
            self.model.addItem(found.name, found.id)
        self.model.blockSignals(False)
        self._model_changed()

    def _model_changed(self) -> None:
        key = str(self.model.currentData() or "")
        self.strength.setEnabled(bool(key))
        text = self._licences.get(key, "")
        self.licence.setText(f"Licence: {text}" if key else "")
        self.licence.setVisible(bool(key))
        self.changed.emit()

    def choice(self, device: str = "auto") -> FaceChoice | None:
        key = str(self.model.currentData() or "")
        if not key:
            return None
        return FaceChoice(self._specs[key], FaceSettings(strength=float(self.strength.value())), device=device)
