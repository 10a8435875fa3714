"""Choose a PiSA-SR model: a Stable Diffusion 2.1-base folder plus an adapter file. Validation happens when the
worker loads it (that touches torch), so this dialog only checks that the paths exist."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
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

from ..engine.loader import ModelSpec


class ChooseModelDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, base: str = "", lora: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a model")
        self.base = QLineEdit(base)
        self.base.setPlaceholderText("folder with unet/, vae/, text_encoder/, tokenizer/")
        self.lora = QLineEdit(lora)
        self.lora.setPlaceholderText("pisa_sr.pkl or an adapter .safetensors with its .json")
        browse_base, browse_lora = QPushButton("Browse…"), QPushButton("Browse…")
        browse_base.clicked.connect(self._pick_base)
        browse_lora.clicked.connect(self._pick_lora)
        form = QFormLayout()
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.base, 1)
        row1.addWidget(browse_base)
        row2.addWidget(self.lora, 1)
        row2.addWidget(browse_lora)
        form.addRow("Stable Diffusion 2.1-base", row1)
        form.addRow("PiSA-SR adapters", row2)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(
            QLabel("PiSA-SR needs the Stable Diffusion 2.1-base model (diffusers layout) and the adapter file.")
        )
        lay.addLayout(form)
        hint = QLabel("This loads the model for now. To keep it in the list, check its files later and compare it "
                      "with other models, import it in Model ▸ Models….")  # fmt: skip
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        lay.addWidget(hint)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(640, 210)

    def _pick_base(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Stable Diffusion 2.1-base folder", self.base.text())
        if d:
            self.base.setText(d)

    def _pick_lora(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "PiSA-SR adapters", self.lora.text(), "Adapters (*.pkl *.safetensors)")
        if f:
            self.lora.setText(f)

    def spec(self) -> ModelSpec:
        return ModelSpec.pisa(self.base.text().strip(), self.lora.text().strip())

    def _accept(self) -> None:
        base, lora = Path(self.base.text().strip()), Path(self.lora.text().strip())
        if not base.is_dir():
            self.error.setText(f"{base}: not a folder")
        elif not lora.is_file():
            self.error.setText(f"{lora}: file not found")
        else:
            self.accept()
