"""The main window: wiring and layout around the editor model (:mod:`desktop_sr.editor`).

The model owns the settings being edited, the photo, the model, the undo history and the rules of what to render
when; this window lays out the widgets, binds them to it both ways (controls -> intents, events -> view, badge,
status bar), sends its jobs to the engine worker and hands the worker's results back. What is on screen is always
labelled: exact, preview, partial (exact where you look) or previous settings (see
:class:`~desktop_sr.editor.model.Shown`).

Its collaborators, each handed what it needs: :class:`.WindowMenus` (``menus``: the actions, menus, toolbar and view
modes), :class:`.WindowStatus` (``status``: the status bar's permanent widgets), :class:`.PhotoFiles` (``files``:
open, recent files, the sample, save result as), :class:`.ABCompare` (``ab``: a kept result on the before side,
saving the view) and :class:`.DeviceMenu` (``device_menu``). The window keeps the model dialogs, the batch dialog,
error dialogs, keys, drops and closing.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeyEvent
from PySide6.QtWidgets import QDialog, QDockWidget, QMainWindow, QMessageBox, QPushButton

from ..editor import EditorModel, Shown
from ..editor.remembered import (
    default_model_spec,
    faces_from_settings,
    last_model_spec,
    params_from_settings,
    remember_faces,
    remember_model,
)
from ..engine.api import ModelInfo, RenderParams
from ..engine.loader import ModelSpec
from ..imaging import Photo, SaveOptions
from ..models.paths import models_dir
from ..settings import load_settings, save_settings
from .ab_compare import ABCompare
from .brush import install_brush
from .compare_view import CompareView
from .controls import ControlsPanel
from .device_menu import DeviceMenu
from .faces_panel import install_faces
from .images import colormap, qimage_from_rgb
from .model_dialog import ChooseModelDialog
from .photo_files import PhotoFiles
from .scrolling import scrolling
from .status_message import MessageStatusBar
from .window_menus import WindowMenus
from .window_status import WindowStatus
from .worker import EngineWorker

log = logging.getLogger(__name__)
NO_MODEL = "No model loaded.\nChoose one with Model ▸ Choose model… (Stable Diffusion 2.1-base + PiSA-SR adapters)."
OPEN_PHOTO = "Open a photo (File ▸ Open, or drop it here)"


class MainWindow(QMainWindow):
    def __init__(self, settings_dir: Path | None = None, *, load_model: bool = True) -> None:
        super().__init__()
        self.settings_dir = settings_dir
        self.settings, settings_warning = load_settings(settings_dir)
        self.setWindowTitle("desktop-sr")
        self.setAcceptDrops(True)
        self.setStatusBar(MessageStatusBar(self))  # messages elided with the whole text reachable

        self._loading: ModelSpec | None = None  # a model on its way (the window says so rather than "No model")
        self.view = CompareView(self)
        self.view.placeholder = OPEN_PHOTO
        self.btn_choose_model = QPushButton("Choose model…", self.view)
        self.btn_choose_model.setToolTip("Pick a Stable Diffusion 2.1-base folder and a PiSA-SR adapter file")
        self.btn_choose_model.clicked.connect(self.choose_model_dialog)
        self.view.prompt_widget = self.btn_choose_model
        self.setCentralWidget(self.view)
        self.controls = ControlsPanel(self)
        dock = self.adjust_dock = QDockWidget("Adjust", self)
        dock.setObjectName("controls")
        dock.setWidget(scrolling(self.controls))  # notes under the controls wrap and scroll, never clip
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.batch_dialog: QDialog | None = None  # one at a time: two batches would hold two models
        self._error_open = False

        self.worker = EngineWorker(self)
        self.editor = EditorModel(
            self.worker,
            params_from_settings(self.settings),
            default_spec=lambda: default_model_spec(),  # looked up at call time (tests replace it)
            device=self.settings.device,
            models_dir=models_dir(self.settings.models_dir),
            faces=faces_from_settings(self.settings),
        )
        bar = self.statusBar()
        self.files = PhotoFiles(self, self.editor, self.settings, self.controls.scale, bar)
        self.ab = ABCompare(self, self.view, self.editor, self.settings, bar, self.show_error)
        self.menus = WindowMenus(self, self.view, self.editor, self.settings, self.files, self.ab,
                                 choose_model=self.choose_model_dialog, manage_models=self.open_model_manager,
                                 get_pisa=self.get_pisa_dialog, batch=self.open_batch_dialog)  # fmt: skip
        self.status = WindowStatus(bar, self.editor.cancel)
        self.device_menu = DeviceMenu(self, self.menus.device, self.editor, self.settings, self.settings_dir,
                                      self.status.lbl_model)  # fmt: skip
        self._bind()
        self.brush = install_brush(self, self.view, self.editor)
        self.faces = install_faces(self, self.view, self.editor, lambda: models_dir(self.settings.models_dir),
                                   self.open_model_manager, blocked=lambda: self.brush.active)  # fmt: skip
        # The adjustments (with their notes) take most of the right side; under them the brush and the faces share
        # the rest as two tabs (three panels stacked left each too little height); each panel scrolls if it must.
        self.tabifyDockWidget(self.brush.dock, self.faces.dock)
        self.brush.dock.raise_()
        self.resizeDocks([self.adjust_dock, self.brush.dock], [400, 380], Qt.Orientation.Vertical)
        self.controls.set_params(self.editor.params)

        if self.settings.geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))
        else:
            self.resize(1280, 820)
        if self.settings.window_state:
            self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))
        self.menus.set_compare_mode(self.settings.compare_mode)
        if settings_warning:
            bar.showMessage(settings_warning, 15000)
        if load_model:
            self._load_initial_model()
        self._update_model_state()

    # -- binding: widgets -> editor intents, editor events -> widgets -----------------------------------------------
    def _bind(self) -> None:
        e, w, sb, status, menus = self.editor, self.worker, self.statusBar(), self.status, self.menus
        w.result.connect(e.on_result)
        w.failed.connect(e.on_failed)
        w.cancelled.connect(e.on_cancelled)
        w.busy_changed.connect(self._busy)
        w.started.connect(e.on_started)
        w.progress.connect(e.on_progress)
        self.controls.changed.connect(e.set_params)
        self.view.view_changed.connect(self._view_changed)
        self.view.zoom_changed.connect(status.show_zoom)
        e.params_changed.connect(self._params_changed)
        e.history_changed.connect(lambda u, r: (menus.act_undo.setEnabled(u), menus.act_redo.setEnabled(r)))
        e.model_loading.connect(self._model_loading)
        e.model_changed.connect(self._model_changed)
        e.photo_changed.connect(self._photo_changed)
        e.after_changed.connect(self._after_changed)
        e.after_patched.connect(lambda img, x, y: self.view.paste_after(qimage_from_rgb(img), x, y))
        e.shown_changed.connect(self._shown_changed)
        e.detail_changed.connect(self._detail_changed)
        e.timing_changed.connect(self._timing_changed)
        e.status.connect(sb.showMessage)
        e.faces.changed.connect(lambda panel: remember_faces(self.settings, panel.edit))
        e.error.connect(lambda title, message: self.show_error(title, message, later=True))
        e.progress.connect(status.show_progress)
        # the time left counts down between the engine's reports (a tile can take tens of seconds)
        self._progress_tick = QTimer(self, interval=1000)
        self._progress_tick.timeout.connect(e.tick)
        e.long_render.connect(lambda seconds, text: QTimer.singleShot(0, lambda: self.ask_long_render(seconds, text)))

    def _params_changed(self, p: RenderParams) -> None:
        if self.controls.params() != p.with_(maps=None):  # the controls hold no mask (the brush does)
            self.controls.set_params(p)
        s = self.settings
        s.pix, s.sem, s.realism, s.scale, s.color_fix, s.prompt = (
            p.pix,
            p.sem,
            p.realism,
            p.scale,
            p.color_fix,
            p.prompt,
        )

    def _view_changed(self) -> None:
        self.editor.set_view(self.view.visible_image_rect())

    def _after_changed(self, image: np.ndarray | None) -> None:
        self.view.set_after(None if image is None else qimage_from_rgb(image))
        if image is not None and self.editor.shown is Shown.PREVIEW:
            self.view.repaint()  # a preview is on screen now, not at the next idle moment

    def _shown_changed(self, shown: Shown) -> None:
        """Say on screen what the "after" side shows, and whether something is still rendering."""
        text, tip = self.editor.badge()
        self.view.badge = text
        self.status.show_badge(text, tip)
        if shown in (Shown.EXACT, Shown.NONE):
            self.menus.act_pin.setEnabled(shown is Shown.EXACT)
        self.view.update()

    def _detail_changed(self, values: np.ndarray | None) -> None:
        self.view.overlay = None if values is None else qimage_from_rgb(colormap(values))
        self.view.update()

    def _timing_changed(self, seconds: float, preview_ms: float | None) -> None:
        self.status.show_timing(seconds, preview_ms, self.editor.last_render_stages)
        self._update_model_state()

    def ask_long_render(self, seconds: float, text: str) -> None:
        """Before a render estimated as long (the editor waits for the answer; no starts nothing)."""
        answer = QMessageBox.question(self, "A long render", f"{text}\n\nStart it now?")
        self.editor.answer_long_render(answer == QMessageBox.StandardButton.Yes)

    def _busy(self, busy: bool) -> None:
        self.status.set_busy(busy)
        if busy:
            self._progress_tick.start()
        else:
            self._progress_tick.stop()
        self.menus.act_cancel.setEnabled(busy)
        self.editor.set_busy(busy)

    # -- model ----------------------------------------------------------------------------------------------------
    def _load_initial_model(self) -> None:
        """The model used last time, else the model manager's default, else the bundled upscaler if installed."""
        spec = last_model_spec(self.settings) or default_model_spec()
        if spec is not None:
            self.load_model(spec)

    def load_model(self, spec: ModelSpec) -> None:
        self.editor.load_model(spec)

    def _model_loading(self, spec: ModelSpec) -> None:
        """A model is on its way (the bundled one at first start takes seconds): say so, not "No model loaded"."""
        self._loading = spec
        self.status.show_loading(spec)
        self._update_model_state()

    def _model_changed(self, info: ModelInfo | None, description: str) -> None:
        self._loading = None
        spec = self.editor.model_spec
        if info is not None and spec is not None:
            remember_model(self.settings, spec)
            self.controls.configure_for_model(info.supports_realism, info.supports_prompt, info.trained_timesteps,
                                              info.supports_color_fix, info.color_fix_note, info.scales)  # fmt: skip
        self._update_model_state()

    def _update_model_state(self) -> None:
        info, photo, loading = self.editor.model_info, self.editor.photo, self._loading
        if loading is None:
            self.status.show_model(info)
        if info is None and loading is not None:
            self.view.placeholder = f"Loading {loading.name}…" if photo is None else OPEN_PHOTO
            self.view.no_model_hint = f"loading {loading.name}…"
        elif info is None:
            self.view.placeholder = NO_MODEL if photo is None else OPEN_PHOTO
            self.view.no_model_hint = "choose a model to see the result"
        else:
            self.view.placeholder = OPEN_PHOTO
            self.view.no_model_hint = ""
        self.btn_choose_model.setVisible(info is None and loading is None)
        self.view.place_prompt()
        self.menus.act_save.setEnabled(info is not None and photo is not None)
        self.menus.act_save_view.setEnabled(photo is not None)
        self.view.update()

    def choose_model_dialog(self) -> None:
        dlg = ChooseModelDialog(self, last_model_spec(self.settings) or self.editor.model_spec)
        if dlg.exec():
            self.load_model(dlg.spec())

    def open_model_manager(self) -> QDialog:
        """The model manager (non-modal). A new default is loaded at once; a new models folder is saved."""
        from .model_manager_dialog import ModelManagerDialog

        dlg = ModelManagerDialog(self, self.settings.models_dir)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.default_changed.connect(
            lambda spec: spec is None or spec == self.editor.model_spec or self.load_model(spec)
        )
        dlg.models_dir_changed.connect(self._models_dir_changed)
        dlg.finished.connect(lambda _code: self.faces.panel.refresh_models())  # a face model imported meanwhile
        dlg.show()
        return dlg

    def get_pisa_dialog(self) -> QDialog:
        """Model ▸ Get PiSA-SR… (non-modal): an import made the default is loaded at once."""
        from .get_pisa_dialog import GetPisaDialog

        dlg = GetPisaDialog(self, self.settings.models_dir)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.imported.connect(lambda spec: spec is None or self.load_model(spec))
        dlg.show()
        return dlg

    def _models_dir_changed(self, folder: str) -> None:
        self.settings.models_dir = folder
        self.editor.models_dir = models_dir(folder)
        save_settings(self.settings, self.settings_dir)

    # -- photo ----------------------------------------------------------------------------------------------------
    def open_path(self, path: str | Path, *, remember: bool = True) -> None:
        """Open a photo (the command line's, a drop's): see :meth:`.PhotoFiles.open_path`."""
        self.files.open_path(path, remember=remember)

    def open_sample(self) -> None:
        self.files.open_sample()

    def export_to(self, path: Path, options: SaveOptions) -> None:
        self.files.export_to(path, options)

    def _photo_changed(self, photo: Photo, before: np.ndarray, new_photo: bool) -> None:
        """A new photo, or the same photo at a new scale (then the old result stays on screen, stretched)."""
        scale = before.shape[1] // photo.width
        self.controls.scale.set_photo_size(photo.size)  # a target size picks its model scale for this photo
        self.setWindowTitle(f"{photo.source.name} — desktop-sr")
        self.ab.drop_stale_reference(scale, new_photo)
        self.view.set_images(qimage_from_rgb(before), self.view.after, keep_view=not new_photo)
        self.status.show_sizes(photo, before, self.controls.scale.plan())
        self._update_model_state()
        if self.controls.params().scale != scale:  # a target size needs another model scale for this photo
            self.editor.set_params(self.controls.params())
        self._view_changed()

    # -- batch ----------------------------------------------------------------------------------------------------
    def open_batch_dialog(self) -> None:
        """Open the batch dialog with this photo and these settings; an open one is brought to the front."""
        if self.batch_dialog is not None and self.batch_dialog.isVisible():
            self.batch_dialog.raise_()
            self.batch_dialog.activateWindow()
            return
        if self.batch_dialog is not None:
            self.batch_dialog.deleteLater()
        try:
            from .batch_dialog import BatchDialog
        except ImportError:
            QMessageBox.information(self, "Batch", "Batch export is not available in this build.")
            return
        info = self.editor.model_info
        dlg = BatchDialog(
            self,
            model_spec=self.editor.model_spec,
            params=self.editor.params,
            current_photo=self.editor.photo_path,
            settings_dir=self.settings_dir,
            device=self.settings.device,
            supports_realism=info.supports_realism if info is not None else True,
            supports_color_fix=info.supports_color_fix if info is not None else True,
            color_fix_note=info.color_fix_note if info is not None else "",
            model_device=info.device if info is not None else None,
            shared_model=self.worker.executor.shared,  # one model per GPU: the batch borrows the editor's
        )
        self.batch_dialog = dlg
        dlg.show()

    # -- errors ---------------------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, *, later: bool = False) -> None:
        """One modal dialog at a time: errors arriving while one is open go to the status bar only (where the
        whole text stays reachable: elided, with a tooltip and a click for the dialog).

        ``later``: the error arrived while the worker's news is being delivered (the editor's failures); the dialog
        opens once that delivery is done, so the news after it (the worker is idle) reaches the status bar and
        badge first instead of waiting behind the modal dialog (a failed open used to keep "rendering…" and a
        busy bar on screen for as long as its error was).
        """
        status = self.statusBar()
        text = f"{title}: {message}"
        if isinstance(status, MessageStatusBar):
            status.show_error(text, 30000)
        else:
            status.showMessage(text, 30000)
        if self._error_open:
            return
        self._error_open = True
        if later:
            QTimer.singleShot(0, lambda: self._error_dialog(title, message))
        else:
            self._error_dialog(title, message)

    def _error_dialog(self, title: str, message: str) -> None:
        try:
            QMessageBox.critical(self, title, message)
        finally:
            self._error_open = False

    # -- keys and drops -------------------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.menus.hold_original(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.menus.hold_original(False)
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

    # -- closing --------------------------------------------------------------------------------------------------
    def save_settings(self) -> None:
        self.settings.geometry = base64.b64encode(bytes(self.saveGeometry().data())).decode()
        self.settings.window_state = base64.b64encode(bytes(self.saveState().data())).decode()
        save_settings(self.settings, self.settings_dir)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """A running batch is asked about first (its dialog cancels it cleanly or the window stays open)."""
        if self.batch_dialog is not None and self.batch_dialog.isVisible() and not self.batch_dialog.close():
            event.ignore()
            return
        self.save_settings()
        self.shutdown_worker()
        super().closeEvent(event)

    def shutdown_worker(self) -> None:
        """Stop the worker thread; nothing it reported after this point reaches the window."""
        self.worker.blockSignals(True)
        self.worker.stop()
