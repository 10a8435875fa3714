"""The main window's status bar: what stays in it (sizes, zoom, the model, the render time, the badge, the running
job's progress and its Cancel button), apart from the window so the window is wiring.

Passing messages still go to the bar itself (``statusBar().showMessage``, a :class:`.MessageStatusBar` that never
cuts one off unseen); this object owns the permanent widgets and says in them what the editor model reports.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from ..editor.render_time import JobProgress
from ..engine.api import ModelInfo
from ..engine.loader import ModelSpec
from ..imaging import Photo
from ..target_size import SizePlan
from .device_menu import MODEL_LABEL_TIP


class WindowStatus:
    """The permanent widgets of ``bar``; ``cancel`` is what the Cancel button beside the progress bar does."""

    def __init__(self, bar: QStatusBar, cancel: Callable[[], None]) -> None:
        self.lbl_sizes = QLabel("")
        self.lbl_sizes.setToolTip("Photo size → result size, in pixels")
        self.lbl_model = QLabel("")
        self.lbl_model.setToolTip(MODEL_LABEL_TIP)  # the Device menu adds why this device, once the devices are known
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
        self.btn_cancel.clicked.connect(cancel)
        self.btn_cancel.setVisible(False)
        for w in (self.lbl_sizes, self.lbl_zoom, self.lbl_model, self.lbl_time, self.lbl_badge):
            w.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.lbl_eta)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.btn_cancel)

    def show_sizes(self, photo: Photo, before: np.ndarray, plan: SizePlan | None) -> None:
        """Photo size -> result size: a target's size with the model scale that reaches it, else the scale's."""
        shown = f"{plan.size[0]}×{plan.size[1]} (×{plan.scale})" if plan else f"{before.shape[1]}×{before.shape[0]}"
        self.lbl_sizes.setText(f"{photo.width}×{photo.height} → {shown}")

    def show_zoom(self, zoom: float) -> None:
        self.lbl_zoom.setText(f"{zoom * 100:.0f} %")

    def show_loading(self, spec: ModelSpec) -> None:
        self.lbl_model.setText(f"Loading {spec.name}…")

    def show_model(self, info: ModelInfo | None) -> None:
        self.lbl_model.setText("No model" if info is None else f"{info.name} · {info.device} · {info.dtype}")

    def show_badge(self, text: str, tip: str) -> None:
        """What the "after" side shows (the same words as the badge on the view)."""
        self.lbl_badge.setText(f"<b>{text}</b>" if text else "")
        self.lbl_badge.setToolTip(tip)

    def show_timing(self, seconds: float, preview_ms: float | None, stages: str) -> None:
        preview = f" (preview {preview_ms:.0f} ms)" if preview_ms is not None else ""
        self.lbl_time.setText(f"Render {seconds:.2f} s{preview}")
        self.lbl_time.setToolTip(f"Last render: {stages}" if stages else "")

    def show_progress(self, p: JobProgress) -> None:
        """The running job: how far (the bar), and its rate and time left from the first tile on (beside it)."""
        self.progress.setVisible(True)
        if p.fraction is None:  # a job just started: its name, a busy bar until its first report
            self.progress.setRange(0, 0)
            self.progress.setFormat(p.label)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(p.fraction * 1000))
            self.progress.setFormat(f"{p.label} %p%")
        self.progress.setToolTip(f"{p.label}: {p.detail}" if p.detail else p.label)
        self.lbl_eta.setText(p.detail)
        self.lbl_eta.setVisible(bool(p.detail))

    def set_busy(self, busy: bool) -> None:
        """The worker started or finished: the bar, the pace and the Cancel button show only while it works."""
        self.progress.setVisible(busy)
        self.lbl_eta.setVisible(busy and bool(self.lbl_eta.text()))
        if not busy:
            self.lbl_eta.setText("")
        self.btn_cancel.setVisible(busy)
