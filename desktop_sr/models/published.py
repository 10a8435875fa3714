"""Models their authors publish at plain URLs (a family's :attr:`~desktop_sr.engine.families.ModelFamily.published`:
the official GFPGAN, RestoreFormer and CodeFormer releases), downloaded and imported in one step.

The licence comes first: it is part of what :func:`find` returns, the CLI and the GUI show it before anything is
fetched, and a non-commercial model is downloaded only with ``accept_licence`` (nothing non-commercial arrives
without the user having been told). The transfer is :func:`~desktop_sr.models.download.download_file`'s (resumable
through a ``.part`` file, the sha256 computed while the bytes arrive); the file is then moved into the store, which
records that sha256 with the address it came from. Qt-free.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.families import ModelFamily, Published, families
from .download import download_file
from .errors import StoreError
from .registry import DOWNLOADS, ModelStore

if TYPE_CHECKING:
    from ..engine.control import Control
    from .registry import ModelEntry


class LicenceNotAccepted(StoreError):
    """A non-commercial model was asked for without accepting its licence: the message quotes the licence."""


def published() -> list[tuple[ModelFamily, Published]]:
    """Every published model the registered families declare, in the families' order."""
    return [(fam, pub) for fam in families() for pub in fam.published]


def find(key: str) -> tuple[ModelFamily, Published]:
    """The published model ``key`` names; :class:`StoreError` listing the known keys otherwise."""
    for fam, pub in published():
        if pub.key == key:
            return fam, pub
    known = ", ".join(pub.key for _fam, pub in published())
    raise StoreError(Path(key), f"no published model of this name (known: {known})")


def licence_text(pub: Published) -> str:
    """What is shown before the download: the licence, and where it is stated."""
    return f"{pub.name}: {pub.licence} (see {pub.page})"


def download_published(
    store: ModelStore,
    key: str,
    *,
    accept_licence: bool = False,
    url: str | None = None,
    name: str = "",
    control: Control | None = None,
) -> ModelEntry:
    """Download the published model ``key`` (from ``url`` instead, e.g. a mirror) and import it into ``store``.

    Raises :class:`LicenceNotAccepted` for a non-commercial model unless ``accept_licence``, before any transfer."""
    fam, pub = find(key)
    if pub.non_commercial and not accept_licence:
        raise LicenceNotAccepted(
            Path(pub.file_name), f"{licence_text(pub)}. Accept it to download (--accept-licence; the dialog asks)"
        )
    if len(fam.roles) != 1 or fam.roles[0].folder:
        raise StoreError(Path(key), f"{fam.label} models are not single files: they cannot be downloaded this way")
    source = url or pub.url
    folder = store.root / DOWNLOADS / "published" / pub.key
    got = download_file(source, folder / pub.file_name, control=control)
    entry = store.import_model(
        fam.kind,
        {fam.roles[0].key: got.path},
        name=name or pub.name,
        mode="move",
        control=control,
        source={"url": source, "sha256": got.sha256, "licence": pub.licence},
    )
    with contextlib.suppress(OSError):
        folder.rmdir()
    return entry
