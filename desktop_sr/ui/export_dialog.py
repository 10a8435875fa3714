"""Export options: format, bit depth, quality, and a file name suggested from a template. Never overwrites
without asking."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..imaging import FORMATS, SaveOptions
from ..target_size import DPI_POLICIES, TargetSize


def suggest_name(template: str, source: Path, scale: int, fmt: str) -> str:
    """Fill the name template ({stem}, {scale}) and add the format's extension; bad templates fall back."""
    try:
        stem = template.format(stem=source.stem, scale=scale)
    except (KeyError, IndexError, ValueError):
        stem = f"{source.stem}_x{scale}"
    stem = stem.replace("/", "_").replace("\\", "_").strip() or f"{source.stem}_x{scale}"
    return stem + FORMATS[fmt]


class ExportDialog(QDialog):
    """``target`` and ``size``: a target size and the exact pixels it gives for this photo (the render is at the
    next model scale up and is resampled on saving)."""

    def __init__(self, parent: QWidget | None, source: Path, scale: int, folder: str, fmt: str = "png",
                 bit_depth: int = 8, quality: int = 95, template: str = "{stem}_x{scale}",
                 target: TargetSize | None = None, size: tuple[int, int] | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Save result as")
        self.source, self.scale_factor, self.template = source, scale, template
        self.size_target, self.size = target, size
        if target is not None and template == "{stem}_x{scale}":
            template = "{stem}_" + target.label
        self.format = QComboBox()
        for label, key in (("PNG", "png"), ("JPEG", "jpeg"), ("WebP", "webp"), ("TIFF", "tiff")):
            self.format.addItem(label, key)
        self.format.setCurrentIndex(max(0, self.format.findData(fmt)))
        self.depth = QComboBox()
        self.depth.addItem("8 bit", 8)
        self.depth.addItem("16 bit", 16)
        self.depth.setCurrentIndex(1 if bit_depth == 16 else 0)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(quality)
        self.dpi_policy = QComboBox()
        for label, key in (("Keep the print size (DPI grows with the scale)", DPI_POLICIES[0]),
                           ("Keep the DPI (prints larger)", DPI_POLICIES[1])):  # fmt: skip
            self.dpi_policy.addItem(label, key)
        if target is not None and target.kind == "print":
            self.dpi_policy.setEnabled(False)
            self.dpi_policy.setToolTip(f"A print size writes its own DPI: {target.dpi:g}")
        self.path = QLineEdit(str(Path(folder or source.parent) / suggest_name(template, source, scale, fmt)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Bit depth", self.depth)
        form.addRow("Quality", self.quality)
        form.addRow("DPI", self.dpi_policy)
        if size is not None:
            form.addRow("Size", QLabel(f"{size[0]} × {size[1]} px ({target.describe() if target else ''})"))
        form.addRow("File", row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()
        self.resize(560, 160)

    def fmt(self) -> str:
        return str(self.format.currentData())

    def _format_changed(self) -> None:
        fmt = self.fmt()
        self.depth.setEnabled(fmt in ("png", "tiff"))
        self.quality.setEnabled(fmt in ("jpeg", "webp"))
        p = Path(self.path.text())
        self.path.setText(str(p.with_suffix(FORMATS[fmt])))

    def _browse(self) -> None:
        f, _ = QFileDialog.getSaveFileName(self, "Save result as", self.path.text())
        if f:
            self.path.setText(f)

    def options(self) -> SaveOptions:
        fmt = self.fmt()
        depth = int(self.depth.currentData()) if fmt in ("png", "tiff") else 8
        target = self.size_target
        dpi = target.dpi if target is not None and target.kind == "print" else None
        return SaveOptions(format=fmt, bit_depth=depth, quality=self.quality.value(), size=self.size, dpi=dpi,
                           dpi_policy=str(self.dpi_policy.currentData()))  # fmt: skip

    def target(self) -> Path:
        return Path(self.path.text().strip())

    def _accept(self) -> None:
        target = self.target()
        if target.resolve() == self.source.resolve():
            QMessageBox.warning(self, "Save result as", "That is the original photo. Choose another name.")
            return
        if target.exists():
            answer = QMessageBox.question(self, "Replace file?", f"{target} exists. Replace it?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.accept()
