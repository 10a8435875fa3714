"""The model list in words: one :class:`ModelRow` per model for the model manager's table and ``models list``.

Kept out of the store (:mod:`.registry`), which holds data and decisions, so the wording of the list changes in one
place and the store never carries interface text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import registry
from .files import folder_size
from .registry import BUILTIN, INCOMPLETE, MODIFIED, OK, ModelStatus

if TYPE_CHECKING:
    from .registry import ModelStore


@dataclass(frozen=True)
class ModelRow:
    """One line of the model manager's table (GUI and ``models list``)."""

    id: str
    name: str
    kind: str
    size: int
    location: str
    status: ModelStatus
    storage: str  # copy / reference / built-in (or per role when they differ)
    is_default: bool = False
    detail: str = ""
    #: What the family found in the files at import (architecture, scale, ...), as one line.
    about: str = ""

    @property
    def usable(self) -> bool:
        return self.status in (OK, MODIFIED, BUILTIN)


def model_rows(store: ModelStore) -> list[ModelRow]:
    """Everything the manager shows: the model that comes with the app, registered models, unfinished imports."""
    reg = store.snapshot()  # one read of the registry: one state for the whole list
    effective = store.effective_default(reg)
    rows: list[ModelRow] = []
    found = registry.built_in(store.root)  # looked up at call time: tests replace it
    if found is not None:
        fam, b = found
        size = sum(folder_size(f) for f in b.folders)
        rows.append(ModelRow(b.id, b.name, fam.kind, size, b.where, BUILTIN, "built-in", effective == b.id,
                             "used when no other default is set", fam.capabilities.licence_note))  # fmt: skip
    for m in reg.models:
        status, detail = store.quick_status(m)
        about = ", ".join(f"{k} {v}" for k, v in m.details.items())
        rows.append(ModelRow(m.id, m.name, m.kind, m.size, store.location(m), status, m.storage_label,
                             effective == m.id, detail, about))  # fmt: skip
    for folder, info in store.orphans(reg):
        rows.append(ModelRow(
            folder.name, str(info.get("name") or folder.name), str(info.get("kind") or "?"),
            folder_size(folder), str(folder), INCOMPLETE, "copy", False,
            "the import did not finish; remove it and import again",
        ))  # fmt: skip
    return rows
