"""The main window: compare view, controls, menus, status bar, and the render controller that keeps the screen
responsive (instant preview from cached corners, exact render of the visible region first, then the rest).

What is on screen is always labelled: ``shown_kind`` is "exact" (the result for the current settings), "preview"
(an instant blend of cached corner images), "partial" (exact where you look, the rest still the preview) or
"stale" (the previous result, kept on screen while the new one renders, never the original).
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
)

from .. import __version__
from ..engine.api import ModelInfo, RenderParams
from ..engine.loader import ModelSpec
from ..imaging import SUPPORTED_READ_EXTENSIONS, Photo
from .ab_compare import ABCompare
from .compare_view import CompareView
from .controls import ControlsPanel
from .export_dialog import ExportDialog
from .history import ParamsHistory
from .images import CornerBlend, colormap, qimage_from_rgb
from .model_dialog import ChooseModelDialog
from .settings import load_settings, save_settings
from .worker import EngineWorker, Job

log = logging.getLogger(__name__)
NO_MODEL = "No model loaded.\nChoose one with Model ▸ Choose model… (Stable Diffusion 2.1-base + PiSA-SR adapters)."
OPEN_PHOTO = "Open a photo (File ▸ Open, or drop it here)"
BADGES = {
    "exact": ("Exact", "The exact result for these settings."),
    "preview": ("Preview", "An instant blend of cached results; the exact render follows."),
    "partial": (
        "Visible part first",
        "The part in view is rendered first (on a large photo its tone comes from a sample of the photo, so it can\n"
        "differ very slightly); the exact result of the whole photo replaces it when it is ready.",
    ),
    "stale": ("Previous settings", "The last result stays on screen while the new settings render."),
}


#: Shown in Help ▸ About: the app's licence and those of the libraries an installer ships (the full list with sources
#: is in desktop_sr/resources/README.md).
ABOUT_LICENCES = (
    "desktop-sr is licensed under Apache-2.0. It ships Qt 6 and PySide6 (LGPL-3.0), PyTorch (BSD-3-Clause), "
    "NumPy and Pillow (BSD/HPND), Diffusers, Transformers and PEFT (Apache-2.0); the bundled Real-ESRGAN x4plus "
    "weights are BSD-3-Clause. Sample photo: Chelsea the cat, CC0 (scikit-image)."
)


def corner_key(p: RenderParams) -> tuple[object, ...]:
    """What the corner images depend on: everything but the two strengths."""
    return (p.realism, p.scale, p.color_fix, p.prompt)


class MainWindow(ABCompare, QMainWindow):
    def __init__(self, settings_dir: Path | None = None, *, load_model: bool = True) -> None:
        super().__init__()
        self.settings_dir = settings_dir
        self.settings, settings_warning = load_settings(settings_dir)
        self.setWindowTitle("desktop-sr")
        self.setAcceptDrops(True)

        self.view = CompareView(self)
        self.view.placeholder = OPEN_PHOTO
        self.btn_choose_model = QPushButton("Choose model…", self.view)
        self.btn_choose_model.setToolTip("Pick a Stable Diffusion 2.1-base folder and a PiSA-SR adapter file")
        self.btn_choose_model.clicked.connect(self.choose_model_dialog)
        self.view.prompt_widget = self.btn_choose_model
        self.setCentralWidget(self.view)
        self.controls = ControlsPanel(self)
        dock = QDockWidget("Adjust", self)
        dock.setObjectName("controls")
        dock.setWidget(self.controls)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.photo: Photo | None = None
        self.photo_path: Path | None = None
        self.model_info: ModelInfo | None = None
        self.model_spec: ModelSpec | None = None
        self.shown_params: RenderParams | None = None  # params of the result (or preview) on screen
        self.shown_kind = ""  # "" | "preview" | "partial" | "exact" | "stale"
        self.busy = False
        self.blender: CornerBlend | None = None
        self.corners_for: tuple[object, ...] | None = None
        self.detail_for: RenderParams | None = None
        self.last_render_seconds: float | None = None
        self.last_preview_ms: float | None = None
        self.preview_count = 0
        self.loaded_specs: list[ModelSpec] = []  # models loaded in this run, offered for A/B even if unregistered
        self.batch_dialog: QDialog | None = None  # one at a time: two batches would hold two models
        self._falling_back = False  # a fallback model is loading after a failed load (never chain fallbacks)
        self._error_open = False

        self.worker = EngineWorker()
        self._connect_worker()
        self.worker.start()
        self._build_actions()
        self._build_status()
        self.controls.set_params(self._settings_params())
        self.history = ParamsHistory(self.controls.params())
        self.controls.changed.connect(self._controls_changed)
        self.view.zoom_changed.connect(lambda z: self.lbl_zoom.setText(f"{z * 100:.0f} %"))

        if self.settings.geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))
        else:
            self.resize(1280, 820)
        if self.settings.window_state:
            self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))
        self.set_compare_mode(self.settings.compare_mode)
        if settings_warning:
            self.statusBar().showMessage(settings_warning, 15000)
        if load_model:
            self._load_initial_model()
        self._update_model_state()

    # -- construction ---------------------------------------------------------------------------------------------
    def _connect_worker(self) -> None:
        w = self.worker
        w.model_loaded.connect(self._model_loaded)
        w.model_failed.connect(self._model_failed)
        w.photo_loaded.connect(self._photo_loaded)
        w.photo_failed.connect(lambda msg: self.show_error("Cannot open the photo", msg))
        w.rendered.connect(self._rendered)
        w.corners_ready.connect(self._corners_ready)
        w.detail_ready.connect(self._detail_ready)
        w.progress.connect(self._progress)
        w.busy_changed.connect(self._busy)
        w.job_failed.connect(self.show_error)
        w.cancelled.connect(lambda _id: self.statusBar().showMessage("Render cancelled", 4000))
        w.export_done.connect(lambda p, s: self.statusBar().showMessage(f"Saved {p} ({s:.1f} s)", 10000))
        w.export_failed.connect(lambda msg: self.show_error("Export failed", msg))

    def _action(self, text: str, slot: object, shortcut: str | QKeySequence | None = None, tip: str = "") -> QAction:
        a = QAction(text, self)
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
        self.act_original = QAction("Show &original", self, checkable=True)
        self.act_original.setToolTip("Show the original in place (or hold the \\ key)")
        self.act_original.toggled.connect(self._toggle_original)
        self.act_detail = QAction("&Detail map", self, checkable=True, shortcut=QKeySequence("Ctrl+D"))
        self.act_detail.setToolTip("Colour where the semantic branch adds detail, to spot invented content")
        self.act_detail.toggled.connect(self._toggle_detail)
        self.act_cancel = self._action("&Cancel render", self.cancel_render, "Esc", "Stop the running render")
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
        self.act_undo = self._action("&Undo", self.undo, QKeySequence.StandardKey.Undo, "Undo the last change")
        self.act_redo = self._action("&Redo", self.redo, QKeySequence.StandardKey.Redo, "Redo what was undone")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        self.act_cancel.setEnabled(False)
        self.act_about = self._action("&About", self.about)
        self.act_sample = self._action("Open &sample photo", self.open_sample, None,
                                       "A small photo shipped with the app, to try the controls")  # fmt: skip
        group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for key, label in (("split-v", "Split &vertical"), ("split-h", "Split &horizontal"), ("side", "&Side by side")):
            a = QAction(label, self, checkable=True)
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
        model_menu.addAction(self.act_cancel)
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
        self.lbl_model.setToolTip("Model · device · number format")
        self.lbl_badge = QLabel("")
        self.lbl_time = QLabel("")
        self.lbl_time.setToolTip("How long the last exact render took (instant preview time in brackets)")
        self.lbl_zoom = QLabel("")
        self.lbl_zoom.setToolTip("Zoom: 100 % is one photo pixel per screen pixel")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setMinimumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.setToolTip("Stop the running render (Esc)")
        self.btn_cancel.clicked.connect(self.cancel_render)
        self.btn_cancel.setVisible(False)
        for w in (self.lbl_sizes, self.lbl_zoom, self.lbl_model, self.lbl_time, self.lbl_badge):
            w.setContentsMargins(8, 0, 8, 0)
            sb.addPermanentWidget(w)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.btn_cancel)

    def _settings_params(self) -> RenderParams:
        s = self.settings
        try:
            return RenderParams(pix=s.pix, sem=s.sem, realism=s.realism, scale=s.scale, color_fix=s.color_fix,
                                prompt=s.prompt)  # fmt: skip
        except ValueError:
            return RenderParams()

    # -- model ----------------------------------------------------------------------------------------------------
    def _load_initial_model(self) -> None:
        """The model used last time, else the model manager's default, else the bundled upscaler if installed."""
        s = self.settings
        spec: ModelSpec | None = None
        if s.model_kind == "pisa-sr" and s.model_base and s.model_lora:
            spec = ModelSpec.pisa(s.model_base, s.model_lora, s.model_name)
        elif s.model_kind and s.model_kind != "pisa-sr":
            spec = ModelSpec(kind=s.model_kind, name=s.model_name)
        else:
            spec = default_model_spec()
        if spec is not None:
            self.load_model(spec)

    def load_model(self, spec: ModelSpec) -> None:
        self.model_spec = spec
        self.lbl_model.setText(f"Loading {spec.name}…")
        self.worker.submit(Job("model", {"spec": spec, "device": self.settings.device}))

    def _model_loaded(self, info: ModelInfo, description: str) -> None:
        self.model_info = info
        self.blender = self.corners_for = None
        self.detail_for = None
        self.view.overlay = None
        if self.view.after is not None:
            self.shown_kind = "stale"  # keep the old model's result on screen until the new one is ready
        spec = self.model_spec
        self._falling_back = False
        if spec is not None:
            self.loaded_specs = [s for s in self.loaded_specs if s != spec] + [spec]  # the last one worked last
        if spec is not None:
            s = self.settings
            s.model_kind, s.model_name = spec.kind, spec.name
            s.model_base = str(spec.base_dir or "")
            s.model_lora = str(spec.lora or "")
        self.controls.configure_for_model(info.supports_realism, info.supports_prompt, info.trained_timesteps)
        self.history.reset(self.controls.params())
        self._update_model_state()
        self.statusBar().showMessage(f"Model loaded: {description}", 8000)
        self.request_render("other")

    def _model_failed(self, message: str) -> None:
        """Say why, then get back to a working model: the one that worked before this attempt, else the default
        (bundled) one. Loading a model releases the previous one first (two diffusion models rarely fit), so
        without this a typo in a path, or a model removed since last time, would leave the user with none."""
        self.model_info = None
        failed = self.model_spec
        fallback = None
        if not self._falling_back:
            for candidate in (self.loaded_specs[-1] if self.loaded_specs else None, default_model_spec()):
                if candidate is not None and candidate != failed:
                    fallback = candidate
                    break
        self._falling_back = fallback is not None
        if fallback is not None:
            self.load_model(fallback)
            message += f"\n\nUsing {fallback.name} instead."
        self._update_model_state()
        self.show_error("Cannot load the model", message)

    def _update_model_state(self) -> None:
        info = self.model_info
        if info is None:
            self.lbl_model.setText("No model")
            self.view.placeholder = NO_MODEL if self.photo is None else OPEN_PHOTO
            self.view.no_model_hint = "choose a model to see the result"
        else:
            self.lbl_model.setText(f"{info.name} · {info.device} · {info.dtype}")
            self.view.placeholder = OPEN_PHOTO
            self.view.no_model_hint = ""
        self.btn_choose_model.setVisible(info is None)
        self.view.place_prompt()
        self.act_save.setEnabled(info is not None and self.photo is not None)
        self.act_save_view.setEnabled(self.photo is not None)
        self.view.update()

    def choose_model_dialog(self) -> None:
        dlg = ChooseModelDialog(self, self.settings.model_base, self.settings.model_lora)
        if dlg.exec():
            self.load_model(dlg.spec())

    def open_model_manager(self) -> QDialog:
        """The model manager (non-modal). A new default is loaded at once; a new models folder is saved."""
        from .model_manager_dialog import ModelManagerDialog

        dlg = ModelManagerDialog(self, self.settings.models_dir)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.default_changed.connect(self._default_model_changed)
        dlg.models_dir_changed.connect(self._models_dir_changed)
        dlg.show()
        return dlg

    def _default_model_changed(self, spec: ModelSpec | None) -> None:
        if spec is not None and spec != self.model_spec:
            self.load_model(spec)

    def _models_dir_changed(self, folder: str) -> None:
        self.settings.models_dir = folder
        save_settings(self.settings, self.settings_dir)

    # -- photo ----------------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(SUPPORTED_READ_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.last_folder, f"Photos ({patterns})")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, *, remember: bool = True) -> None:
        """Open a photo; ``remember=False`` keeps it out of the recent files and the last folder (the sample)."""
        path = Path(path)
        self.photo_path = path
        if remember:
            self.settings.last_folder = str(path.parent)
            self.settings.add_recent(path)
            self._fill_recent()
        self.statusBar().showMessage(f"Opening {path}…")
        self.worker.submit(Job("photo", {"path": str(path), "scale": self.controls.params().scale}))

    def open_sample(self) -> None:
        """Open the sample photo shipped with the app (an incomplete install says so instead)."""
        from ..resources import sample_photo_path

        try:
            self.open_path(sample_photo_path(), remember=False)
        except FileNotFoundError as exc:
            self.statusBar().showMessage(str(exc), 10000)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_files:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def _photo_loaded(self, photo: Photo, before: object, scale: int) -> None:
        """A new photo, or the same photo at a new scale (then the old result stays on screen, stretched)."""
        new_photo = photo is not self.photo
        self.photo = photo
        self.controls.scale.set_photo_size(photo.size)  # a target size picks its model scale for this photo
        self.setWindowTitle(f"{photo.source.name} — desktop-sr")
        self.drop_stale_reference(photo, scale, new_photo)
        if new_photo:
            self._invalidate_results()
        elif self.view.after is not None:
            self.shown_kind = "stale"
            self.blender = self.corners_for = None
            self.view.overlay = None
        before_img = qimage_from_rgb(before)  # type: ignore[arg-type]
        self.view.set_images(before_img, self.view.after, keep_view=not new_photo)
        h, w = photo.height, photo.width
        plan = self.controls.scale.plan()
        shown = f"{plan.size[0]}×{plan.size[1]} (×{plan.scale})" if plan else f"{w * scale}×{h * scale}"
        self.lbl_sizes.setText(f"{w}×{h} → {shown}")
        self.statusBar().showMessage(f"Opened {photo.source}", 5000)
        self._update_model_state()
        self._apply_params(self.controls.params(), "other")  # renders, or first rescales for a target

    def _invalidate_results(self) -> None:
        self.act_pin.setEnabled(False)
        self.blender = self.corners_for = None
        self.detail_for = None
        self.shown_params = None
        self.shown_kind = ""
        self.view.overlay = None
        self.view.set_after(None)
        self._refresh_badge()

    # -- rendering ------------------------------------------------------------------------------------------------
    def _controls_changed(self, params: RenderParams, kind: str) -> None:
        self.history.record(params, kind, time.monotonic())
        self._update_history_actions()
        self._apply_params(params, kind)

    def undo(self) -> None:
        self._restore_params(self.history.undo())

    def redo(self) -> None:
        self._restore_params(self.history.redo())

    def _restore_params(self, params: RenderParams | None) -> None:
        if params is not None:
            before = self.controls.params()
            self.controls.set_params(params)
            only_strengths = params.with_(pix=before.pix, sem=before.sem) == before
            self._apply_params(self.controls.params(), "strength" if only_strengths else "other")
        self._update_history_actions()

    def _update_history_actions(self) -> None:
        self.act_undo.setEnabled(self.history.can_undo())
        self.act_redo.setEnabled(self.history.can_redo())

    def _apply_params(self, params: RenderParams, kind: str) -> None:
        s = self.settings
        s.pix, s.sem, s.realism, s.scale = params.pix, params.sem, params.realism, params.scale
        s.color_fix, s.prompt = params.color_fix, params.prompt
        if self.photo is not None and self.view.before is not None:
            want = (self.photo.width * params.scale, self.photo.height * params.scale)
            if (self.view.before.width(), self.view.before.height()) != want:
                self.worker.submit(Job("scale", {"scale": params.scale}))
                return  # the new 'before' arrives first, then renders
        self.request_render(kind)

    def request_render(self, kind: str = "other") -> None:
        """Show an instant preview if the cached corners allow it, then queue the exact render (newest wins).

        The exact render does the visible region first, then the whole photo; a newer request cancels a running
        render of older settings between tiles, so dragging never builds a queue of stale work.
        """
        if self.model_info is None or self.photo is None:
            return
        params = self.controls.params()
        if params == self.shown_params and self.shown_kind == "exact":
            return
        if self.blender is not None and self.corners_for == corner_key(params):
            self.show_preview(params)
        elif self.view.after is not None:
            self.shown_kind = "stale"
        region = self.view.visible_image_rect()
        self.worker.supersede_running("render")
        self.worker.submit(Job("render", {"params": params, "region": region}))
        if self.act_detail.isChecked():
            self.worker.submit(Job("detail", {"params": params}))
        self._refresh_badge()

    def show_preview(self, params: RenderParams) -> None:
        """The first update of a strength change: blend the cached corner images (a few ms, on this thread)."""
        assert self.blender is not None
        start = time.perf_counter()
        self.view.set_after(qimage_from_rgb(self.blender.blend(params.pix, params.sem)))
        self.view.repaint()  # on screen now, not at the next idle moment
        self.last_preview_ms = (time.perf_counter() - start) * 1000
        self.preview_count += 1
        self.shown_params, self.shown_kind = params, "preview"

    def _rendered(self, job_id: int, params: RenderParams, image: object, region: object, seconds: float) -> None:
        if params != self.controls.params():
            return  # a stale result: the controls have moved on
        img = qimage_from_rgb(image)  # type: ignore[arg-type]
        if region is not None:
            x0, y0, _x1, _y1 = region  # type: ignore[misc]
            self.view.paste_after(img, x0, y0)
            self.shown_params, self.shown_kind = params, "partial"
            self._refresh_badge()
            return
        self.view.set_after(img)
        self.shown_params = params
        self.shown_kind = "exact"
        self.act_pin.setEnabled(True)
        self.last_render_seconds = seconds
        preview = f" (preview {self.last_preview_ms:.0f} ms)" if self.last_preview_ms is not None else ""
        self.lbl_time.setText(f"Render {seconds:.2f} s{preview}")
        self._refresh_badge()
        self._update_model_state()
        if self.corners_for != corner_key(params) and self.model_info is not None:
            self.worker.submit(Job("corners", {"params": params}))

    def _corners_ready(self, params: RenderParams, blender: CornerBlend) -> None:
        if corner_key(params) == corner_key(self.controls.params()):
            self.blender = blender
            self.corners_for = corner_key(params)

    def _detail_ready(self, params: RenderParams, values: object) -> None:
        if params == self.controls.params() and self.act_detail.isChecked():
            self.view.overlay = qimage_from_rgb(colormap(values))  # type: ignore[arg-type]
            self.detail_for = params
            self.view.update()

    def _toggle_detail(self, on: bool) -> None:
        self.view.show_overlay = on
        if on and self.model_info is not None and self.photo is not None and self.detail_for != self.controls.params():
            self.worker.submit(Job("detail", {"params": self.controls.params()}))
        self.view.update()

    def _progress(self, done: int, total: int, label: str, stage: str) -> None:
        self.progress.setVisible(True)
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"{label} %p%")
        self.progress.setToolTip(f"{label}: {stage} step {done} of {total}")

    def _busy(self, busy: bool) -> None:
        self.busy = busy
        self.progress.setVisible(busy)
        self.btn_cancel.setVisible(busy)
        self.act_cancel.setEnabled(busy)
        if busy:
            self.progress.setMaximum(0)  # indeterminate until the first report
        self._refresh_badge()

    def _refresh_badge(self) -> None:
        """Say on screen what the "after" side shows, and whether something is still rendering."""
        text, tip = BADGES.get(self.shown_kind, ("", ""))
        if self.busy and self.shown_kind != "exact":
            text = f"{text} · rendering…" if text else "rendering…"
        self.view.badge = text
        self.lbl_badge.setText(f"<b>{text}</b>" if text else "")
        self.lbl_badge.setToolTip(tip)
        self.view.update()

    def cancel_render(self) -> None:
        self.worker.cancel()
        self.statusBar().showMessage("Render cancelled", 4000)

    # -- export, batch, about -------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.photo is None or self.model_info is None:
            return
        params = self.controls.params()
        s = self.settings
        if self.controls.scale.problem():
            QMessageBox.warning(self, "Save result as", self.controls.scale.problem())
            return
        plan = self.controls.scale.plan()
        depth = 16 if self.photo.info.get("raw") else s.export_bit_depth  # RAW results default to 16 bits
        dlg = ExportDialog(self, self.photo.source, params.scale, s.last_folder, s.export_format, depth,
                           s.export_quality, s.name_template, target=self.controls.scale.target(),
                           size=plan.size if plan is not None and plan.resample else None)  # fmt: skip
        if dlg.exec():
            self.export_to(dlg.target(), dlg.options())
            s.export_format, s.export_quality = dlg.fmt(), dlg.quality.value()
            s.export_bit_depth = int(dlg.depth.currentData())

    def export_to(self, path: Path, options: object) -> None:
        self.statusBar().showMessage(f"Saving {path}…")
        self.worker.submit(Job("export", {"params": self.controls.params(), "path": str(path), "options": options}))

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
        dlg = BatchDialog(
            self,
            model_spec=self.model_spec,
            params=self.controls.params(),
            current_photo=self.photo_path,
            settings_dir=self.settings_dir,
            device=self.settings.device,
            supports_realism=self.model_info.supports_realism if self.model_info is not None else True,
        )
        self.batch_dialog = dlg
        dlg.show()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About desktop-sr",
            f"<b>desktop-sr {__version__}</b><br>Diffusion super-resolution for photos.<br>"
            "PiSA-SR (pixel and semantic LoRA on Stable Diffusion 2.1-base) with RCOD-style realism levels.<br>"
            f"Model: {self.model_info.name if self.model_info else 'none'}"
            + (f" — weights licence: {self.model_info.licence}" if self.model_info and self.model_info.licence else "")
            + f"<br><br>{ABOUT_LICENCES}",
        )

    def show_error(self, title: str, message: str) -> None:
        """One modal dialog at a time: errors arriving while one is open go to the status bar only."""
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        if self._error_open:
            return
        self._error_open = True
        try:
            QMessageBox.critical(self, title, message)
        finally:
            self._error_open = False

    # -- view modes, keys, drops, closing ---------------------------------------------------------------------------
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


def default_model_spec() -> ModelSpec | None:
    """The model manager's default if there is one, else the bundled upscaler if it can run here, else None (then
    the window asks for a model instead of failing to load one).

    Only looks for files and modules, never imports the engine's model code here: that pulls in torch, which
    belongs to the worker thread.
    """
    from ..models.registry import bundled_available, default_spec

    spec = default_spec()
    if spec is not None:
        return spec
    return ModelSpec.bundled() if bundled_available() else None
