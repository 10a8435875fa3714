"""The output-file options, one widget for the save dialog and the batch dialog.

The same choices as the command line's shared output options (``desktop-sr upscale`` and ``batch``:
:func:`desktop_sr.cli.common.add_output_args`): format (or the source's), bit depth (PNG/TIFF), quality (JPEG/WebP)
and keep or strip metadata, turned into the one :class:`~desktop_sr.imaging.SaveOptions` the writer takes. A format
that cannot hold transparency says so before anything is written (the writer flattens onto white).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..imaging import SaveOptions
from ..imaging.formats import ALPHA_FORMATS, OUTPUT_FORMAT_CHOICES

FORMAT_LABELS = {"same": "Same as source", "png": "PNG", "jpeg": "JPEG", "webp": "WebP", "tiff": "TIFF"}
DEEP = ("png", "tiff")  # formats with a 16-bit choice
LOSSY = ("jpeg", "webp")  # formats with a quality
METADATA_TIP = (
    "EXIF (orientation reset, sizes updated), XMP and DPI from the photo. Off: none of them are written.\n"
    "The colour profile is kept either way whenever the colours need it."
)


class OutputOptions(QWidget):
    """``allow_same``: offer "Same as source" (a batch mixes formats). ``changed`` fires on any change."""

    changed = Signal()

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        allow_same: bool = False,
        fmt: str = "png",
        bit_depth: int | None = None,
        quality: int = 95,
        keep_metadata: bool = True,
    ) -> None:
        super().__init__(parent)
        self.allow_same = allow_same
        self.format = QComboBox()
        for key in OUTPUT_FORMAT_CHOICES:
            if key != "same" or allow_same:
                self.format.addItem(FORMAT_LABELS[key], key)
        self.depth = QComboBox()
        self.depth.addItem("As the source", None)
        self.depth.addItem("8 bit", 8)
        self.depth.addItem("16 bit", 16)
        self.depth.setToolTip("Bits per channel of PNG and TIFF files (JPEG and WebP are always 8 bit)")
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setToolTip("JPEG and WebP quality (1-100)")
        self.keep_meta = QCheckBox("Keep metadata (EXIF, XMP, DPI)")
        self.keep_meta.setToolTip(METADATA_TIP)
        self.alpha_note = QLabel("")
        self.alpha_note.setWordWrap(True)
        self.alpha_note.setStyleSheet("color: #a05a00")
        self.alpha_note.setVisible(False)
        self._transparency: bool | None = False  # None: unknown (a batch), some photos may have it

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.format)
        row.addWidget(QLabel("Bit depth"))
        row.addWidget(self.depth)
        row.addWidget(QLabel("Quality"))
        row.addWidget(self.quality)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.keep_meta)
        lay.addWidget(self.alpha_note)
        self.set_values(fmt, bit_depth, quality, keep_metadata)
        self.format.currentIndexChanged.connect(self._format_changed)
        for signal in (self.format.currentIndexChanged, self.depth.currentIndexChanged, self.quality.valueChanged,
                       self.keep_meta.toggled):  # fmt: skip
            signal.connect(lambda *_: self.changed.emit())
        self._format_changed()

    def set_values(self, fmt: str | None, bit_depth: int | None, quality: int, keep_metadata: bool) -> None:
        self.format.setCurrentIndex(max(0, self.format.findData(fmt or "png")))
        self.depth.setCurrentIndex(max(0, self.depth.findData(bit_depth)))
        self.quality.setValue(quality)
        self.keep_meta.setChecked(keep_metadata)

    def fmt(self) -> str:
        return str(self.format.currentData())

    def set_transparency(self, has: bool | None) -> None:
        """Whether what is saved has transparent pixels: True (this photo), False, None (some photos may)."""
        self._transparency = has
        self._update_note()

    def _format_changed(self) -> None:
        fmt = self.fmt()
        self.depth.setEnabled(fmt in (*DEEP, "same"))  # a disabled dialog disables them all the same
        self.quality.setEnabled(fmt in (*LOSSY, "same"))
        self._update_note()

    def _update_note(self) -> None:
        fmt = self.fmt()
        name = FORMAT_LABELS.get(fmt, fmt.upper())
        if fmt in ("same", *ALPHA_FORMATS) or self._transparency is False:
            text = ""
        elif self._transparency:
            text = (f"This photo has transparency: {name} cannot hold it, so transparency will be flattened onto "
                    "white (PNG, WebP and TIFF keep it).")  # fmt: skip
        else:
            text = (f"{name} cannot hold transparency: photos that have it will be flattened onto white "
                    "(PNG, WebP and TIFF keep it).")  # fmt: skip
        self.alpha_note.setText(text)
        self.alpha_note.setVisible(bool(text))

    def flattens(self) -> bool:
        """True when saving now would flatten this photo's transparency (the note is showing)."""
        return self._transparency is True and self.fmt() not in ("same", *ALPHA_FORMATS)

    def save_options(self, **extra: object) -> SaveOptions:
        """The writer's options as shown; ``extra`` adds the caller's own (size, DPI, DPI policy)."""
        fmt = self.fmt()
        return SaveOptions(format=None if fmt == "same" else fmt, bit_depth=self.depth.currentData(),
                           quality=self.quality.value(),
                           keep_metadata=self.keep_meta.isChecked(), **extra)  # type: ignore[arg-type]  # fmt: skip
