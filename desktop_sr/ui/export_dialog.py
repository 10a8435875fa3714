"""Save the result: the output options shared with the batch dialog (format, bit depth, quality, keep metadata;
:mod:`desktop_sr.ui.output_options`), the DPI policy, and an absolute file path proposed next to the photo or in the
folder saved to last. Never overwrites without asking; says before saving when transparency will be flattened."""

from __future__ import annotations

from dataclasses import replace
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
    QVBoxLayout,
    QWidget,
)

from ..imaging import FORMATS, SaveOptions
from ..imaging.preflight import writable_home_for
from ..target_size import DPI_POLICIES, TargetKind, TargetSize
from .output_options import DEEP, OutputOptions


def suggest_name(template: str, source: Path, scale: int, fmt: str) -> str:
    """Fill the name template ({stem}, {scale}) and add the format's extension; bad templates fall back."""
    try:
        stem = template.format(stem=source.stem, scale=scale)
    except (KeyError, IndexError, ValueError):
        stem = f"{source.stem}_x{scale}"
    stem = stem.replace("/", "_").replace("\\", "_").strip() or f"{source.stem}_x{scale}"
    return stem + FORMATS[fmt]


def proposed_folder(source: Path, folder: str | Path | None) -> Path:
    """Where the save dialog proposes to save: ``folder`` (the one saved to last) if it still exists, else the
    photo's own folder (or Pictures, see :func:`writable_home_for`); always absolute, so the file lands where the
    dialog says whatever the working folder."""
    if folder and Path(folder).expanduser().is_dir():
        return Path(folder).expanduser().absolute()
    return writable_home_for(source)  # not inside the app's own files (the sample photo), nor a read-only folder


class ExportDialog(QDialog):
    """``folder``: the folder saved to last (empty: next to the photo). ``target`` and ``size``: a target size and
    the exact pixels it gives for this photo (the render is at the next model scale up and is resampled on saving).
    ``transparency``: the photo has transparent pixels (a format without alpha says it will flatten them)."""

    def __init__(self, parent: QWidget | None, source: Path, scale: int, folder: str, fmt: str = "png",
                 bit_depth: int | None = 8, quality: int = 95, template: str = "{stem}_x{scale}",
                 target: TargetSize | None = None, size: tuple[int, int] | None = None, keep_metadata: bool = True,
                 transparency: bool = False) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Save result as")
        self.source, self.scale_factor, self.template = source, scale, template
        self.size_target, self.size = target, size
        if target is not None and template == "{stem}_x{scale}":
            template = "{stem}_" + target.label
        self.output = OutputOptions(self, fmt=fmt, bit_depth=bit_depth, quality=quality, keep_metadata=keep_metadata)
        self.output.set_transparency(transparency)
        self.format, self.depth, self.quality = self.output.format, self.output.depth, self.output.quality
        self.keep_meta = self.output.keep_meta
        self.dpi_policy = QComboBox()
        for label, key in (("Keep the print size (DPI grows with the scale)", DPI_POLICIES[0]),
                           ("Keep the DPI (prints larger)", DPI_POLICIES[1])):  # fmt: skip
            self.dpi_policy.addItem(label, key)
        if target is not None and target.kind is TargetKind.PRINT:
            self.dpi_policy.setEnabled(False)
            self.dpi_policy.setToolTip(f"A print size writes its own DPI: {target.dpi:g}")
        self.folder = proposed_folder(source, folder)
        self.path = QLineEdit(str(self.folder / suggest_name(template, source, scale, fmt)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Output", self.output)
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
        self.resize(640, 200)

    def fmt(self) -> str:
        return str(self.format.currentData())

    def _format_changed(self) -> None:
        p = Path(self.path.text())
        self.path.setText(str(p.with_suffix(FORMATS[self.fmt()])))

    def _browse(self) -> None:
        f, _ = QFileDialog.getSaveFileName(self, "Save result as", self.path.text())
        if f:
            self.path.setText(f)

    def options(self) -> SaveOptions:
        target = self.size_target
        dpi = target.dpi if target is not None and target.kind is TargetKind.PRINT else None
        options = self.output.save_options(size=self.size, dpi=dpi, dpi_policy=str(self.dpi_policy.currentData()))
        if self.fmt() not in DEEP:
            options = replace(options, bit_depth=8)  # JPEG and WebP are 8 bit whatever the depth box says
        return options

    def target(self) -> Path:
        """The file to write, absolute (a relative name typed in is taken next to the proposed folder)."""
        path = Path(self.path.text().strip()).expanduser()
        return path if path.is_absolute() else self.folder / path

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
