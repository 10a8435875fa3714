"""The batch export dialog: choose photos and folders, see the planned outputs (conflicts highlighted) before
starting, follow progress with ETA and the current file, pause or cancel, and read a summary of what failed and why.

Non-modal and threaded: the main window stays usable while a batch runs. Planning, naming and collision rules
all come from :mod:`desktop_sr.batch`, so the dialog shows exactly what the runner (and the CLI) will do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..batch import (
    DEFAULT_TEMPLATE,
    FIELDS,
    BatchSettings,
    BatchSummary,
    FileResult,
    Manifest,
    ManifestError,
    Plan,
    PlanError,
    PlanItem,
    Progress,
    TemplateError,
    make_plan,
)
from ..batch.naming import TARGET_TEMPLATE
from ..batch.plan import Action, OnConflict
from ..batch.results import Status
from ..editor.executor import SharedModel
from ..engine.api import COLOR_FIXES, RenderParams
from ..engine.loader import ModelSpec
from ..engine.stages import Stage
from ..engine.tile_settings import TileSettings
from ..imaging import SUPPORTED_READ_EXTENSIONS
from ..imaging.preflight import writable_home_for
from ..models.paths import models_dir
from ..render_cost import render_work
from ..settings import BATCH_FILE, BatchChoices, config_dir, read_batch_choices, read_settings, save_batch_choices
from ..target_size import TargetKind
from ..timing import LONG_JOB_SECONDS, CostBook, RenderClock, format_duration
from .batch_worker import (
    BatchWorker,
    FileFinished,
    FileStarted,
    ModelLoading,
    ModelNote,
    PauseChanged,
    RunBatch,
    TileProgress,
)
from .controls import COLOR_FIX_LABELS, COLOR_FIX_TIP, NO_REALISM_TIP, color_fix_reason
from .face_choice import FaceChoiceRow
from .output_options import OutputOptions
from .size_choice import SizeChoice

log = logging.getLogger(__name__)
PREVIEW_ROWS = 200  # the table shows the first rows of the plan; the summary line counts all of them
CONFLICT_COLOUR = QColor(255, 224, 160)
REFUSED_COLOUR = QColor(255, 190, 190)
_ACTION_TEXT = {Action.WRITE: "new", Action.OVERWRITE: "overwrite", Action.RENAME: "rename",
                Action.SKIP: "skip (exists)", Action.DONE: "done earlier",
                Action.UNREADABLE: "cannot read"}  # fmt: skip
_CONFLICTS = (
    ("Skip it", (OnConflict.SKIP, "paren")),
    ("Overwrite it", (OnConflict.OVERWRITE, "paren")),
    ('Keep both: "name (1)"', (OnConflict.RENAME, "paren")),
    ('Keep both: "name_1"', (OnConflict.RENAME, "underscore")),
)


class BatchDialog(QDialog):
    """Batch export. ``params`` (the window's current sliders) and ``current_photo`` seed the dialog."""

    #: Emitted with the summary when a batch ends (finished or cancelled).
    finished_batch = Signal(object)

    def __init__(
        self,
        parent: QWidget | None,
        *,
        model_spec: ModelSpec | None,
        params: RenderParams,
        current_photo: Path | None,
        settings_dir: Path | None,
        device: str = "auto",
        tiles: TileSettings | None = None,
        supports_realism: bool = True,
        supports_color_fix: bool = True,
        color_fix_note: str = "",
        model_device: str | None = None,
        shared_model: SharedModel | None = None,
    ) -> None:
        """``model_device``: the device the window's model runs on (the key of the measured render cost, so a long
        batch is estimated before it starts); None: no estimate. ``shared_model``: the editor's model, which the
        batch borrows (or sets aside, on a GPU) instead of loading a second copy; None: the batch loads its own."""
        super().__init__(parent)
        self.setWindowTitle("Batch export")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.model_spec, self.current_photo = model_spec, current_photo
        self.prompt = params.prompt
        self.device, self.tiles = device, tiles
        self.supports_realism = supports_realism
        self.supports_color_fix, self.color_fix_note = supports_color_fix, color_fix_note
        self.model_device, self.shared_model = model_device, shared_model
        self.cost_book = CostBook()
        self._tried_start = False  # missing folders are a neutral hint until the user tries to start
        self._clock: RenderClock | None = None  # the current photo's render
        self._sizes: dict[Path, float] = {}  # output megapixels by source (the estimate, and what is recorded)
        self.settings_path = (settings_dir or config_dir()) / BATCH_FILE
        self.inputs: list[Path] = []
        self.plan: Plan | None = None
        self.worker: BatchWorker | None = None
        self.summary: BatchSummary | None = None
        self.failures: list[FileResult] = []
        self._build(params)
        self._restore()
        self._plan_timer = QTimer(self, singleShot=True, interval=300)
        self._plan_timer.timeout.connect(self.refresh_plan)
        for signal in (self.output.textChanged, self.template.textChanged, self.recursive.toggled,
                       self.format.currentIndexChanged, self.conflict.currentIndexChanged,
                       self.scale.currentIndexChanged, self.pix.valueChanged, self.sem.valueChanged,
                       self.realism.valueChanged, self.color_fix.currentIndexChanged, self.depth.currentIndexChanged,
                       self.quality.valueChanged, self.keep_meta.toggled):  # fmt: skip
            signal.connect(self._schedule_plan)
        self.faces.changed.connect(self._schedule_plan)
        self._set_running(False)
        self.refresh_plan()
        self.resize(980, 760)

    # -- construction ---------------------------------------------------------------------------------------------
    def _build(self, params: RenderParams) -> None:
        # Photos
        self.input_list = QListWidget()
        self.input_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.btn_add_files = QPushButton("Add photos…")
        self.btn_add_folder = QPushButton("Add folder…")
        self.btn_add_current = QPushButton("Add the open photo")
        self.btn_add_current.setEnabled(self.current_photo is not None)
        self.btn_add_current.setToolTip(str(self.current_photo) if self.current_photo else "No photo is open")
        self.btn_remove = QPushButton("Remove")
        self.btn_clear = QPushButton("Clear")
        self.btn_add_files.clicked.connect(self._browse_files)
        self.btn_add_folder.clicked.connect(self._browse_folder)
        self.btn_add_current.clicked.connect(lambda: self.add_paths([self.current_photo] if self.current_photo else []))
        self.btn_remove.clicked.connect(self._remove_selected)
        self.btn_clear.clicked.connect(lambda: self.set_inputs([]))
        self.recursive = QCheckBox("Include sub-folders (mirrored in the output folder)")
        buttons = QVBoxLayout()
        for b in (self.btn_add_files, self.btn_add_folder, self.btn_add_current, self.btn_remove, self.btn_clear):
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.input_list, 1)
        top.addLayout(buttons)
        photos = QGroupBox("Photos")
        pl = QVBoxLayout(photos)
        pl.addLayout(top)
        pl.addWidget(self.recursive)

        # Output
        self.output = QLineEdit()
        self.output.setPlaceholderText("Folder for the results")
        self.btn_browse_output = QPushButton("Browse…")
        self.btn_browse_output.clicked.connect(self._browse_output)
        orow = QHBoxLayout()
        orow.addWidget(self.output, 1)
        orow.addWidget(self.btn_browse_output)
        self.template = QLineEdit(DEFAULT_TEMPLATE)
        self.template.setToolTip("Fields: " + "; ".join(f"{{{k}}} {v}" for k, v in FIELDS.items()))
        self.conflict = QComboBox()
        for label, value in _CONFLICTS:
            self.conflict.addItem(label, value)
        # the same widget as the save dialog's (format, bit depth, quality, metadata, transparency note)
        self.output_options = OutputOptions(self, allow_same=True, fmt="same", bit_depth=None)
        self.output_options.set_transparency(None)  # some photos may have it
        self.format, self.depth = self.output_options.format, self.output_options.depth
        self.quality, self.keep_meta = self.output_options.quality, self.output_options.keep_meta
        out_box = QGroupBox("Output")
        of = QFormLayout(out_box)
        of.addRow("Folder", orow)
        of.addRow("Name", self.template)
        of.addRow("Format", self.output_options)
        of.addRow("If a file exists", self.conflict)

        # Result (seeded from the window's sliders)
        self.pix, self.sem = QDoubleSpinBox(), QDoubleSpinBox()
        for box, value in ((self.pix, params.pix), (self.sem, params.sem)):
            box.setDecimals(2)
            box.setRange(0.0, 2.0)
            box.setSingleStep(0.05)
            box.setValue(value)
        self.realism = QSpinBox()
        self.realism.setRange(1, 999)
        self.realism.setValue(params.realism)
        if self.supports_realism:
            self.realism.setToolTip("Realism level: the diffusion timestep (1 default, 250 / 500 / 750 presets).")
        else:
            self.realism.setToolTip(NO_REALISM_TIP)
        self.scale = SizeChoice(self, default=params.scale)  # a scale or a target size (each photo its own scale)
        self.color_fix = QComboBox()
        for c in COLOR_FIXES:
            self.color_fix.addItem(COLOR_FIX_LABELS.get(c, c), c)
        self.color_fix.setCurrentIndex(max(0, self.color_fix.findData(params.color_fix)))
        self.color_fix.setToolTip(COLOR_FIX_TIP if self.supports_color_fix else color_fix_reason(self.color_fix_note))
        res_row = QHBoxLayout()
        for label, w in (("Pixel", self.pix), ("Semantic", self.sem), ("Realism", self.realism),
                         ("Scale", self.scale), ("Colour fix", self.color_fix)):  # fmt: skip
            res_row.addWidget(QLabel(label))
            res_row.addWidget(w)
        res_row.addStretch(1)
        self.faces = FaceChoiceRow(self)
        self.model_label = QLabel(f"Model: {self.model_spec.describe()}" if self.model_spec else "No model chosen")
        self.model_label.setWordWrap(True)
        res_box = QGroupBox("Result")
        rl = QVBoxLayout(res_box)
        rl.addLayout(res_row)
        rl.addWidget(self.faces)
        rl.addWidget(self.model_label)

        # Plan preview
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Photo", "Output", "Action"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)

        # Progress and summary: two labelled bars, the current photo's (tiles, rate, time left) and the batch's
        self.total_bar = QProgressBar()
        self.total_bar.setRange(0, 1000)
        self.total_bar.setValue(0)
        self.total_bar.setFormat("Not started")
        self.file_bar = QProgressBar()
        self.file_bar.setRange(0, 1000)
        self.file_bar.setValue(0)
        self.file_bar.setFormat("Not started")
        self.file_caption, self.total_caption = QLabel("Current photo"), QLabel("All photos")
        self.current_label = QLabel()
        self.eta_label = QLabel()
        self.summary_text = QPlainTextEdit(readOnly=True)
        self.summary_text.setVisible(False)
        self.summary_text.setMaximumHeight(160)

        self.btn_start = QPushButton("Start")
        self.btn_start.setDefault(True)
        self.btn_pause = QPushButton("Pause")
        self.btn_cancel = QPushButton("Cancel")
        self.btn_open = QPushButton("Open output folder")
        self.btn_close = QPushButton("Close")
        self.btn_start.clicked.connect(self.start)
        self.btn_pause.clicked.connect(self.toggle_pause)
        self.btn_cancel.clicked.connect(self.cancel)
        self.btn_open.clicked.connect(self.open_output_folder)
        self.btn_close.clicked.connect(self.close)
        brow = QHBoxLayout()
        brow.addWidget(self.btn_open)
        brow.addStretch(1)
        for b in (self.btn_start, self.btn_pause, self.btn_cancel, self.btn_close):
            brow.addWidget(b)

        lay = QVBoxLayout(self)
        lay.addWidget(photos, 1)
        lay.addWidget(out_box)
        lay.addWidget(res_box)
        lay.addWidget(self.plan_label)
        lay.addWidget(self.table, 4)
        lay.addWidget(self.current_label)
        bars = QFormLayout()
        bars.addRow(self.file_caption, self.file_bar)
        bars.addRow(self.total_caption, self.total_bar)
        lay.addLayout(bars)
        lay.addWidget(self.eta_label)
        lay.addWidget(self.summary_text)
        lay.addLayout(brow)

    # -- remembered choices ---------------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Last output folder and options (``settings.read_batch_choices``); the template and format default to the
        export's."""
        folder = self.settings_path.parent
        app_settings, _ = read_settings(folder)  # the window reports a broken file, not this
        self.models_dir = models_dir(app_settings.models_dir)
        self.faces.fill(self.models_dir)
        self.template.setText(app_settings.name_template or DEFAULT_TEMPLATE)
        self.format.setCurrentIndex(max(0, self.format.findData(app_settings.export_format)))
        self.quality.setValue(app_settings.export_quality)
        saved = read_batch_choices(folder)
        if saved.output:
            self.output.setText(saved.output)
        if saved.template:
            self.template.setText(saved.template)
        if saved.format:
            self.format.setCurrentIndex(max(0, self.format.findData(saved.format)))
        if saved.conflict is not None and 0 <= saved.conflict < self.conflict.count():
            self.conflict.setCurrentIndex(saved.conflict)
        if saved.recursive is not None:
            self.recursive.setChecked(saved.recursive)
        if saved.keep_metadata is not None:
            self.keep_meta.setChecked(saved.keep_metadata)

    def _save(self) -> None:
        choices = BatchChoices(
            output=self.output.text(),
            template=self.template.text(),
            format=str(self.format.currentData() or ""),
            conflict=self.conflict.currentIndex(),
            recursive=self.recursive.isChecked(),
            keep_metadata=self.keep_meta.isChecked(),
        )
        save_batch_choices(choices, self.settings_path.parent)

    # -- inputs ---------------------------------------------------------------------------------------------------
    def add_paths(self, paths: list[Path | str]) -> None:
        for p in paths:
            path = Path(p)
            if path not in self.inputs:
                self.inputs.append(path)
                self.input_list.addItem(str(path) + ("  (folder)" if path.is_dir() else ""))
        if not self.output.text() and self.inputs:
            first = self.inputs[0]
            base = first if first.is_dir() else first.parent
            home = writable_home_for(base)  # beside the photos, unless that is in the app's files or read-only
            self.output.setText(str(home / f"{base.name}_upscaled"))
        self._schedule_plan()

    def set_inputs(self, paths: list[Path | str]) -> None:
        self.inputs.clear()
        self.input_list.clear()
        self.add_paths(paths)
        self._schedule_plan()

    def _remove_selected(self) -> None:
        rows = sorted((self.input_list.row(i) for i in self.input_list.selectedItems()), reverse=True)
        for r in rows:
            self.input_list.takeItem(r)
            del self.inputs[r]
        self._schedule_plan()

    def _browse_files(self) -> None:
        pattern = " ".join(f"*{e}" for e in sorted(SUPPORTED_READ_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos", "", f"Photos ({pattern});;All files (*)")
        self.add_paths(list(files))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.add_paths([folder])

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output.text())
        if folder:
            self.output.setText(folder)

    # -- settings and plan ----------------------------------------------------------------------------------------
    def params(self) -> RenderParams:
        return RenderParams(pix=self.pix.value(), sem=self.sem.value(), realism=self.realism.value(),
                            scale=self.scale.scale(), color_fix=str(self.color_fix.currentData()),
                            prompt=self.prompt)  # fmt: skip

    def batch_settings(self) -> BatchSettings:
        """The settings as shown. Raises ValueError (TemplateError, PlanError) when they cannot work."""
        policy, style = self.conflict.currentData()
        target = self.scale.target()
        dpi = target.dpi if target is not None and target.kind is TargetKind.PRINT else None
        save = self.output_options.save_options(dpi=dpi)
        template = self.template.text()
        if target is not None and template == DEFAULT_TEMPLATE:
            template = TARGET_TEMPLATE  # {scale} differs per photo with a target
        text = self.output.text().strip()
        if not text:
            raise PlanError("choose an output folder")
        settings = BatchSettings(
            output_dir=Path(text).expanduser(), params=self.params(), template=template, save=save, target=target,
            on_conflict=policy, rename_style=style, recursive=self.recursive.isChecked(),
            model_name=self.model_spec.name if self.model_spec else "model", faces=self.faces.choice(self.device),
        )  # fmt: skip
        settings.validate()
        return settings

    def _schedule_plan(self) -> None:
        if self.worker is None:
            self._plan_timer.start()

    def refresh_plan(self) -> Plan | None:
        """Plan again and fill the preview; shows the error instead when the settings cannot work."""
        self.plan = None
        self.template.setStyleSheet("")
        missing = self._missing()
        if missing:  # a fresh dialog: say what to do, in neutral words, until the user tries to start
            text = "To start: " + " and ".join(missing) + "."
            self._show_problem(text) if self._tried_start else self._show_hint(text)
            return None
        try:
            settings = self.batch_settings()
            manifest = Manifest(settings.output_dir)
            plan = make_plan(self.inputs, settings, manifest)
        except TemplateError as exc:
            self.template.setStyleSheet("background: #ffd0d0")
            self._show_problem(str(exc))
            return None
        except (PlanError, ManifestError, ValueError) as exc:
            self._show_problem(str(exc))
            return None
        self.plan = plan
        self._fill_table(plan)
        if not plan.items:
            hint = "" if self.recursive.isChecked() else " Sub-folders are not included."
            self._show_problem("No photos found." + hint)
        else:
            conflicts = len(plan.conflicts)
            note = f" — {conflicts} conflict{'s' if conflicts != 1 else ''} (highlighted)" if conflicts else ""
            self.plan_label.setText(f"<b>Plan:</b> {plan.describe()}{note}")
        self._update_start()
        return plan

    def _missing(self) -> list[str]:
        missing = [] if self.inputs else ["add photos or a folder"]
        if not self.output.text().strip():
            missing.append("choose an output folder")
        return missing

    def _show_hint(self, text: str) -> None:
        self.plan_label.setText(_html(text))
        self.table.setRowCount(0)
        self._update_start()

    def _show_problem(self, text: str) -> None:
        self.plan_label.setText(f"<span style='color:#b00020'>{_html(text)}</span>")
        if self.plan is None:
            self.table.setRowCount(0)
        self._update_start()

    def _fill_table(self, plan: Plan) -> None:
        rows: list[tuple[str, str, str, str, QColor | None]] = []
        out = Path(plan.settings.output_dir)
        for r in plan.refused:
            rows.append((str(r.path), "", "refused", r.reason, REFUSED_COLOUR))
        for item in plan.items[:PREVIEW_ROWS]:
            action = _ACTION_TEXT.get(item.action, item.action)
            rows.append((str(item.source), _rel(item.target, out), action, item.conflict,
                         REFUSED_COLOUR if item.action == Action.UNREADABLE
                         else CONFLICT_COLOUR if item.conflict else None))  # fmt: skip
        if len(plan.items) > PREVIEW_ROWS:
            rows.append((f"… and {len(plan.items) - PREVIEW_ROWS} more", "", "", "", None))
        self.table.setRowCount(len(rows))
        for r, (src, dst, action, why, colour) in enumerate(rows):
            for c, text in enumerate((src, dst, action + (f" ({why})" if why else ""))):
                cell = QTableWidgetItem(text)
                if why:
                    cell.setToolTip(why)
                if colour is not None:
                    cell.setBackground(QBrush(colour))
                self.table.setItem(r, c, cell)

    def _update_start(self) -> None:
        running = self.worker is not None
        ok = self.plan is not None and any(i.runs for i in self.plan.items) and self.model_spec is not None
        self.btn_start.setEnabled(ok and not running)
        if self.model_spec is None:
            self.btn_start.setToolTip("Choose a model first (Model ▸ Choose model…)")
        else:
            self.btn_start.setToolTip("")

    # -- running --------------------------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        for w in (self.input_list, self.btn_add_files, self.btn_add_folder, self.btn_remove, self.btn_clear,
                  self.recursive, self.output, self.btn_browse_output, self.template, self.output_options,
                  self.conflict, self.pix, self.sem, self.realism, self.scale, self.color_fix):  # fmt: skip
            w.setEnabled(not running)
        self.realism.setEnabled(not running and self.supports_realism)
        self.color_fix.setEnabled(not running and self.supports_color_fix)
        self.btn_add_current.setEnabled(not running and self.current_photo is not None)
        self.btn_pause.setEnabled(running)
        self.btn_cancel.setEnabled(running)
        self.btn_pause.setText("Pause")
        self._update_start()

    def start(self) -> bool:
        """Plan once more (the folder may have changed) and start the worker. False if it cannot start."""
        if self.worker is not None:
            return False
        self._tried_start = True
        if self.model_spec is None:
            QMessageBox.information(self, "Batch export", "Choose a model first (Model ▸ Choose model…).")
            return False
        plan = self.refresh_plan()
        if plan is None or not any(i.runs for i in plan.items):
            return False
        if not self._confirm_estimate(plan):
            return False
        self._save()
        self.summary, self.failures = None, []
        self.summary_text.clear()
        self.summary_text.setVisible(False)
        self.total_bar.setValue(0)
        self.file_bar.setValue(0)
        self.file_bar.setFormat("Current photo: waiting for the model")
        self.eta_label.setText("")
        self.model_label.setText(f"Model: {self.model_spec.describe()}")  # a note from an earlier run is gone
        job = RunBatch(plan, self.model_spec, device=self.device, tiles=self.tiles, models_dir=self.models_dir)
        worker = BatchWorker(job, parent=self, shared=self.shared_model)
        worker.result.connect(self._news)
        worker.failed.connect(lambda _job, message: self._failed(message))
        self.worker = worker
        self._set_running(True)
        worker.start()
        return True

    def toggle_pause(self) -> None:
        if self.worker is None:
            return
        if self.worker.control.paused:
            self.worker.resume()
            self.btn_pause.setText("Pause")
            self.current_label.setText(self.current_label.text().removesuffix(" — paused"))
        else:
            self.worker.pause()
            self.btn_pause.setText("Resume")
            self.current_label.setText(self.current_label.text() + " — paused")

    def cancel(self) -> None:
        """Stop within one tile; the photo in progress is abandoned and leaves no file."""
        if self.worker is not None:
            self.worker.cancel()
            self.btn_cancel.setEnabled(False)
            self.btn_pause.setEnabled(False)
            self.current_label.setText("Cancelling…")

    def _news(self, _job: RunBatch, news: object) -> None:
        if isinstance(news, TileProgress):
            self._tile_progress(news.progress)
        elif isinstance(news, FileStarted):
            self._file_started(news.item, news.progress)
        elif isinstance(news, FileFinished):
            self._file_finished(news.result, news.progress)
        elif isinstance(news, PauseChanged):
            self._paused_changed(news.paused)
        elif isinstance(news, ModelLoading):
            self.current_label.setText("Loading the model…")
        elif isinstance(news, ModelNote) and self.model_spec is not None:
            self.model_label.setText(f"Model: {self.model_spec.describe()} — {news.text}")
        elif isinstance(news, BatchSummary):
            self._done(news)

    def _file_started(self, item: PlanItem, progress: Progress) -> None:
        self.current_label.setText(f"{progress.index + 1} of {progress.total}: {item.source.name} → {item.target.name}")
        self._clock = RenderClock()
        self.file_bar.setValue(0)
        self.file_bar.setFormat("Current photo: reading")
        self._show_progress(progress)

    def _tile_progress(self, progress: Progress) -> None:
        clock = self._clock = self._clock or RenderClock()
        clock.update(progress.tile_done, progress.tile_total, progress.stage)
        self.file_bar.setValue(int(clock.fraction * 1000))
        self.file_bar.setFormat(f"Current photo: {stage_words(progress.stage)} tiles {progress.tile_done} of "
                                f"{progress.tile_total}")  # fmt: skip
        self._show_progress(progress)

    def _file_finished(self, result: FileResult, progress: Progress) -> None:
        if result.status == Status.FAILED:
            self.failures.append(result)
        elif result.model_seconds > 0 and self._sizes.get(result.source) and self.model_spec and self.model_device:
            self.cost_book.record(self.model_spec.name, self.model_device, self._sizes[result.source],
                                  result.model_seconds)  # fmt: skip
        self._clock = None
        self._show_progress(progress)

    def _show_progress(self, progress: Progress) -> None:
        """Both bars and one line of rate and time left: from the first tile on (the current photo's clock), and
        for the whole batch from the photos done so far, else from this photo's pace."""
        self.total_bar.setValue(int(progress.fraction * 1000))
        shown = min(progress.total, progress.index + 1) if progress.finished < progress.total else progress.total
        self.total_bar.setFormat(f"Photo {shown} of {progress.total} ({progress.finished} done)")
        parts = [f"Elapsed {format_duration(progress.elapsed)}"]
        clock = self._clock
        per_tile = clock.seconds_per_tile() if clock is not None else None
        photo_left = clock.eta() if clock is not None else None
        if per_tile is not None:
            parts.append(f"{per_tile:.1f} s/tile")
        if photo_left is not None:
            parts.append(f"this photo {format_duration(photo_left)} left")
        total_left = progress.eta_seconds
        if total_left is None and clock is not None and photo_left is not None:
            whole = clock.total_estimate() or 0.0  # nothing finished yet: the others at this photo's pace
            total_left = photo_left + whole * max(0, progress.total - progress.finished - 1)
        if total_left is not None:
            parts.append(f"all photos about {format_duration(total_left)} left")
        elif progress.finished < progress.total:
            parts.append("time left: after the first tile")
        self.eta_label.setText(" — ".join(parts))

    def _confirm_estimate(self, plan: Plan) -> bool:
        """Before a batch estimated (from earlier renders on this machine) over the long-job threshold, ask."""
        scale = self.scale.scale()
        if self.model_spec is None or self.model_device is None:
            self._sizes = {}
            return True
        kind, sized = self.model_spec.kind, plan.sized_runs()
        self._sizes = {item.source: render_work(kind, w, h, scale) for item, (w, h) in sized}
        megapixels = sum(w * h * scale * scale / 1e6 for _, (w, h) in sized)
        estimate = self.cost_book.estimate(self.model_spec.name, self.model_device, list(self._sizes.values()))
        if estimate is None or estimate.seconds <= LONG_JOB_SECONDS:
            return True
        answer = QMessageBox.question(
            self, "Batch export",
            f"This batch ({len(self._sizes)} photos, {megapixels:.0f} megapixels out) will take "
            f"{estimate.describe()} on this machine (measured on earlier renders with "
            f"{self.model_spec.name}).\n\nStart it?",
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Yes

    def _paused_changed(self, paused: bool) -> None:
        self.eta_label.setText("Paused" if paused else self.eta_label.text())

    def _finish_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker.deleteLater()
        self.worker = None
        self._set_running(False)

    def _done(self, summary: BatchSummary) -> None:
        self.summary = summary
        self._finish_worker()
        early = summary.cancelled or bool(summary.stopped)
        self.file_bar.setValue(self.file_bar.maximum() if not early else 0)
        self.file_bar.setFormat("Current photo: done" if not early else "Current photo: stopped")
        if not early:
            self.total_bar.setValue(1000)
        if summary.stopped:
            self.current_label.setText(f"Stopped: {summary.stopped}.")
        else:
            self.current_label.setText("Cancelled." if summary.cancelled else "Finished.")
        self.eta_label.setText(summary.describe())
        lines = [summary.describe()]
        if summary.failures:
            lines.append("")
            lines.append(f"{len(summary.failures)} photo(s) failed:")
            lines += [f"{path}: {reason}" for path, reason in summary.failures]
        self.summary_text.setPlainText("\n".join(lines))
        self.summary_text.setVisible(True)
        self.refresh_plan()
        self.finished_batch.emit(summary)

    def _failed(self, message: str) -> None:
        self._finish_worker()
        self.current_label.setText("The batch could not start.")
        self.summary_text.setPlainText(message)
        self.summary_text.setVisible(True)
        QMessageBox.warning(self, "Batch export", message)
        self.finished_batch.emit(None)

    def open_output_folder(self) -> bool:
        folder = Path(self.output.text().strip()).expanduser()
        if not folder.is_dir():
            QMessageBox.information(self, "Batch export", f"{folder} does not exist yet.")
            return False
        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))

    @property
    def running(self) -> bool:
        return self.worker is not None

    def reject(self) -> None:
        """Escape closes like the Close button (so a running batch is never left going in a hidden dialog)."""
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Closing while running asks first; yes cancels (within a tile) and waits for the worker to stop."""
        if self.worker is not None:
            answer = QMessageBox.question(self, "Batch export", "A batch is running. Cancel it and close?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.worker.stop()  # cancels within a tile, then waits for the thread
            self.worker = None
        self._save()
        event.accept()
        self.done(QDialog.DialogCode.Rejected)  # not super(): QDialog's closeEvent calls reject(), which closes


#: The engine's stages (by kind: every UNet pass is "model") in plain words.
STAGE_WORDS = {Stage.ENCODE: "encoding", Stage.UNET: "model", Stage.DECODE: "decoding", Stage.UPSCALE: "model"}


def stage_words(stage: str) -> str:
    kind = Stage.kind_of(stage)
    return STAGE_WORDS.get(kind, stage) if kind is not None else stage


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
