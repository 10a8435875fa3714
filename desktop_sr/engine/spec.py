"""What names a model: its family's kind, a display name and its files by role (torch-free).

A spec is plain data that the GUI, the CLI, the batch runner, the settings file and the model store pass around and
compare; only the family it names (:mod:`.families`) knows what the roles mean and how to open them. So a new
family needs no field here: PiSA-SR has a ``base`` folder and an ``adapter`` file, a community upscaler one
``weights`` file, the bundled model none at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """A model to open: ``kind`` (a registered family), ``name`` (what the user sees), ``files`` (role -> path).

    Frozen and hashable (the batch compares the editor's spec with its own to share a loaded model); ``options`` are
    the family's own extras (the bundled model's tile size, say) and take no part in equality."""

    kind: str
    name: str = ""
    files: tuple[tuple[str, Path], ...] = ()
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @staticmethod
    def of(kind: str, name: str = "", files: Mapping[str, str | Path] | None = None, **options: str) -> ModelSpec:
        """A spec from a role -> path mapping (paths made :class:`Path`, roles kept in the given order)."""
        pairs = tuple((role, Path(path)) for role, path in (files or {}).items())
        return ModelSpec(kind, name, pairs, dict(options))

    @property
    def paths(self) -> dict[str, Path]:
        return dict(self.files)

    def file(self, role: str) -> Path | None:
        """The path of ``role``, or None when the spec has none."""
        return self.paths.get(role)

    def describe(self) -> str:
        """One line for logs and messages: the name and where its files are."""
        if not self.files:
            return self.name or self.kind
        where = " + ".join(str(p) for _role, p in self.files)
        return f"{self.name or self.kind} ({self.kind}: {where})"
