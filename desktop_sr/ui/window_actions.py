"""The main window's menus, toolbar, status bar, view modes, keys and drops: layout and input (what each action
does is the window's and the editor model's). A mixin of :class:`~desktop_sr.ui.main_window.MainWindow`, kept
apart so the window stays wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox, QProgressBar, QPushButton

from .. import __version__
from ..imaging import SUPPORTED_READ_EXTENSIONS
from .device_menu import MODEL_LABEL_TIP, DeviceMenu

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenu, QMenuBar, QStatusBar, QToolBar

    from ..editor import EditorModel
    from ..settings import Settings
    from .compare_view import CompareView


#: Shown in Help ▸ About: the app's licence and those of the libraries an installer ships (the full list with sources
#: is in desktop_sr/resources/README.md).
ABOUT_LICENCES = (
    "desktop-sr is licensed under Apache-2.0. It ships Qt 6 and PySide6 (LGPL-3.0), PyTorch (BSD-3-Clause), "
    "NumPy and Pillow (BSD/HPND), Diffusers, Transformers and PEFT (Apache-2.0); the bundled Real-ESRGAN x4plus "
    "weights are BSD-3-Clause. Sample photo: Chelsea the cat, CC0 (scikit-image)."
)


class WindowActions:
    """Needs, from the window: the slots the actions trigger and Qt's QMainWindow methods."""

    if TYPE_CHECKING:
        view: CompareView
        editor: EditorModel
        settings: Settings
        recent_menu: QMenu
        compare_menu: QMenu
        mode_actions: dict[str, QAction]

        def menuBar(self) -> QMenuBar: ...  # noqa: N802
        def statusBar(self) -> QStatusBar: ...  # noqa: N802
        def addToolBar(self, title: str) -> QToolBar: ...  # noqa: N802
        def __getattr__(self, name: str) -> Callable[..., object]: ...

    def _action(self, text: str, slot: object, shortcut: str | QKeySequence | None = None, tip: str = "") -> QAction:
        a = QAction(text, self)  # type: ignore[call-overload]
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)  # type: ignore[arg-type]
        return a

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "Open a photo")
        self.act_save = self._action("&Save result as…", self.export_dialog, QKeySequence.StandardKey.SaveAs,
                                     "Save the result with the photo's metadata")  # fmt: skip
        self.act_save_view = self._action("Save &comparison view…", self.save_comparison_dialog, None,
                                          "Save the before/after view as you see it (labels included), to "
                                          "show someone the difference")  # fmt: skip
        self.act_batch = self._action("&Batch…", self.open_batch_dialog, "Ctrl+B", "Upscale a whole folder")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_fit = self._action("&Fit", self.view.fit, "Ctrl+0", "Fit the photo in the window")
        self.act_100 = self._action("&100 %", self.view.actual_size, "Ctrl+1", "One photo pixel per screen pixel")
        self.act_zoom_in = self._action("Zoom &in", lambda: self.view.zoom_to(self.view.scale * 1.25), "Ctrl+=")
        self.act_zoom_out = self._action("Zoom &out", lambda: self.view.zoom_to(self.view.scale / 1.25), "Ctrl+-")
        self.act_original = QAction("Show &original", self, checkable=True)  # type: ignore[call-overload]
        self.act_original.setToolTip("Show the original in place (or hold the \\ key)")
        self.act_original.toggled.connect(self._toggle_original)
        self.act_detail = QAction("&Detail map", self, checkable=True, shortcut=QKeySequence("Ctrl+D"))  # type: ignore[call-overload]
        self.act_detail.setToolTip("Colour where the semantic branch adds detail, to spot invented content")
        self.act_detail.toggled.connect(self._toggle_detail)
        self.act_cancel = self._action("&Cancel render", self.editor.cancel, "Esc", "Stop the running render")
        self.act_render_now = self._action("&Render now", self.editor.render_now, "F5",
                                           "Start the render of these settings, even a long one")  # fmt: skip
        self.act_get_pisa = self._action("&Get PiSA-SR…", self.get_pisa_dialog, None,
                                         "Download Stable Diffusion 2.1-base, get the PiSA-SR adapter and import "
                                         "them (or see what to copy where, offline)")  # fmt: skip
        self.act_choose_model = self._action("&Choose model…", self.choose_model_dialog, None,
                                             "Use Stable Diffusion 2.1-base with PiSA-SR adapters")  # fmt: skip
        self.act_models = self._action("&Models…", self.open_model_manager, None,
                                       "Import, verify, download and remove models; choose the default")  # fmt: skip
        self.act_pin = self._action("&Keep as before", self.pin_result, "Ctrl+Shift+A",
                                    "Show the current result on the before side; then change the model or the "
                                    "settings to compare against it (A/B)")  # fmt: skip
        self.act_unpin = self._action("Compare with &original", self.unpin_result, None,
                                      "Show the original photo on the before side again")  # fmt: skip
        self.act_pin.setEnabled(False)
        self.act_unpin.setEnabled(False)
        self.act_undo = self._action("&Undo", self.editor.undo, QKeySequence.StandardKey.Undo, "Undo the last change")
        self.act_redo = self._action("&Redo", self.editor.redo, QKeySequence.StandardKey.Redo, "Redo what was undone")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        self.act_cancel.setEnabled(False)
        self.act_about = self._action("&About", self.about)
        self.act_sample = self._action("Open &sample photo", self.open_sample, None,
                                       "A small photo shipped with the app, to try the controls")  # fmt: skip
        group = QActionGroup(self)  # type: ignore[arg-type]
        self.mode_actions: dict[str, QAction] = {}
        for key, label in (("split-v", "Split &vertical"), ("split-h", "Split &horizontal"), ("side", "&Side by side")):
            a = QAction(label, self, checkable=True)  # type: ignore[call-overload]
            a.triggered.connect(lambda _=False, k=key: self.set_compare_mode(k))
            group.addAction(a)
            self.mode_actions[key] = a

        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._fill_recent()
        file_menu.addAction(self.act_save)
        file_menu.addAction(self.act_save_view)
        file_menu.addAction(self.act_batch)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        edit_menu = mb.addMenu("&Edit")
        edit_menu.addAction(self.act_undo)
        edit_menu.addAction(self.act_redo)
        view_menu = mb.addMenu("&View")
        for a in (self.act_fit, self.act_100, self.act_zoom_in, self.act_zoom_out):
            view_menu.addAction(a)
        view_menu.addSeparator()
        for a in self.mode_actions.values():
            view_menu.addAction(a)
        view_menu.addSeparator()
        view_menu.addAction(self.act_original)
        view_menu.addAction(self.act_detail)
        view_menu.addSeparator()
        view_menu.addAction(self.act_pin)
        view_menu.addAction(self.act_unpin)
        self.compare_menu = view_menu.addMenu("Compare with &model")
        self.compare_menu.setToolTipsVisible(True)
        self.compare_menu.aboutToShow.connect(self._fill_compare_menu)
        model_menu = mb.addMenu("&Model")
        model_menu.addAction(self.act_choose_model)
        model_menu.addAction(self.act_models)
        model_menu.addAction(self.act_get_pisa)
        model_menu.addSeparator()
        model_menu.addAction(self.act_render_now)
        model_menu.addAction(self.act_cancel)
        self.device_menu = DeviceMenu(self, mb.addMenu("&Device"))  # type: ignore[arg-type]
        help_menu = mb.addMenu("&Help")
        help_menu.addAction(self.act_sample)
        help_menu.addAction(self.act_about)

        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        for a in (self.act_open, self.act_save, None, self.act_fit, self.act_100, None):
            tb.addSeparator() if a is None else tb.addAction(a)
        for a in self.mode_actions.values():
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_original)
        tb.addAction(self.act_detail)
        tb.addAction(self.act_pin)
        tb.addSeparator()
        tb.addAction(self.act_choose_model)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.lbl_sizes = QLabel("")
        self.lbl_sizes.setToolTip("Photo size → result size, in pixels")
        self.lbl_model = QLabel("")
        self.lbl_model.setToolTip(MODEL_LABEL_TIP)
        self.device_menu.update_model_tip()  # and why this device (once the devices are known)
        self.lbl_badge = QLabel("")
        self.lbl_time = QLabel("")
        self.lbl_time.setToolTip("How long the last exact render took (instant preview time in brackets)")
        self.lbl_zoom = QLabel("")
        self.lbl_zoom.setToolTip("Zoom: 100 % is one photo pixel per screen pixel")
        self.lbl_eta = QLabel("")
        self.lbl_eta.setToolTip("The running job's pace and time left, measured from its first tile")
        self.lbl_eta.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setMinimumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.setToolTip("Stop the running render (Esc)")
        self.btn_cancel.clicked.connect(self.editor.cancel)
        self.btn_cancel.setVisible(False)
        for w in (self.lbl_sizes, self.lbl_zoom, self.lbl_model, self.lbl_time, self.lbl_badge):
            w.setContentsMargins(8, 0, 8, 0)
            sb.addPermanentWidget(w)
        sb.addPermanentWidget(self.lbl_eta)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.btn_cancel)

    def open_dialog(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(SUPPORTED_READ_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.last_folder, f"Photos ({patterns})")
        if path:
            self.open_path(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_files:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def about(self) -> None:
        info = self.editor.model_info
        QMessageBox.about(
            self,  # type: ignore[arg-type]
            "About desktop-sr",
            f"<b>desktop-sr {__version__}</b><br>Diffusion super-resolution for photos.<br>"
            "PiSA-SR (pixel and semantic LoRA on Stable Diffusion 2.1-base) with RCOD-style realism levels.<br>"
            f"Model: {info.name if info else 'none'}"
            + (f" — weights licence: {info.licence}" if info and info.licence else "")
            + f"<br><br>{ABOUT_LICENCES}",
        )

    # -- view modes, keys, drops ----------------------------------------------------------------------------------
    def set_compare_mode(self, mode: str) -> None:
        if mode not in self.mode_actions:
            mode = "split-v"
        self.view.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        self.settings.compare_mode = mode

    def _toggle_original(self, on: bool) -> None:
        self.view.show_original = on
        self.view.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.view.show_original = True
            self.view.update()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.view.show_original = self.act_original.isChecked()
            self.view.update()
            return
        super().keyReleaseEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """One photo opens here; several, or a folder, go to the batch dialog (the way people drop a shoot)."""
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if len(paths) == 1 and not paths[0].is_dir():
            self.open_path(paths[0])
            return
        self.open_batch_dialog()
        dlg = self.batch_dialog
        if dlg is None:
            return
        if getattr(dlg, "running", False):
            self.statusBar().showMessage("A batch is running: add the photos when it has finished", 8000)
        else:
            dlg.add_paths(paths)  # type: ignore[attr-defined]
