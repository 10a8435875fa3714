"""A/B in the compare view: a kept result (another model's, or other settings') on the "before" side, and saving
the view as shown.

One model is in memory at a time (PiSA-SR alone holds several GB), so the "before" of an A/B is a kept image, not
a second live model. :class:`ABCompare` is a controller the main window owns (``window.ab``); the window's menus
trigger it (View ▸ Keep as before, Compare with original, Compare with model, File ▸ Save comparison view).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QStatusBar, QWidget

from ..editor import EditorModel
from ..engine.loader import ModelSpec
from ..settings import Settings
from .compare_view import CompareView
from .images import rgb_from_qimage

log = logging.getLogger(__name__)


class ABCompare(QObject):
    """The kept "before" result of ``view``: pinned from what ``editor`` shows, labelled with the model and settings
    that made it. ``bar`` carries its messages, ``show_error`` the window's error dialog (one at a time)."""

    #: A kept result is on the "before" side (True) or the original photo is again (False).
    reference_changed = Signal(bool)

    def __init__(
        self,
        parent: QWidget,
        view: CompareView,
        editor: EditorModel,
        settings: Settings,
        bar: QStatusBar,
        show_error: Callable[[str, str], None],
    ) -> None:
        super().__init__(parent)
        self.parent_widget, self.view, self.editor, self.settings, self.bar = parent, view, editor, settings, bar
        self.show_error = show_error
        self.reference_scale: int | None = None  # the scale of the kept "before" result (it belongs to the open photo)

    def pin_result(self) -> None:
        """Keep the result on screen as the "before" side, labelled with the model and settings that made it."""
        e = self.editor
        if e.shown != "exact" or self.view.after is None or e.photo is None or e.shown_params is None:
            self.bar.showMessage("Wait for the render to finish, then keep it as the before side", 6000)
            return
        p, info = e.shown_params, e.model_info
        name = info.name if info is not None else "result"
        label = f"{name} · pixel {p.pix:.2f} · semantic {p.sem:.2f}"
        if info is not None and info.supports_realism:
            label += f" · realism {p.realism}"
        self.view.set_reference(self.view.after.copy(), label)
        self.reference_scale = p.scale
        self.reference_changed.emit(True)
        self.bar.showMessage(f"Before: {label}. Change the model or settings to compare.", 8000)

    def unpin_result(self) -> None:
        self.view.set_reference(None)
        self.reference_scale = None
        self.reference_changed.emit(False)

    def drop_stale_reference(self, scale: int, new_photo: bool) -> None:
        """A kept result belongs to one photo at one scale: another photo or scale goes back to the original."""
        if self.reference_scale is not None and (new_photo or self.reference_scale != scale):
            self.unpin_result()
            if not new_photo:
                self.bar.showMessage("The kept result was for another scale: comparing with the original", 8000)

    def compare_with_model(self, spec: ModelSpec) -> None:
        """A/B between models in one step: keep this model's result as "before", then load the other model."""
        self.pin_result()
        if self.reference_scale is not None:
            self.editor.load_model(spec)

    def other_models(self) -> list[ModelSpec]:
        """The usable models of the model manager (the bundled one included) and those loaded in this run, except
        the one loaded now."""
        specs: list[ModelSpec] = []
        try:
            from ..models.paths import models_dir
            from ..models.registry import ModelStore

            store = ModelStore(models_dir(self.settings.models_dir))
            specs = [store.spec_for(r.id) for r in store.rows() if r.usable]
        except Exception as exc:  # noqa: BLE001 - a damaged registry must not break a menu
            log.warning("cannot list models: %s", exc)
        specs += [s for s in self.editor.loaded_specs if s not in specs]
        return [s for s in specs if s != self.editor.model_spec]

    def fill_compare_menu(self, menu: QMenu) -> None:
        """View ▸ Compare with model, filled as it opens (the models may have changed since)."""
        menu.clear()
        can = self.editor.shown == "exact" and self.editor.photo is not None
        specs = self.other_models()
        for spec in specs:
            a = menu.addAction(spec.name, lambda s=spec: self.compare_with_model(s))
            a.setEnabled(can)
            a.setToolTip(f"Keep this result as before, then render with {spec.describe()}")
        if not specs:
            menu.addAction("No other model: add one in Model ▸ Models…").setEnabled(False)

    # -- saving the view ------------------------------------------------------------------------------------------
    def save_comparison_dialog(self) -> None:
        if self.view.before is None:
            return
        photo = self.editor.photo
        stem = photo.source.stem if photo is not None else "comparison"
        start = str(Path(self.settings.last_folder or Path.home()) / f"{stem}_comparison.png")
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Save comparison view", start, "PNG (*.png);;JPEG (*.jpg)"
        )
        if path:
            self.save_comparison_to(Path(path))

    def save_comparison_to(self, path: Path) -> bool:
        """Write the compare view as shown, through the imaging layer (atomic: never a half-written file)."""
        from ..imaging import PhotoError, SaveOptions, write_photo

        photo = self.editor.photo
        if photo is not None and path.exists() and path.resolve() == photo.source.resolve():
            self.show_error("Cannot save the comparison", f"{path}: that is the photo itself; choose another name")
            return False
        rgb = rgb_from_qimage(self.view.grab().toImage()).astype(np.float32) / 255.0
        try:
            write_photo(path, rgb, options=SaveOptions(bit_depth=8))
        except PhotoError as exc:
            self.show_error("Cannot save the comparison", str(exc))
            return False
        self.bar.showMessage(f"Saved {path}", 6000)
        return True
