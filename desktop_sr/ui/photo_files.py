"""Photos into the window and results out of it: File ▸ Open, the recent files, the sample photo, Save result as.

A collaborator of the main window, apart from it so the window is wiring: the dialogs and the settings they
remember (last folder, recent files, the export choices) are here; opening and saving themselves are the editor
model's intents (``open_photo``, ``export``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStatusBar, QWidget

from ..editor import EditorModel
from ..imaging import SUPPORTED_READ_EXTENSIONS, SaveOptions
from ..settings import Settings
from .export_dialog import ExportDialog
from .size_choice import SizeChoice


class PhotoFiles(QObject):
    """``parent``: the window the dialogs belong to; ``size``: the output size chosen (a target decides the save
    dialog's size); ``bar``: where a missing sample photo is said."""

    #: The recent files changed (File ▸ Open recent follows ``settings.recent_files``).
    recent_changed = Signal()

    def __init__(
        self, parent: QWidget, editor: EditorModel, settings: Settings, size: SizeChoice, bar: QStatusBar
    ) -> None:
        super().__init__(parent)
        self.parent_widget, self.editor, self.settings, self.size, self.bar = parent, editor, settings, size, bar

    # -- in -----------------------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(SUPPORTED_READ_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(
            self.parent_widget, "Open photo", self.settings.last_folder, f"Photos ({patterns})"
        )
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, *, remember: bool = True) -> None:
        """Open a photo; ``remember=False`` keeps it out of the recent files and the last folder (the sample)."""
        path = Path(path)
        if remember:
            self.settings.last_folder = str(path.parent)
            self.settings.add_recent(path)
            self.recent_changed.emit()
        self.editor.open_photo(path)

    def open_sample(self) -> None:
        """Open the sample photo shipped with the app (an incomplete install says so instead)."""
        from ..resources import sample_photo_path

        try:
            self.open_path(sample_photo_path(), remember=False)
        except FileNotFoundError as exc:
            self.bar.showMessage(str(exc), 10000)

    # -- out ----------------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        """File ▸ Save result as: the save dialog with last time's choices; the choices made are remembered."""
        editor, s = self.editor, self.settings
        if editor.photo is None or editor.model_info is None:
            return
        if self.size.problem():
            QMessageBox.warning(self.parent_widget, "Save result as", self.size.problem())
            return
        plan = self.size.plan()
        photo = editor.photo
        depth = 16 if photo.info.get("raw") else (s.export_bit_depth or None)  # RAW results default to 16 bits
        dlg = ExportDialog(self.parent_widget, photo.source, editor.params.scale, s.export_folder, s.export_format,
                           depth, s.export_quality, s.name_template, target=self.size.target(),
                           size=plan.size if plan is not None and plan.resample else None,
                           keep_metadata=s.export_keep_metadata,
                           transparency=editor.photo_has_transparency())  # fmt: skip
        if dlg.exec():
            target = dlg.target()
            self.export_to(target, dlg.options())
            s.export_format, s.export_quality = dlg.fmt(), dlg.quality.value()
            s.export_bit_depth = int(dlg.depth.currentData() or 0)  # 0: as the source
            s.export_keep_metadata, s.export_folder = dlg.keep_meta.isChecked(), str(target.parent)

    def export_to(self, path: Path, options: SaveOptions) -> None:
        self.editor.export(path, options)
