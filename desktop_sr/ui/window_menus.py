"""The main window's menus, toolbar and view modes: every action a person can trigger, with its text, shortcut and
tip, in one place.

:class:`WindowMenus` is a builder the window owns (``window.menus``): it makes the actions, puts them in the menu bar
and the toolbar of the window it is given, and connects each one to the collaborator that does it (the editor
model, the compare view, :class:`.PhotoFiles`, :class:`.ABCompare`, or one of the window's dialogs it is handed).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from .. import __version__
from ..editor import EditorModel
from ..settings import Settings
from .ab_compare import ABCompare
from .compare_view import CompareView
from .error_report import open_log_folder
from .photo_files import PhotoFiles

#: Shown in Help ▸ About: the app's licence and those of the libraries an installer ships (the full list with sources
#: is in desktop_sr/resources/README.md).
ABOUT_LICENCES = (
    "desktop-sr is licensed under Apache-2.0. It ships Qt 6 and PySide6 (LGPL-3.0), PyTorch (BSD-3-Clause), "
    "NumPy and Pillow (BSD/HPND), Diffusers, Transformers and PEFT (Apache-2.0); the bundled Real-ESRGAN x4plus "
    "weights are BSD-3-Clause. Sample photo: Chelsea the cat, CC0 (scikit-image)."
)

#: The compare view's modes, as View ▸ and the toolbar offer them.
COMPARE_MODES = (("split-v", "Split &vertical"), ("split-h", "Split &horizontal"), ("side", "&Side by side"))


class WindowMenus:
    """The actions (``act_*``), the menus and the toolbar of ``window``.

    ``choose_model``, ``manage_models``, ``get_pisa`` and ``batch`` open the window's own dialogs (Model ▸ Choose
    model…, Models…, Get PiSA-SR…; File ▸ Batch…). ``device``, the Device menu's place, is filled by a
    :class:`.DeviceMenu` the window makes.
    """

    def __init__(
        self,
        window: QMainWindow,
        view: CompareView,
        editor: EditorModel,
        settings: Settings,
        files: PhotoFiles,
        ab: ABCompare,
        *,
        choose_model: Callable[[], object],
        manage_models: Callable[[], object],
        get_pisa: Callable[[], object],
        batch: Callable[[], object],
    ) -> None:
        self.window, self.view, self.editor, self.settings, self.files = window, view, editor, settings, files
        self._build_actions(ab, choose_model, manage_models, get_pisa, batch)
        self._build_menus(ab)
        self._build_toolbar()
        files.recent_changed.connect(self.fill_recent)
        ab.reference_changed.connect(self.act_unpin.setEnabled)

    def _action(
        self, text: str, slot: Callable[..., object], shortcut: str | QKeySequence | None = None, tip: str = ""
    ) -> QAction:
        a = QAction(text, self.window)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _build_actions(
        self,
        ab: ABCompare,
        choose_model: Callable[[], object],
        manage_models: Callable[[], object],
        get_pisa: Callable[[], object],
        batch: Callable[[], object],
    ) -> None:
        w, view, editor, files = self.window, self.view, self.editor, self.files
        self.act_open = self._action("&Open…", files.open_dialog, QKeySequence.StandardKey.Open, "Open a photo")
        self.act_save = self._action("&Save result as…", files.export_dialog, QKeySequence.StandardKey.SaveAs,
                                     "Save the result with the photo's metadata")  # fmt: skip
        self.act_save_view = self._action("Save &comparison view…", ab.save_comparison_dialog, None,
                                          "Save the before/after view as you see it (labels included), to "
                                          "show someone the difference")  # fmt: skip
        self.act_batch = self._action("&Batch…", batch, "Ctrl+B", "Upscale a whole folder")
        self.act_quit = self._action("&Quit", w.close, QKeySequence.StandardKey.Quit)
        self.act_fit = self._action("&Fit", view.fit, "Ctrl+0", "Fit the photo in the window")
        self.act_100 = self._action("&100 %", view.actual_size, "Ctrl+1", "One photo pixel per screen pixel")
        self.act_zoom_in = self._action("Zoom &in", lambda: view.zoom_to(view.scale * 1.25), "Ctrl+=")
        self.act_zoom_out = self._action("Zoom &out", lambda: view.zoom_to(view.scale / 1.25), "Ctrl+-")
        self.act_original = QAction("Show &original", w, checkable=True)  # type: ignore[call-overload]
        self.act_original.setToolTip("Show the original in place (or hold the \\ key)")
        self.act_original.toggled.connect(self._toggle_original)
        self.act_detail = QAction("&Detail map", w, checkable=True, shortcut=QKeySequence("Ctrl+D"))  # type: ignore[call-overload]
        self.act_detail.setToolTip("Colour where the semantic branch adds detail, to spot invented content")
        self.act_detail.toggled.connect(self._toggle_detail)
        self.act_cancel = self._action("&Cancel render", editor.cancel, "Esc", "Stop the running render")
        self.act_render_now = self._action("&Render now", editor.render_now, "F5",
                                           "Start the render of these settings, even a long one")  # fmt: skip
        self.act_get_pisa = self._action("&Get PiSA-SR…", get_pisa, None,
                                         "Download Stable Diffusion 2.1-base, get the PiSA-SR adapter and import "
                                         "them (or see what to copy where, offline)")  # fmt: skip
        self.act_choose_model = self._action("&Choose model…", choose_model, None,
                                             "Use Stable Diffusion 2.1-base with PiSA-SR adapters")  # fmt: skip
        self.act_models = self._action("&Models…", manage_models, None,
                                       "Import, verify, download and remove models; choose the default")  # fmt: skip
        self.act_pin = self._action("&Keep as before", ab.pin_result, "Ctrl+Shift+A",
                                    "Show the current result on the before side; then change the model or the "
                                    "settings to compare against it (A/B)")  # fmt: skip
        self.act_unpin = self._action("Compare with &original", ab.unpin_result, None,
                                      "Show the original photo on the before side again")  # fmt: skip
        self.act_pin.setEnabled(False)
        self.act_unpin.setEnabled(False)
        self.act_undo = self._action("&Undo", editor.undo, QKeySequence.StandardKey.Undo, "Undo the last change")
        self.act_redo = self._action("&Redo", editor.redo, QKeySequence.StandardKey.Redo, "Redo what was undone")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        self.act_cancel.setEnabled(False)
        self.act_about = self._action("&About", self.about)
        self.act_log_folder = self._action("Open &log folder", open_log_folder, None,
                                           "The folder of the log to send with a problem report")  # fmt: skip
        self.act_sample = self._action("Open &sample photo", files.open_sample, None,
                                       "A small photo shipped with the app, to try the controls")  # fmt: skip
        group = QActionGroup(w)
        self.mode_actions: dict[str, QAction] = {}
        for key, label in COMPARE_MODES:
            a = QAction(label, w, checkable=True)  # type: ignore[call-overload]
            a.triggered.connect(lambda _=False, k=key: self.set_compare_mode(k))
            group.addAction(a)
            self.mode_actions[key] = a

    def _build_menus(self, ab: ABCompare) -> None:
        mb = self.window.menuBar()
        file_menu = mb.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.fill_recent()
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
        self.compare_menu.aboutToShow.connect(lambda: ab.fill_compare_menu(self.compare_menu))
        model_menu = mb.addMenu("&Model")
        model_menu.addAction(self.act_choose_model)
        model_menu.addAction(self.act_models)
        model_menu.addAction(self.act_get_pisa)
        model_menu.addSeparator()
        model_menu.addAction(self.act_render_now)
        model_menu.addAction(self.act_cancel)
        self.device: QMenu = mb.addMenu("&Device")
        help_menu = mb.addMenu("&Help")
        help_menu.addAction(self.act_sample)
        help_menu.addAction(self.act_log_folder)
        help_menu.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.window.addToolBar("Main")
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

    def fill_recent(self) -> None:
        """File ▸ Open recent: the settings' recent files, newest first."""
        self.recent_menu.clear()
        for p in self.settings.recent_files:
            self.recent_menu.addAction(p, lambda p=p: self.files.open_path(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def about(self) -> None:
        info = self.editor.model_info
        QMessageBox.about(
            self.window,
            "About desktop-sr",
            f"<b>desktop-sr {__version__}</b><br>Diffusion super-resolution for photos.<br>"
            "PiSA-SR (pixel and semantic LoRA on Stable Diffusion 2.1-base) with RCOD-style realism levels.<br>"
            f"Model: {info.name if info else 'none'}"
            + (f" — weights licence: {info.licence}" if info and info.licence else "")
            + f"<br><br>{ABOUT_LICENCES}",
        )

    # -- view modes -------------------------------------------------------------------------------------------------
    def set_compare_mode(self, mode: str) -> None:
        if mode not in self.mode_actions:
            mode = "split-v"
        self.view.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        self.settings.compare_mode = mode

    def _toggle_original(self, on: bool) -> None:
        self.view.show_original = on
        self.view.update()

    def hold_original(self, held: bool) -> None:
        """The \\ key held down shows the original; let go, the view goes back to what Show original says."""
        self.view.show_original = held or self.act_original.isChecked()
        self.view.update()

    def _toggle_detail(self, on: bool) -> None:
        self.view.show_overlay = on
        self.editor.set_detail(on)
        self.view.update()
