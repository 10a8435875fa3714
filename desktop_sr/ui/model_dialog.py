"""Open a model file by file, of any family: the family chosen from a list, then one field per file it needs.

The fields come from the family's declared roles (:mod:`desktop_sr.engine.families`: a folder or a file, its label,
its file types, a hint), so a new family appears here with no edit. Checking a role's files is the family's own
torch-free check; reading the model (which touches torch) happens when the worker loads it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.errors import ModelError
from ..engine.families import FileRole, ModelFamily, families
from ..engine.spec import ModelSpec


def importable_families(upscalers_only: bool = False) -> list[ModelFamily]:
    """The families a person can point at files of (the built-in model has none to choose); ``upscalers_only``:
    those that make a result (Choose model), not those that restore faces of one."""
    found = [f for f in families() if f.roles and (f.capabilities.upscaler or not upscalers_only)]
    return sorted(found, key=lambda f: f.files_optional)  # the bundled model's own weights: last


class RoleField(QWidget):
    """A path field and its Browse button for one role (a folder dialog or a file dialog with the role's types)."""

    def __init__(self, role: FileRole, value: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.edit = QLineEdit(value)
        self.edit.setPlaceholderText(role.hint)
        self.edit.setToolTip(role.hint)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(browse)

    def _browse(self) -> None:
        if self.role.folder:
            chosen = QFileDialog.getExistingDirectory(self, self.role.label, self.edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.role.label, self.edit.text(), self.role.dialog_filter())
        if chosen:
            self.edit.setText(chosen)

    def path(self) -> Path:
        return Path(self.edit.text().strip()).expanduser()


class FamilyFiles(QWidget):
    """The family list and one field per file its family declares, with the family's own check of each: what both
    Model ▸ Choose model and the model manager's Import ask for. ``last`` proposes a model's family and files."""

    #: The family changed (its fields were rebuilt).
    family_changed = Signal()

    def __init__(
        self, parent: QWidget | None = None, last: ModelSpec | None = None, upscalers_only: bool = False
    ) -> None:
        super().__init__(parent)
        self._last = last
        self.families = importable_families(upscalers_only)
        self.family = QComboBox()
        for fam in self.families:
            self.family.addItem(fam.import_label or fam.label, fam.kind)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.addRow("Kind of model", self.family)
        self.fields: list[RoleField] = []
        start = next((i for i, f in enumerate(self.families) if last is not None and f.kind == last.kind), 0)
        self.family.setCurrentIndex(start)
        self.family.currentIndexChanged.connect(self._build_fields)
        self._build_fields()

    def current_family(self) -> ModelFamily:
        return self.families[max(0, self.family.currentIndex())]

    def set_family(self, kind: str) -> None:
        index = self.family.findData(kind)
        if index >= 0:
            self.family.setCurrentIndex(index)

    def _build_fields(self) -> None:
        while self.form.rowCount() > 1:  # row 0 is the family list
            self.form.removeRow(1)
        fam = self.current_family()
        known = self._last.paths if self._last is not None and self._last.kind == fam.kind else {}
        self.fields = [RoleField(role, str(known.get(role.key, ""))) for role in fam.roles]
        for f in self.fields:
            self.form.addRow(f.role.label, f)
        self.family_changed.emit()

    def files(self) -> dict[str, Path]:
        return {f.role.key: f.path() for f in self.fields}

    def problem(self) -> str:
        """What is wrong with the chosen files in words (the family's torch-free check), or "" when nothing is."""
        fam = self.current_family()
        for f in self.fields:
            if not f.edit.text().strip():
                return f"Choose the {f.role.label.lower()}."
            try:
                fam.role_files(f.role, f.path())
            except ModelError as exc:
                return str(exc)
        return ""


class ChooseModelDialog(QDialog):
    """``last``: the model used last, whose family and files are proposed."""

    def __init__(self, parent: QWidget | None = None, last: ModelSpec | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a model")
        self.chooser = FamilyFiles(self, last, upscalers_only=True)
        self.family = self.chooser.family
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        self.chooser.family_changed.connect(lambda: self.error.setText(""))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.chooser)
        hint = QLabel("This loads the model for now. To keep it in the list, check its files later and compare it "
                      "with other models, import it in Model ▸ Models….")  # fmt: skip
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        lay.addWidget(hint)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(680, 230)

    @property
    def fields(self) -> list[RoleField]:
        return self.chooser.fields

    def current_family(self) -> ModelFamily:
        return self.chooser.current_family()

    def spec(self) -> ModelSpec:
        return self.current_family().spec(self.chooser.files())

    def _accept(self) -> None:
        problem = self.chooser.problem()
        self.error.setText(problem)
        if not problem:
            self.accept()
