"""The model manager: a table of models (name, kind, size, location, status) with Import…, Download…, Verify,
Remove and Set default. Everything it does comes from the Qt-free :mod:`desktop_sr.models`, so the dialog and
``desktop-sr models`` always agree.

Long operations (hashing or copying gigabytes, downloads) run as :class:`StoreTask` jobs on the GUI's one background
relay (:mod:`desktop_sr.ui.relay`). One operation runs at a time; Cancel stops it between chunks, and a cancelled
import leaves nothing behind (the store stages imports and registers them last).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine.control import Control
from ..engine.errors import ModelError
from ..engine.families import ModelFamily, family, family_for
from ..models import BUILTIN_ID, INCOMPLETE, ModelRow, ModelStore
from ..models.download import BASE_REPO, download_model, normalise_sha256
from ..models.files import human_size
from ..models.paths import models_dir, models_dir_source
from .model_dialog import FamilyFiles, RoleField
from .relay import BackgroundRelay, Task

log = logging.getLogger(__name__)
COLUMNS = ("Name", "Kind", "Size", "Location", "Status")
STATUS_TIPS = {
    "ok": "The files are as they were imported (sizes and times; Verify re-hashes them).",
    "missing": "Some files are gone (a moved folder or an unplugged drive?). The model cannot be used.",
    "modified": "Some files changed since import. Verify checks their sha256.",
    "incomplete": "An import that did not finish. Remove it and import again.",
    "built-in": "Installed with the app.",
}


class StoreWork(str, Enum):
    """What a :class:`StoreTask` does: the dialogs word their progress, results and failures by it. A ``str`` enum
    whose value is the word the messages use ("The download is still running", "Import cancelled")."""

    IMPORT = "import"
    DOWNLOAD = "download"
    VERIFY = "verify"

    def __str__(self) -> str:
        return self.value  # the word in messages (Python 3.11 formats mixed-in enums by name)

    @property
    def heading(self) -> str:
        """The word as a dialog title or a sentence's start: "Download"."""
        return self.value.capitalize()


@dataclass(frozen=True)
class StoreTask(Task):
    """One model-store operation (``kind``: import, download or verify); ``work(control)`` runs on the relay's
    thread and reports its bytes to ``control``, which the store checks for cancel between chunks."""

    kind: StoreWork
    work: Callable[[Control], object] = field(compare=False)


def close_store_dialog(
    dialog: QDialog,
    runner: BackgroundRelay,
    task: StoreTask | None,
    event: QCloseEvent,
    title: str,
    what: str,
) -> None:
    """Close a dialog that runs store work: while it runs, ask first; yes cancels it (the store stops within a
    chunk) and waits. Shared by the model manager and Get PiSA-SR."""
    if runner.busy:
        name = task.kind if task is not None else what
        answer = QMessageBox.question(dialog, title, f"The {name} is still running. Cancel it and close?")
        if answer != QMessageBox.StandardButton.Yes:
            event.ignore()
            return
        if not runner.stop(30.0):
            log.warning("the %s did not stop within 30 s; leaving it to finish in the background", name)
    event.accept()
    dialog.done(QDialog.DialogCode.Rejected)


def run_store_task(task: StoreTask, control: Control) -> object:
    return task.work(control)


class StoreWorkHost:
    """What a dialog that runs :class:`StoreTask` work on its ``runner`` shows while it runs: the busy bar (bytes
    when the total is known, indeterminate otherwise), Cancel and the status line. Shared by the model manager and
    Get PiSA-SR; each has ``runner``, ``task``, ``progress_bar``, ``btn_cancel``, ``status`` and ``_set_busy``."""

    runner: BackgroundRelay
    task: StoreTask | None
    progress_bar: QProgressBar
    btn_cancel: QPushButton
    status: QLabel

    def _set_busy(self, busy: bool, label: str = "") -> None:
        raise NotImplementedError

    def _show_busy(self, busy: bool, label: str = "") -> None:
        self.progress_bar.setVisible(busy)
        self.btn_cancel.setVisible(busy)
        self.btn_cancel.setEnabled(busy)
        if busy:
            self.progress_bar.setRange(0, 0)
            self.status.setText(label)

    def _start(self, task: StoreTask, label: str) -> bool:
        if self.runner.busy:
            return False
        self.task = task
        self.runner.submit(task)
        self._set_busy(True, label)
        return True

    def cancel_task(self) -> None:
        self.runner.cancel()
        self.btn_cancel.setEnabled(False)
        self.status.setText("Cancelling…")

    def _progress(self, done: int, total: int, label: str) -> None:
        if total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * min(done, total) / total))
            self.progress_bar.setFormat(f"%p%  ({human_size(done)} of {human_size(total)})")
        else:
            self.progress_bar.setRange(0, 0)
        self.status.setText(label)


class ImportDialog(QDialog):
    """Pick a model's files, role by role as its family declares them (an upscaler file; or an SD-2.1-base folder
    and an adapter), and copy them into the models folder or use them in place."""

    def __init__(self, parent: QWidget | None = None, start_folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a model")
        self.start_folder = start_folder
        self.chooser = FamilyFiles(self)
        self.family = self.chooser.family
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: the file's name")
        self.copy = QRadioButton("Copy into the models folder (the originals can then be moved or deleted)")
        self.reference = QRadioButton("Use the files where they are (nothing is copied; they must stay there)")
        self.reference_folders = QRadioButton("Use the folder where it is, copy the files (saves about 5 GB)")
        self.copy.setChecked(True)
        group = QButtonGroup(self)
        for b in (self.copy, self.reference, self.reference_folders):
            group.addButton(b)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        self.about = QLabel("")
        self.about.setWordWrap(True)
        self.about.setStyleSheet("color: gray")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.chooser)
        name_row = QFormLayout()
        name_row.addRow("Name", self.name)
        lay.addLayout(name_row)
        for b in (self.copy, self.reference, self.reference_folders):
            lay.addWidget(b)
        lay.addWidget(self.about)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.chooser.family_changed.connect(self._family_changed)
        self._family_changed()
        self.resize(700, 280)

    @property
    def fields(self) -> list[RoleField]:
        return self.chooser.fields

    def current_family(self) -> ModelFamily:
        return self.chooser.current_family()

    def set_family(self, kind: str) -> None:
        self.chooser.set_family(kind)

    def _family_changed(self) -> None:
        """The storage choices and the licence line follow the family (a folder to reference: PiSA-SR's base)."""
        fam = self.current_family()
        has_folder = any(r.folder for r in fam.roles) and any(not r.folder for r in fam.roles)
        self.reference_folders.setVisible(has_folder)
        if not has_folder and self.reference_folders.isChecked():
            self.copy.setChecked(True)
        self.about.setText(fam.capabilities.licence_note)
        self.error.setText("")

    def field(self, role: str) -> RoleField:
        return next(f for f in self.fields if f.role.key == role)

    def files(self) -> dict[str, Path]:
        return self.chooser.files()

    def modes(self) -> dict[str, str]:
        """The storage of each role for :meth:`ModelStore.import_model`."""
        fam = self.current_family()
        if self.reference.isChecked():
            return {r.key: "reference" for r in fam.roles}
        if self.reference_folders.isChecked():
            return {r.key: "reference" if r.folder else "copy" for r in fam.roles}
        return {r.key: "copy" for r in fam.roles}

    def _accept(self) -> None:
        problem = self.chooser.problem()
        self.error.setText(problem)
        if not problem:
            self.accept()


class DownloadDialog(QDialog):
    """Where to download from: the base model's Hub repository (or a local base folder) and the adapter's URL."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download a PiSA-SR model")
        self.repo = QLineEdit(BASE_REPO)
        self.repo.setToolTip("Hugging Face Hub repository of Stable Diffusion 2.1-base in diffusers layout")
        self.revision = QLineEdit()
        self.revision.setPlaceholderText("main")
        self.local_base = QLineEdit()
        self.local_base.setPlaceholderText("optional: a local SD-2.1-base folder instead of downloading it")
        pick = QPushButton("Browse…")
        pick.clicked.connect(self._pick_base)
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://…/pisa_sr.pkl")
        self.sha256 = QLineEdit()
        self.sha256.setPlaceholderText("64 hexadecimal digits (strongly recommended)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: the adapter's file name")
        form = QFormLayout()
        form.addRow("Base model repository", self.repo)
        form.addRow("Revision", self.revision)
        row = QHBoxLayout()
        row.addWidget(self.local_base, 1)
        row.addWidget(pick)
        form.addRow("…or local base folder", row)
        form.addRow("Adapter URL", self.url)
        form.addRow("Adapter sha256", self.sha256)
        form.addRow("Name", self.name)
        note = QLabel("Downloads resume where they stopped: cancel or lose the connection, then download again. "
                      "The base model is about 2.6 GB.")  # fmt: skip
        note.setWordWrap(True)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Download")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(680, 300)

    def _pick_base(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Stable Diffusion 2.1-base folder", self.local_base.text())
        if d:
            self.local_base.setText(d)

    def _accept(self) -> None:
        url = self.url.text().strip()
        try:
            normalise_sha256(self.sha256.text())
        except ModelError as exc:
            self.error.setText(f"sha256: {exc.reason}")
            return
        if not url.lower().startswith(("http://", "https://")):
            self.error.setText("The adapter URL must start with http:// or https://")
        elif not self.local_base.text().strip() and not self.repo.text().strip():
            self.error.setText("Give the base model's repository or a local base folder.")
        elif self.local_base.text().strip() and not Path(self.local_base.text().strip()).is_dir():
            self.error.setText(f"{self.local_base.text().strip()}: not a folder")
        else:
            self.accept()


class ModelManagerDialog(StoreWorkHost, QDialog):
    """Lists the models of the models folder and runs the store's operations, long ones on a worker thread.

    ``default_changed`` carries the new default's :class:`ModelSpec` (or None when cleared) so the main window can
    load it; ``models_dir_changed`` carries a new models folder for the app's settings.
    """

    default_changed = Signal(object)
    models_dir_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, models_dir_setting: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setting = models_dir_setting
        self.store = ModelStore(models_dir(models_dir_setting))
        self.rows: list[ModelRow] = []
        self.runner = BackgroundRelay(run_store_task, name="models", parent=self, poll_ms=30)
        self.runner.progress.connect(lambda _task, done, total, label: self._progress(done, total, label))
        self.runner.result.connect(lambda task, result: self._task_done(task.kind, result))
        self.runner.failed.connect(lambda task, message: self._task_failed(task.kind, message))
        self.runner.cancelled.connect(lambda task: self._task_cancelled(task.kind))
        self.task: StoreTask | None = None  # the operation running now
        self._build()
        try:
            if self.store.root.is_dir():
                self.store.cleanup()  # staging folders of imports killed earlier
        except OSError as exc:
            log.warning("cannot clean %s: %s", self.store.root, exc)
        self.refresh()

    # -- construction ---------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.lbl_folder = QLabel("")
        self.lbl_folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.btn_folder = QPushButton("Change folder…")
        self.btn_folder.clicked.connect(self.choose_folder)
        top = QHBoxLayout()
        top.addWidget(self.lbl_folder, 1)
        top.addWidget(self.btn_folder)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        for i in range(len(COLUMNS)):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.set_default_selected())

        self.btn_import = QPushButton("Import…")
        self.btn_import.setToolTip("Add PiSA-SR from a Stable Diffusion 2.1-base folder and an adapter file")
        self.btn_download = QPushButton("Download…")
        self.btn_download.setToolTip("Download the base model from the Hugging Face Hub and the adapter from a URL")
        self.btn_verify = QPushButton("Verify")
        self.btn_verify.setToolTip("Re-hash the files and compare with the sha256 recorded at import")
        self.btn_remove = QPushButton("Remove")
        self.btn_remove.setToolTip("Remove from the list; copied files are deleted, referenced files are kept")
        self.btn_default = QPushButton("Set default")
        self.btn_default.setToolTip("Use this model when the app starts and for the command line")
        self.btn_close = QPushButton("Close")
        self.btn_import.clicked.connect(self.import_dialog)
        self.btn_download.clicked.connect(self.download_dialog)
        self.btn_verify.clicked.connect(self.verify_selected)
        self.btn_remove.clicked.connect(self.remove_selected)
        self.btn_default.clicked.connect(self.set_default_selected)
        self.btn_close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for b in (self.btn_import, self.btn_download, self.btn_verify, self.btn_remove, self.btn_default):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.btn_close)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.clicked.connect(self.cancel_task)
        busy = QHBoxLayout()
        busy.addWidget(self.progress_bar, 1)
        busy.addWidget(self.btn_cancel)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addLayout(busy)
        lay.addWidget(self.status)
        self._set_busy(False)
        self.resize(900, 420)

    # -- table ----------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the store and fill the table, keeping the selection."""
        keep = self.selected_id()
        source = models_dir_source(self.setting)
        self.lbl_folder.setText(f"Models folder: {self.store.root}")
        env_fixed = source == "environment"
        self.btn_folder.setEnabled(not env_fixed and not self.runner.busy)
        tip = "Keep models in another folder (models already imported stay where they are)"
        self.btn_folder.setToolTip("Set by the DESKTOP_SR_MODELS_DIR environment variable" if env_fixed else tip)
        try:
            self.rows = self.store.rows()
        except ModelError as exc:
            self.rows = []
            self.status.setText(str(exc))
        self.table.setRowCount(len(self.rows))
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(self.rows):
            name = f"★ {row.name}" if row.is_default else row.name
            cells = (name, row.kind, human_size(row.size), row.location, row.status)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.id)
                if row.is_default:
                    item.setFont(bold)
                tip = row.detail or STATUS_TIPS.get(row.status, "")
                about = f"{row.id}: {row.about}" if row.about else row.id
                item.setToolTip(f"{about}\n{tip}".strip() if c == 0 else (tip if c == 4 else text))
                self.table.setItem(r, c, item)
        if keep is not None:
            self.select(keep)
        self._update_buttons()

    def select(self, ident: str) -> bool:
        for r, row in enumerate(self.rows):
            if row.id == ident:
                self.table.selectRow(r)
                return True
        return False

    def selected_row(self) -> ModelRow | None:
        items = self.table.selectedItems()
        if not items:
            return None
        r = items[0].row()
        return self.rows[r] if 0 <= r < len(self.rows) else None

    def selected_id(self) -> str | None:
        row = self.selected_row()
        return row.id if row else None

    def _update_buttons(self) -> None:
        row = self.selected_row()
        idle = not self.runner.busy
        builtin = row is not None and row.id == BUILTIN_ID
        self.btn_import.setEnabled(idle)
        self.btn_download.setEnabled(idle)
        self.btn_verify.setEnabled(idle and row is not None and row.status != INCOMPLETE)  # the built-in one too
        self.btn_remove.setEnabled(idle and row is not None and not builtin)
        self.btn_default.setEnabled(idle and row is not None and row.usable and not row.is_default)

    def _set_busy(self, busy: bool, label: str = "") -> None:
        self._show_busy(busy, label)
        self.btn_folder.setEnabled(not busy and models_dir_source(self.setting) != "environment")
        self._update_buttons()

    # -- actions --------------------------------------------------------------------------------------------------
    def import_dialog(self) -> None:
        dlg = ImportDialog(self)
        if dlg.exec():
            self.start_import(dlg.files(), name=dlg.name.text().strip(), mode=dlg.modes(),
                              kind=dlg.current_family().kind)  # fmt: skip

    def start_import(
        self,
        *files: str | Path | Mapping[str, str | Path],
        name: str = "",
        mode: str | Mapping[str, str] = "copy",
        kind: str | None = None,
    ) -> bool:
        """Import in the background: ``files`` by role (one mapping) with ``kind``, or role-less paths whose family
        is recognised (``start_import(upscaler_file)``, ``start_import(sd21_folder, adapter)``)."""
        store = self.store
        if len(files) == 1 and isinstance(files[0], Mapping):
            roles = {k: Path(v) for k, v in files[0].items()}
            fam = family(kind) if kind else None
        else:
            paths = [Path(p) for p in files]  # type: ignore[arg-type]
            fam = family(kind) if kind else family_for(paths)
            roles = fam.claims(paths) if fam is not None else None
        if fam is None or not roles:
            self.status.setText("Not a model this app can import")
            return False

        def work(control: Control) -> object:
            return store.import_model(fam.kind, roles, name=name, mode=mode, control=control)

        return self._start(StoreTask(StoreWork.IMPORT, work), f"Importing {list(roles.values())[-1].name}…")

    def download_dialog(self) -> None:
        dlg = DownloadDialog(self)
        if dlg.exec():
            self.start_download(
                dlg.url.text().strip(), sha256=dlg.sha256.text().strip() or None, repo_id=dlg.repo.text().strip(),
                revision=dlg.revision.text().strip() or None, base_dir=dlg.local_base.text().strip() or None,
                name=dlg.name.text().strip(),
            )  # fmt: skip

    def start_download(
        self,
        url: str,
        *,
        sha256: str | None = None,
        repo_id: str = BASE_REPO,
        revision: str | None = None,
        base_dir: str | Path | None = None,
        name: str = "",
    ) -> bool:
        store = self.store

        def work(control: Control) -> object:
            return download_model(store, url, adapter_sha256=sha256, repo_id=repo_id, revision=revision,
                                  base_dir=base_dir, name=name, control=control)  # fmt: skip

        return self._start(StoreTask(StoreWork.DOWNLOAD, work), "Downloading…")

    def verify_selected(self) -> bool:
        row = self.selected_row()
        if row is None:
            return False
        store, ident = self.store, row.id
        verify = StoreTask(StoreWork.VERIFY, lambda control: store.verify(ident, control=control))
        return self._start(verify, f"Verifying {row.name}…")

    def remove_selected(self) -> bool:
        row = self.selected_row()
        if row is None or row.id == BUILTIN_ID or self.runner.busy:
            return False
        if row.storage == "reference":
            what = "Its files are not deleted: they stay where they are."
        elif row.status == INCOMPLETE or row.storage == "copy":
            what = f"Its folder {row.location} ({human_size(row.size)}) will be deleted."
        else:
            what = "The copied files in the models folder are deleted; referenced files stay where they are."
        answer = QMessageBox.question(self, "Remove model", f"Remove “{row.name}”?\n\n{what}")
        if answer != QMessageBox.StandardButton.Yes:
            return False
        try:
            result = self.store.remove(row.id)
        except ModelError as exc:
            self.status.setText(str(exc))
            QMessageBox.warning(self, "Remove model", str(exc))
            self.refresh()
            return False
        freed = f", {human_size(result.freed)} freed" if result.deleted else ""
        self.status.setText(f"Removed {result.name}{freed}.")
        self.refresh()
        if row.is_default:
            self.default_changed.emit(self._effective_default_spec())
        return True

    def set_default_selected(self) -> bool:
        row = self.selected_row()
        if row is None or not row.usable or self.runner.busy:
            return False
        try:
            self.store.set_default(row.id)
            spec = self.store.spec_for(row.id)
        except ModelError as exc:
            self.status.setText(str(exc))
            self.refresh()
            return False
        self.status.setText(f"{row.name} is now the default model.")
        self.refresh()
        self.default_changed.emit(spec)
        return True

    def _effective_default_spec(self) -> object:
        try:
            spec = self.store.default_spec()
            if spec is None and any(r.id == BUILTIN_ID for r in self.rows):
                spec = self.store.spec_for(BUILTIN_ID)
            return spec
        except ModelError:
            return None

    def choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Models folder", str(self.store.root))
        if d:
            self.set_models_dir(d)

    def set_models_dir(self, path: str | Path) -> None:
        """Use another models folder from now on (the app saves it as a setting); nothing is moved."""
        self.setting = str(path)
        self.store = ModelStore(models_dir(self.setting))
        self.status.setText(f"Models folder: {self.store.root}. Models imported elsewhere stay where they are.")
        self.refresh()
        self.models_dir_changed.emit(self.setting)

    # -- worker ---------------------------------------------------------------------------------------------------
    def _task_done(self, name: StoreWork, result: object) -> None:
        self._set_busy(False)
        if name is StoreWork.VERIFY:
            ok = getattr(result, "ok", False)
            summary = result.summary() if hasattr(result, "summary") else str(result)
            self.status.setText(summary)
            if not ok:
                QMessageBox.warning(self, "Verify", summary)
        else:
            entry_id = getattr(result, "id", "")
            verb = "Imported" if name is StoreWork.IMPORT else "Downloaded and imported"
            self.status.setText(f"{verb} {getattr(result, 'name', entry_id)}. Press Set default to use it.")
            self.refresh()
            if entry_id:
                self.select(entry_id)
            return
        self.refresh()

    def _task_failed(self, name: StoreWork, message: str) -> None:
        self._set_busy(False)
        self.status.setText(message)
        self.refresh()
        QMessageBox.warning(self, name.heading, message)

    def _task_cancelled(self, name: StoreWork) -> None:
        self._set_busy(False)
        kept = " The partial download is kept: download again to resume." if name is StoreWork.DOWNLOAD else ""
        self.status.setText(f"{name.heading} cancelled; nothing was changed.{kept}")
        self.refresh()

    # -- closing --------------------------------------------------------------------------------------------------
    def reject(self) -> None:
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        close_store_dialog(self, self.runner, self.task, event, "Models", "operation")
