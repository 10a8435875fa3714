"""The Device menu: Automatic, then each device the engine can run on, and each one it cannot, greyed out with why.

Vulkan devices (``vulkan:N``) run the bundled model only: chosen for another model, it loads on the CPU and the
status bar says so. A software Vulkan device (llvmpipe) is offered but says in its text that it is the CPU.

The list comes from the engine's device inventory (``engine.hardware.devices``), which initialises CUDA and may
run ``nvidia-smi``: it runs once, as a small job on its own background relay (:mod:`.relay`), never on the GUI thread.
Choosing a device saves it (``settings.device``, what ``--device`` takes) and reloads the current model there, the
way a model change does. The status bar's model label says in its tooltip why the model runs where it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QMenu

from ..editor import EditorModel
from ..engine.hardware.devices import DeviceEntry, DeviceUnavailable, choose, explain
from ..settings import Settings, save_settings
from .relay import BackgroundRelay, RelayControl, Task

AUTOMATIC = "Automatic"
AUTOMATIC_TIP = (
    "The first usable of: an NVIDIA or AMD (ROCm) GPU, an Intel GPU (XPU), the Apple GPU (MPS), a Vulkan GPU (the "
    "bundled model only: any AMD, Intel, NVIDIA or Apple GPU), the CPU"
)
LOOKING = "Looking for devices…"
#: The model label's own tooltip; the device's story follows it.
MODEL_LABEL_TIP = "Model · device · number format"


class FindDevices(Task):
    """List this machine's compute devices (probes torch: a worker's job)."""

    slot: ClassVar[str | None] = "devices"
    label: ClassVar[str] = LOOKING


def find_devices(_job: FindDevices, _control: RelayControl) -> tuple[DeviceEntry, ...]:
    from ..engine.hardware.devices import inventory

    return inventory()


def entry_text(entry: DeviceEntry) -> str:
    """A menu item's text: "cuda:0 — NVIDIA GeForce RTX 3060, 12.0 GB", unusable ones say so."""
    memory = entry.memory_text()
    text = f"{entry.name} — {entry.label}" + (f", {memory}" if memory else "")
    return text if entry.usable else f"{text} (unusable)"


class DeviceMenu(QObject):
    """Fills ``menu`` and keeps it, the settings (saved in ``settings_dir``) and the editor's device in step;
    ``model_label`` is the status bar's model label, whose tooltip says why the model runs where it runs."""

    def __init__(
        self,
        parent: QObject,
        menu: QMenu,
        editor: EditorModel,
        settings: Settings,
        settings_dir: Path | None,
        model_label: QLabel,
    ) -> None:
        super().__init__(parent)
        self.menu, self.editor, self.settings, self.settings_dir = menu, editor, settings, settings_dir
        self.model_label = model_label
        self.entries: tuple[DeviceEntry, ...] | None = None
        self.problem = ""  # why the list could not be made, if it could not
        self.actions: dict[str, QAction] = {}  # by --device name ("auto" for Automatic)
        self._group: QActionGroup | None = None
        menu.setToolTipsVisible(True)
        self.relay = BackgroundRelay(find_devices, name="devices", parent=self)
        self.relay.result.connect(self._found)
        self.relay.failed.connect(self._failed)
        editor.model_changed.connect(lambda *_: self.update_model_tip())
        self._fill()
        self.update_model_tip()
        self.relay.submit(FindDevices())

    @property
    def preference(self) -> str:
        return self.settings.device or "auto"

    # -- the list ---------------------------------------------------------------------------------------------------
    def _found(self, _job: object, entries: tuple[DeviceEntry, ...]) -> None:
        self.entries = entries
        self._done()

    def _failed(self, _job: object, message: str) -> None:
        self.problem = message
        self._done()

    def _done(self) -> None:
        self.relay.stop()  # one look is enough: its thread ends here
        self._fill()
        self.update_model_tip()

    def _fill(self) -> None:
        self.menu.clear()
        self.actions.clear()
        if self._group is not None:
            self._group.deleteLater()
        group = self._group = QActionGroup(self.menu)
        group.setExclusive(True)
        pref = self.preference.strip().lower()
        auto = self._item(AUTOMATIC, "auto", group, explain(self.entries, "auto") if self.entries else AUTOMATIC_TIP)
        self.menu.addSeparator()
        known = False
        for entry in self.entries or ():
            if entry.usable:
                self._item(entry_text(entry), entry.name, group, entry.describe())
                known = known or _means(self.entries, pref, entry)
            else:
                a = self.menu.addAction(entry_text(entry))
                a.setEnabled(False)
                a.setToolTip(entry.reason)
                a.setStatusTip(entry.reason)
        if self.entries is None:
            a = self.menu.addAction(f"Could not list the devices: {self.problem}" if self.problem else LOOKING)
            a.setEnabled(False)
        if pref != "auto" and not known:
            self._unavailable(pref, group)
        chosen = self.actions.get("auto") if pref == "auto" else self._action_for(pref)
        (chosen or auto).setChecked(True)

    def _item(self, text: str, name: str, group: QActionGroup, tip: str) -> QAction:
        a = self.menu.addAction(text)
        a.setCheckable(True)
        a.setToolTip(tip)
        a.setStatusTip(tip)
        a.triggered.connect(lambda _=False, n=name: self.choose(n))
        group.addAction(a)
        self.actions[name] = a
        return a

    def _unavailable(self, pref: str, group: QActionGroup) -> None:
        """The saved device is not (or not yet known to be) here: shown checked, so the menu tells the truth."""
        why = LOOKING
        if self.entries is not None:
            try:
                choose(self.entries, pref)
                why = ""
            except DeviceUnavailable as exc:
                why = str(exc)
        text = pref if self.entries is None else f"{pref} (not available)"
        a = self._item(text, pref, group, why)
        a.setEnabled(self.entries is None)

    def _action_for(self, pref: str) -> QAction | None:
        if pref in self.actions:
            return self.actions[pref]
        if self.entries is not None:  # "cuda" means the first usable CUDA device
            for name, a in self.actions.items():
                if name != "auto" and _means(self.entries, pref, _entry(self.entries, name)):
                    return a
        return None

    # -- choosing -----------------------------------------------------------------------------------------------------
    def choose(self, name: str) -> None:
        """Run on ``name`` from now on (saved), reloading the current model there."""
        if name == self.preference:
            return
        self.settings.device = name
        save_settings(self.settings, self.settings_dir)
        self.editor.device = name
        spec = self.editor.model_spec
        if spec is not None:
            self.editor.load_model(spec)
        self.update_model_tip()  # the radio group has checked the item; the menu is not rebuilt under its signal

    def update_model_tip(self) -> None:
        """The model label's tooltip: what it shows, and why the model runs on this device."""
        info = self.editor.model_info
        if self.entries is None:
            why = f"Could not list the devices: {self.problem}" if self.problem else LOOKING
        else:
            why = explain(self.entries, self.editor.device, info.device if info is not None else None)
        self.model_label.setToolTip(f"{MODEL_LABEL_TIP}\n{why}")


def _entry(entries: tuple[DeviceEntry, ...] | None, name: str) -> DeviceEntry | None:
    return next((e for e in entries or () if e.name == name), None)


def _means(entries: tuple[DeviceEntry, ...] | None, pref: str, entry: DeviceEntry | None) -> bool:
    """Whether the saved preference (``cuda``, ``cuda:0``, ``cpu``) resolves to ``entry``."""
    if entries is None or entry is None or pref == "auto":
        return False
    try:
        return choose(entries, pref) is entry
    except DeviceUnavailable:
        return False
