"""Model ▸ Get PiSA-SR…: the two things PiSA-SR needs, where each comes from, and the import, step by step.

Everything it knows comes from :mod:`desktop_sr.models.get_pisa` (the same as ``desktop-sr models get-pisa``):
1. Stable Diffusion 2.1-base: downloaded from the Hub when online (resumable; checked), or a folder the user has;
2. the authors' adapter ``pisa_sr.pkl``: published on Google Drive and Baidu Netdisk only, so the dialog links there
   and imports the file the user saved (its layout checked by the engine, its sha256 recorded);
3. offline: exactly which two things to copy where, after which the dialog finds them on its own.

The download and the import run on a :class:`~desktop_sr.ui.relay.BackgroundRelay` thread (the import loads the
adapter with torch to check it); the dialog only shows progress and can cancel.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.control import Control
from ..models.files import human_size
from ..models.get_pisa import (
    ADAPTER_FILE,
    ADAPTER_SOURCES,
    BASE_URL,
    PROJECT_URL,
    Imported,
    import_model,
    offline,
    offline_instructions,
    staging,
)
from ..models.paths import models_dir
from ..models.registry import ModelStore
from .model_manager_dialog import StoreTask, StoreWork, StoreWorkHost, close_store_dialog, run_store_task
from .relay import BackgroundRelay

log = logging.getLogger(__name__)
OK, MISSING = "✔", "✘"
GUI_THEN = "Then open Model ▸ Get PiSA-SR… again: it finds them (or run: desktop-sr models get-pisa)"


def _link(label: str, url: str) -> str:
    return f'<a href="{url}">{label}</a>'


class GetPisaDialog(StoreWorkHost, QDialog):
    """``imported`` carries the new model's spec (or None) when an import made it the default."""

    imported = Signal(object)

    def __init__(self, parent: QWidget | None = None, models_dir_setting: str = "", *, online: bool | None = None):
        """``online``: whether the Hub may be contacted (default: not when ``HF_HUB_OFFLINE`` says so)."""
        super().__init__(parent)
        self.setWindowTitle("Get PiSA-SR")
        self.store = ModelStore(models_dir(models_dir_setting))
        self.stage = staging(self.store.root)
        self.online = (not offline()) if online is None else online
        self.result_: Imported | None = None
        self.task: StoreTask | None = None
        self.runner = BackgroundRelay(run_store_task, name="get-pisa", parent=self, poll_ms=30)
        self.runner.progress.connect(lambda _t, done, total, label: self._progress(done, total, label))
        self.runner.result.connect(lambda task, value: self._done(task.kind, value))
        self.runner.failed.connect(lambda task, message: self._failed(task.kind, message))
        self.runner.cancelled.connect(lambda task: self._cancelled(task.kind))
        self._build()
        self.refresh()
        self.resize(760, 560)

    # -- construction ---------------------------------------------------------------------------------------------
    def _build(self) -> None:
        intro = QLabel(
            "PiSA-SR is Stable Diffusion 2.1-base plus the authors' adapter file. Neither can ship with the app: "
            f"get both once, here. ({_link('the PiSA-SR project', PROJECT_URL)})"
        )
        intro.setWordWrap(True)
        intro.setOpenExternalLinks(True)

        # 1. the base
        self.base_status = QLabel()
        self.base_status.setWordWrap(True)
        self.base_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.base_path = QLineEdit()
        self.base_path.setPlaceholderText("or a Stable Diffusion 2.1-base folder you already have")
        self.base_path.textChanged.connect(self.refresh)
        self.btn_base_pick = QPushButton("Choose folder…")
        self.btn_base_pick.clicked.connect(self._pick_base)
        self.btn_download = QPushButton("Download (about 5 GB)")
        self.btn_download.setToolTip(f"From {BASE_URL}, into {self.stage.base}; resumes after an interruption")
        self.btn_download.clicked.connect(self.start_download)
        row = QHBoxLayout()
        row.addWidget(self.base_path, 1)
        row.addWidget(self.btn_base_pick)
        row.addWidget(self.btn_download)
        base_box = QGroupBox("1. Stable Diffusion 2.1-base")
        bl = QVBoxLayout(base_box)
        bl.addWidget(self.base_status)
        bl.addLayout(row)

        # 2. the adapter
        links = " or ".join(_link(label, url) for label, url in ADAPTER_SOURCES)
        where = QLabel(
            f"The authors publish <b>{ADAPTER_FILE}</b> on {links} (the links of the project's README). "
            f"Save it from there, then choose the saved file."
        )
        where.setWordWrap(True)
        where.setOpenExternalLinks(True)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.adapter_status = QLabel()
        self.adapter_status.setWordWrap(True)
        self.adapter_path = QLineEdit()
        self.adapter_path.setPlaceholderText(f"the {ADAPTER_FILE} you saved")
        self.adapter_path.textChanged.connect(self.refresh)
        self.btn_adapter_pick = QPushButton("Choose file…")
        self.btn_adapter_pick.clicked.connect(self._pick_adapter)
        arow = QHBoxLayout()
        arow.addWidget(self.adapter_path, 1)
        arow.addWidget(self.btn_adapter_pick)
        adapter_box = QGroupBox(f"2. The PiSA-SR adapter ({ADAPTER_FILE})")
        al = QVBoxLayout(adapter_box)
        al.addWidget(where)
        al.addWidget(self.adapter_status)
        al.addLayout(arow)

        # 3. import
        self.make_default = QCheckBox("Use it as the default model")
        self.make_default.setChecked(True)
        self.btn_import = QPushButton("Import")
        self.btn_import.setToolTip("Check the adapter's layout, record its sha256 and add the model")
        self.btn_import.clicked.connect(self.start_import)
        irow = QHBoxLayout()
        irow.addWidget(self.make_default)
        irow.addStretch(1)
        irow.addWidget(self.btn_import)
        import_box = QGroupBox("3. Import")
        il = QVBoxLayout(import_box)
        il.addLayout(irow)

        # offline: the two copies
        self.offline_box = QGroupBox("Offline: what to copy where")
        self.offline_text = QPlainTextEdit(readOnly=True)
        self.offline_text.setMaximumHeight(130)
        ol = QVBoxLayout(self.offline_box)
        ol.addWidget(self.offline_text)

        self.progress_bar = QProgressBar()
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.clicked.connect(self.cancel_task)
        busy = QHBoxLayout()
        busy.addWidget(self.progress_bar, 1)
        busy.addWidget(self.btn_cancel)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.btn_close = QPushButton("Close")
        self.btn_close.clicked.connect(self.close)
        crow = QHBoxLayout()
        crow.addStretch(1)
        crow.addWidget(self.btn_close)

        lay = QVBoxLayout(self)
        # wrapped notes need their height at the dialog's width (Qt's minimum size does not ask them): narrower than
        # this, "Not chosen yet." overlapped the adapter's text
        self.setMinimumWidth(620)
        for w in (intro, base_box, adapter_box, import_box, self.offline_box):
            lay.addWidget(w)
        lay.addLayout(busy)
        lay.addWidget(self.status)
        lay.addStretch(1)
        lay.addLayout(crow)
        self._set_busy(False)

    # -- state ----------------------------------------------------------------------------------------------------
    def base(self) -> Path | None:
        """The base to import: the folder typed or chosen, else the staged (downloaded or copied) one."""
        text = self.base_path.text().strip()
        if text:
            return Path(text).expanduser()
        return self.stage.base if self.stage.has_base() else None

    def adapter(self) -> Path | None:
        text = self.adapter_path.text().strip()
        if text:
            return Path(text).expanduser()
        return self.stage.adapter if self.stage.has_adapter() else None

    def refresh(self) -> None:
        """Say what is here (chosen, or found where the offline instructions put it) and what to do next."""
        chosen_base, chosen_adapter = self.base_path.text().strip(), self.adapter_path.text().strip()
        if chosen_base:
            ok = Path(chosen_base).expanduser().is_dir()
            self.base_status.setText(f"{OK} Chosen: {chosen_base}" if ok else f"{MISSING} {chosen_base}: not a folder")
        elif self.stage.has_base():
            self.base_status.setText(f"{OK} Found in {self.stage.base}")
        elif self.online:
            self.base_status.setText(f"{MISSING} Not here yet: download it from {BASE_URL}, or choose a folder.")
        else:
            self.base_status.setText(f"{MISSING} Not here yet, and this machine is offline: copy it (see “Offline: "
                                     "what to copy where”), or choose a folder you have.")  # fmt: skip
        if not self.online:
            self.btn_download.setToolTip("Offline: copy the folder instead (see “Offline: what to copy where”)")
        if chosen_adapter:
            ok = Path(chosen_adapter).expanduser().is_file()
            self.adapter_status.setText(f"{OK} Chosen: {chosen_adapter}" if ok else
                                        f"{MISSING} {chosen_adapter}: file not found")  # fmt: skip
        elif self.stage.has_adapter():
            self.adapter_status.setText(f"{OK} Found in {self.stage.adapter}")
        else:
            self.adapter_status.setText(f"{MISSING} Not chosen yet.")
        missing = self.base() is None or self.adapter() is None
        self.offline_text.setPlainText(offline_instructions(self.stage, GUI_THEN, adapter=self.adapter()))
        self.offline_box.setVisible(not self.online and missing and self.result_ is None)
        self._update_buttons()
        self._fit_notes()

    def _fit_notes(self) -> None:
        """Never lower than the wrapped notes need at the narrowest width (Qt's minimum size does not ask them)."""
        lay = self.layout()
        if lay is not None and lay.hasHeightForWidth():
            self.setMinimumHeight(lay.totalHeightForWidth(self.minimumWidth()))

    def _update_buttons(self) -> None:
        idle = not self.runner.busy
        base, adapter = self.base(), self.adapter()
        ready = base is not None and adapter is not None
        self.btn_import.setEnabled(idle and ready and self.result_ is None)  # imported: once is enough
        why = [] if base is not None else ["the base (step 1)"]
        why += [] if adapter is not None else [f"{ADAPTER_FILE} (step 2)"]
        self.btn_import.setToolTip("Import needs " + " and ".join(why) if why else "Check the adapter and import")
        for b in (self.btn_base_pick, self.btn_adapter_pick, self.make_default):
            b.setEnabled(idle)
        self.btn_download.setEnabled(idle and self.online and not self.stage.has_base())

    def _set_busy(self, busy: bool, label: str = "") -> None:
        self._show_busy(busy, label)
        self._update_buttons()

    def _pick_base(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Stable Diffusion 2.1-base folder", self.base_path.text())
        if d:
            self.base_path.setText(d)

    def _pick_adapter(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, f"The saved {ADAPTER_FILE}", self.adapter_path.text(),
                                           "PiSA-SR adapter (*.pkl);;All files (*)")  # fmt: skip
        if f:
            self.adapter_path.setText(f)

    # -- work -----------------------------------------------------------------------------------------------------
    def start_download(self) -> bool:
        if not self.online or self.runner.busy:
            return False
        from ..models.download import download_base

        dest = self.stage.base
        task = StoreTask(StoreWork.DOWNLOAD, lambda control: download_base(dest, control=control))
        return self._start(task, f"Downloading Stable Diffusion 2.1-base into {dest}…")

    def start_import(self) -> bool:
        base, adapter = self.base(), self.adapter()
        if base is None or adapter is None or self.runner.busy:
            return False
        if not base.is_dir():
            self.status.setText(f"{base}: not a folder")
            return False
        if not adapter.is_file():
            self.status.setText(f"{adapter}: file not found")
            return False
        store, default = self.store, self.make_default.isChecked()

        def work(control: Control) -> Imported:
            return import_model(store, base, adapter, make_default=default, control=control)

        return self._start(StoreTask(StoreWork.IMPORT, work), f"Checking and importing {adapter.name}…")

    def _done(self, kind: StoreWork, value: object) -> None:
        self._set_busy(False)
        if kind is StoreWork.DOWNLOAD:
            self.status.setText(f"Stable Diffusion 2.1-base is ready in {value}. Now step 2: the adapter.")
            self.refresh()
            return
        assert isinstance(value, Imported)
        self.result_ = value
        entry = value.entry
        default = " It is now the default model." if self.make_default.isChecked() else ""
        self.status.setText(f"Imported {entry.name} ({human_size(entry.size)}).{default}\n"
                            f"{ADAPTER_FILE} sha256: {value.adapter_sha256}")  # fmt: skip
        self.refresh()
        if self.make_default.isChecked():
            self.imported.emit(self.store.spec_for(entry.id))

    def _failed(self, kind: StoreWork, message: str) -> None:
        self._set_busy(False)
        if kind is StoreWork.DOWNLOAD:
            message += "\n\nWithout the Hub, copy what is missing by hand: “Offline: what to copy where” says what."
            self.online = False
        self.status.setText(message)
        self.refresh()
        QMessageBox.warning(self, "Get PiSA-SR", message)

    def _cancelled(self, kind: StoreWork) -> None:
        self._set_busy(False)
        kept = " What was downloaded is kept: download again to resume." if kind is StoreWork.DOWNLOAD else ""
        self.status.setText(f"{kind.heading} cancelled; nothing was imported.{kept}")
        self.refresh()

    # -- closing --------------------------------------------------------------------------------------------------
    def reject(self) -> None:
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        close_store_dialog(self, self.runner, self.task, event, "Get PiSA-SR", "work")
