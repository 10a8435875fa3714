"""Qt-free batch export: plan (sources, names, collisions), run (model once, progress, pause, cancel), resume.

The dialog (desktop_sr/ui/batch_dialog.py) and the ``desktop-sr batch`` command are two faces of this package.
"""

from .manifest import MANIFEST_NAME, Manifest, ManifestError
from .naming import DEFAULT_TEMPLATE, FIELDS, NameTemplate, TemplateError, parse_template
from .plan import ON_CONFLICT, OUTPUT_FORMATS, RENAME_STYLES, BatchSettings, Plan, PlanError, PlanItem, make_plan
from .progress import Progress, format_eta
from .results import BatchSummary, FileResult, ModelLoadFailed
from .runner import BatchListener, BatchRunner

__all__ = [
    "DEFAULT_TEMPLATE",
    "FIELDS",
    "MANIFEST_NAME",
    "ON_CONFLICT",
    "OUTPUT_FORMATS",
    "RENAME_STYLES",
    "BatchListener",
    "BatchRunner",
    "BatchSettings",
    "BatchSummary",
    "FileResult",
    "Manifest",
    "ManifestError",
    "ModelLoadFailed",
    "NameTemplate",
    "Plan",
    "PlanError",
    "PlanItem",
    "Progress",
    "TemplateError",
    "format_eta",
    "make_plan",
    "parse_template",
]
