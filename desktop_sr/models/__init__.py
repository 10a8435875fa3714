"""The model manager's Qt-free core: where models live, the registry of imported models with the sha256 of every
file, staged imports, verification, removal, the default model, and downloads for machines that are online.

Nothing here imports Qt, and nothing imports torch at module level (only an import's adapter check does), so the
GUI can ask for the default model at start-up and ``desktop-sr models list`` stays quick.
"""

from .errors import ChecksumMismatch, DownloadError, OperationCancelled, StoreError, UnknownModel
from .listing import ModelRow
from .paths import models_dir
from .registry import (
    BUILTIN_ID,
    INCOMPLETE,
    MISSING,
    MODIFIED,
    OK,
    ModelEntry,
    ModelStatus,
    ModelStore,
    RemoveResult,
    Storage,
    VerifyReport,
    default_spec,
)

__all__ = [
    "BUILTIN_ID",
    "INCOMPLETE",
    "MISSING",
    "MODIFIED",
    "OK",
    "ChecksumMismatch",
    "DownloadError",
    "ModelEntry",
    "ModelRow",
    "ModelStatus",
    "Storage",
    "ModelStore",
    "OperationCancelled",
    "RemoveResult",
    "StoreError",
    "UnknownModel",
    "VerifyReport",
    "default_spec",
    "models_dir",
]
