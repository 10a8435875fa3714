"""Importing a PiSA-SR model from its two parts, for the PiSA-SR downloaders (``get-pisa``, ``models download``), the
command line's two-argument import and the model manager's PiSA-SR dialog: a wording of
:meth:`~desktop_sr.models.registry.ModelStore.import_model` with the family's role names filled in."""

from __future__ import annotations

from pathlib import Path

from ..engine.backends.pisa import family as pisa
from ..engine.control import Control
from .registry import ModelEntry, ModelStore


def import_pisa(
    store: ModelStore,
    base_dir: str | Path,
    adapter: str | Path,
    *,
    name: str = "",
    mode: str = "copy",
    adapter_mode: str | None = None,
    validate: bool = True,
    make_default: bool = False,
    control: Control | None = None,
    source: dict[str, str] | None = None,
) -> ModelEntry:
    """Add an SD-2.1-base folder (diffusers layout) plus an adapter file; ``adapter_mode`` overrides ``mode`` for
    the adapter (a downloaded adapter is moved in while a local base is referenced, say)."""
    return store.import_model(
        pisa.KIND,
        {pisa.BASE.key: base_dir, pisa.ADAPTER.key: adapter},
        name=name,
        mode={pisa.BASE.key: mode, pisa.ADAPTER.key: adapter_mode or mode},
        validate=validate,
        make_default=make_default,
        control=control,
        source=source,
    )
