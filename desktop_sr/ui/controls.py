"""The three controls (pixel strength, semantic strength, realism) plus scale, colour fix and description.

Every change emits ``changed(RenderParams, Change)``: ``Change.STRENGTH`` for the two strength sliders (the window
can show an instant preview from cached corner images), ``Change.OTHER`` for anything that needs new network work.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..editor.history import Change
from ..engine.api import REALISM_PRESETS, RenderParams
from .size_choice import SizeChoice

STEP = 0.05
#: The colour-fix choices in plain words (the window and the batch dialog show the same).
COLOR_FIX_LABELS = {"adain": "AdaIN (match colours)", "wavelet": "Wavelet (keep tones)", "none": "None"}
NO_REALISM_TIP = "This model has no realism levels: they need a diffusion model (PiSA-SR)."
COLOR_FIX_TIP = (
    "Colour correction after the model: keeps the photo's colours.\n"
    "AdaIN matches overall colour; Wavelet keeps the original's broad tones exactly; None shows the raw model."
)
NO_PROMPT_TIP = "This model does not read descriptions (it has no text encoder)."
NO_PROMPT_NOTE = "Not used by this model (descriptions need PiSA-SR)."
#: A disabled field must look disabled: some styles keep an enabled-looking white box (issue 16).
DISABLED_FIELD_STYLE = "QLineEdit:disabled { background: palette(window); color: palette(mid); }"


def color_fix_reason(note: str) -> str:
    """The engine's reason the colour fix is off, as a sentence for a note under the control."""
    note = note.strip() or "this model has no colour fix"
    return note[0].upper() + note[1:] + ("" if note.endswith(".") else ".")


CUSTOM = -1  # item data of the "Custom…" realism entry
REALISM_TIP = (
    "Realism level (the UNet timestep): this model was trained with realism grouping, so its levels trade\n"
    "fidelity (low) for realistic detail (high)."
)
EXPERIMENTAL_TIP = (
    "These adapters were trained at t = 1 only (like the official PiSA-SR weights). Other levels are experimental:\n"
    "the fidelity/realism trade of RCOD needs a model trained with realism grouping (desktop-sr-train --ldg)."
)
EXPERIMENTAL = " — experimental"
PROMPT_PLACEHOLDER = "optional, e.g. 'old portrait'"


def realism_label(t: int) -> str:
    """'Fidelity (t = 250)' for the RCOD presets, 't = 320' for anything else."""
    names = {v: k.capitalize() for k, v in REALISM_PRESETS.items()}
    return f"{names[t]} (t = {t})" if t in names else f"t = {t}"


#: For adapters trained at t = 1 only: the default, then the RCOD presets and any t, marked experimental.
REALISM_CHOICES = (
    [(realism_label(1), 1)]
    + [(realism_label(t) + EXPERIMENTAL, t) for t in REALISM_PRESETS.values() if t != 1]
    + [("Custom…" + EXPERIMENTAL, CUSTOM)]
)


class StrengthControl(QWidget):
    """A 0.00-2.00 slider in 0.05 steps with a spin box beside it; double-click the slider to reset to 1.0."""

    value_changed = Signal(float)

    def __init__(self, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round(2.0 / STEP))
        self.slider.setPageStep(4)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 2.0)
        self.spin.setSingleStep(STEP)
        self.spin.setDecimals(2)
        self.spin.setKeyboardTracking(False)
        for w in (self.slider, self.spin):
            w.setToolTip(tooltip + "\nDouble-click the slider to reset to 1.0.")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self.slider.installEventFilter(self)
        self.set_value(1.0)

    def value(self) -> float:
        return round(self.spin.value(), 2)

    def set_value(self, v: float) -> None:
        self.spin.setValue(v)

    def _from_slider(self, i: int) -> None:
        v = round(i * STEP, 2)
        if abs(self.spin.value() - v) > 1e-9:
            self.spin.setValue(v)

    def _from_spin(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(v / STEP))
        self.slider.blockSignals(False)
        self.value_changed.emit(round(v, 2))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.slider and event.type() == QEvent.Type.MouseButtonDblClick:
            self.set_value(1.0)
            return True
        return super().eventFilter(obj, event)


class ControlsPanel(QWidget):
    changed = Signal(object, object)  # RenderParams, Change (object: Qt would hand a str enum over as a plain str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pix = StrengthControl(
            "Pixel fidelity: how strongly the result sticks to the photo's own pixels and removes noise and blur.\n"
            "0 keeps the blurry enlargement; higher values clean up more."
        )
        self.sem = StrengthControl(
            "Semantic detail: how much plausible fine detail (texture, hair, foliage) the model adds.\n"
            "0 adds none; above 1 adds more and may invent things that were not there."
        )
        self.realism = QComboBox()
        for label, t in REALISM_CHOICES:
            self.realism.addItem(label, t)
        self.realism.setToolTip(REALISM_TIP)
        self.custom_t = QSpinBox()
        self.custom_t.setRange(1, 999)
        self.custom_t.setValue(100)
        self.custom_t.setToolTip("Custom realism level (diffusion timestep 1-999).")
        self.custom_t.setVisible(False)
        self.scale = SizeChoice(self)  # x2/x3/x4 or a target size (long edge, fit, print)
        self.size_note = QLabel("")
        self.size_note.setWordWrap(True)
        self.size_note.setStyleSheet("color: #b00")
        self.size_note.setVisible(False)
        self.scale.problem_changed.connect(self._size_problem)
        self.color_fix = QComboBox()
        for key, label in COLOR_FIX_LABELS.items():
            self.color_fix.addItem(label, key)
        self.color_fix.setToolTip(COLOR_FIX_TIP)
        self.color_fix_note = _note_label()
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText(PROMPT_PLACEHOLDER)
        self.prompt.setStyleSheet(DISABLED_FIELD_STYLE)
        self.prompt_note = _note_label()
        self._prompt_tip = (
            "Describe the photo in a few words to guide added detail. Leave empty for the neutral default."
        )
        self.prompt.setToolTip(self._prompt_tip)
        self.realism_note = _note_label()

        form = QFormLayout()
        form.addRow("Pixel fidelity", self.pix)
        form.addRow("Semantic detail", self.sem)
        row = QHBoxLayout()
        row.addWidget(self.realism, 1)
        row.addWidget(self.custom_t)
        cell = QVBoxLayout()  # the note sits under the choice and takes no space while hidden
        cell.addLayout(row)
        cell.addWidget(self.realism_note)
        form.addRow("Realism", cell)
        size_cell = QVBoxLayout()
        size_cell.addWidget(self.scale)
        size_cell.addWidget(self.size_note)
        form.addRow("Scale", size_cell)
        form.addRow("Colour fix", _stacked(self.color_fix, self.color_fix_note))
        form.addRow("Description", _stacked(self.prompt, self.prompt_note))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)

        self.pix.value_changed.connect(lambda _: self._emit(Change.STRENGTH))
        self.sem.value_changed.connect(lambda _: self._emit(Change.STRENGTH))
        self.realism.currentIndexChanged.connect(self._realism_changed)
        self.custom_t.valueChanged.connect(lambda _: (self._update_realism_note(), self._emit(Change.OTHER)))
        self.scale.size_changed.connect(lambda: self._emit(Change.OTHER))
        self.color_fix.currentIndexChanged.connect(lambda _: self._emit(Change.OTHER))
        self.prompt.editingFinished.connect(self._prompt_done)
        self._last_prompt = ""

    def _realism_changed(self) -> None:
        self.custom_t.setVisible(self.realism.currentData() == CUSTOM)
        self._update_realism_note()
        self._emit(Change.OTHER)

    def _prompt_done(self) -> None:
        if self.prompt.text().strip() != self._last_prompt:
            self._last_prompt = self.prompt.text().strip()
            self._emit(Change.OTHER)

    def realism_value(self) -> int:
        t = self.realism.currentData()
        return int(self.custom_t.value()) if t in (CUSTOM, None) else int(t)

    def params(self) -> RenderParams:
        return RenderParams(
            pix=self.pix.value(),
            sem=self.sem.value(),
            realism=self.realism_value(),
            scale=self.scale.scale(),
            color_fix=str(self.color_fix.currentData()),
            prompt=self.prompt.text().strip(),
        )

    def set_params(self, p: RenderParams) -> None:
        widgets = (self.pix, self.sem, self.realism, self.custom_t, self.scale, self.color_fix, self.prompt)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.pix.set_value(p.pix)
            self.pix.slider.setValue(round(p.pix / STEP))
            self.sem.set_value(p.sem)
            self.sem.slider.setValue(round(p.sem / STEP))
            idx = self.realism.findData(p.realism)
            if idx < 0:
                idx = self.realism.findData(CUSTOM)
                self.custom_t.setValue(p.realism)
            self.realism.setCurrentIndex(idx)
            self.custom_t.setVisible(self.realism.currentData() == CUSTOM)
            self.scale.set_scale(p.scale)
            self.color_fix.setCurrentIndex(max(0, self.color_fix.findData(p.color_fix)))
            self.prompt.setText(p.prompt)
            self._last_prompt = p.prompt
        finally:
            for w in widgets:
                w.blockSignals(False)

    def configure_for_model(
        self,
        supports_realism: bool,
        supports_prompt: bool,
        timesteps: tuple[int, ...],
        supports_color_fix: bool = True,
        color_fix_note: str = "",
        scales: tuple[int, ...] = (1, 2, 3, 4),
    ) -> None:
        """Offer exactly what the loaded model can do: its trained realism levels, or none at all, and the scales it
        makes; a control the model ignores is disabled, and a note under it says why (every control acts or says it
        does not)."""
        self.scale.set_scales(scales)
        self.realism.blockSignals(True)
        current = self.realism_value()
        self.realism.clear()
        grouped = bool(timesteps) and tuple(timesteps) != (1,)
        if grouped:
            for t in timesteps:
                self.realism.addItem(realism_label(t), t)
        else:
            for label, t in REALISM_CHOICES:
                self.realism.addItem(label, t)
        idx = self.realism.findData(current if supports_realism else REALISM_PRESETS["default"])
        if idx < 0 and not grouped:
            idx = self.realism.findData(CUSTOM)
            self.custom_t.setValue(current)
        self.realism.setCurrentIndex(max(0, idx))
        self.custom_t.setVisible(self.realism.currentData() == CUSTOM)
        self.realism.blockSignals(False)
        self.realism.setEnabled(supports_realism)
        self.custom_t.setEnabled(supports_realism)
        self._grouped = grouped
        self._supports_realism = supports_realism
        if not supports_realism:
            self.realism.setToolTip(NO_REALISM_TIP)
        else:
            self.realism.setToolTip(REALISM_TIP if grouped else EXPERIMENTAL_TIP)
        self._update_realism_note()
        self.prompt.setEnabled(supports_prompt)
        self.prompt.setToolTip(self._prompt_tip if supports_prompt else NO_PROMPT_TIP)
        self.prompt.setPlaceholderText(PROMPT_PLACEHOLDER if supports_prompt else "not used by this model")
        _show_note(self.prompt_note, "" if supports_prompt else NO_PROMPT_NOTE)
        self.color_fix.setEnabled(supports_color_fix)
        reason = "" if supports_color_fix else color_fix_reason(color_fix_note)
        self.color_fix.setToolTip(COLOR_FIX_TIP if supports_color_fix else reason)
        _show_note(self.color_fix_note, reason)

    def _update_realism_note(self) -> None:
        """Say what the chosen level is: one the model was trained for, or an experiment."""
        if not getattr(self, "_supports_realism", True):
            text = "Realism levels need a diffusion model."
        elif getattr(self, "_grouped", False):
            text = "This model was trained for exactly these realism levels."
        elif self.realism_value() != 1:
            text = "Experimental: these weights were trained at t = 1 only."
        else:
            text = ""
        _show_note(self.realism_note, text)

    def _size_problem(self, message: str) -> None:
        self.size_note.setText(message)
        self.size_note.setVisible(bool(message))

    def _emit(self, kind: Change) -> None:
        self.changed.emit(self.params(), kind)


def _note_label() -> QLabel:
    """A grey wrapped note under a control (why it is disabled, what a choice means); hidden while empty."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet("color: gray")
    label.setVisible(False)
    return label


def _show_note(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setToolTip(text)
    label.setVisible(bool(text))


def _stacked(control: QWidget, note: QLabel) -> QVBoxLayout:
    """The control with its note under it (the note takes no space while hidden)."""
    cell = QVBoxLayout()
    cell.addWidget(control)
    cell.addWidget(note)
    return cell
