"""How the editor's state maps onto the settings file: the settings, the model and the Faces panel's face model a
session starts with, and what it writes back. Qt-free, beside the editor model, so the window only says when."""

from __future__ import annotations

from ..engine.api import RenderParams
from ..engine.spec import ModelSpec
from ..settings import Settings
from .face_edit import FaceEdit


def params_from_settings(s: Settings) -> RenderParams:
    """The last session's settings; defaults if the file holds values no model accepts."""
    try:
        return RenderParams(pix=s.pix, sem=s.sem, realism=s.realism, scale=s.scale, color_fix=s.color_fix,
                            prompt=s.prompt)  # fmt: skip
    except ValueError:
        return RenderParams()


def remember_params(s: Settings, p: RenderParams) -> None:
    s.pix, s.sem, s.realism, s.scale, s.color_fix, s.prompt = p.pix, p.sem, p.realism, p.scale, p.color_fix, p.prompt


def last_model_spec(s: Settings) -> ModelSpec | None:
    """The model used last time, if the settings name one (any family: its files are kept by role)."""
    kind = s.model.get("kind")
    if not isinstance(kind, str) or not kind:
        return None
    files = s.model.get("files")
    files = {str(k): str(v) for k, v in files.items() if v} if isinstance(files, dict) else {}
    return ModelSpec.of(kind, str(s.model.get("name") or ""), files)


def remember_model(s: Settings, spec: ModelSpec) -> None:
    s.model = {"kind": spec.kind, "name": spec.name, "files": {role: str(path) for role, path in spec.files}}


def faces_from_settings(s: Settings) -> FaceEdit:
    """The Faces panel as the last session left it (its face model, strength and fidelity; no face is off: those
    were another photo's). Values out of range, or no model, give the defaults."""
    record = s.faces
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        return FaceEdit()
    files = record.get("files")
    files = {str(k): str(v) for k, v in files.items() if v} if isinstance(files, dict) else {}
    spec = ModelSpec.of(kind, str(record.get("name") or ""), files)
    try:
        return FaceEdit(spec, float(record.get("strength", 1.0)), float(record.get("fidelity", 0.5)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return FaceEdit(spec)


def remember_faces(s: Settings, edit: FaceEdit) -> None:
    spec = edit.model
    if spec is None:
        s.faces = {}
        return
    s.faces = {"kind": spec.kind, "name": spec.name, "files": {role: str(path) for role, path in spec.files},
               "strength": edit.strength, "fidelity": edit.fidelity}  # fmt: skip


def default_model_spec() -> ModelSpec | None:
    """The model manager's default if there is one, else the model that comes with the app if it can run here,
    else None (then the window asks for a model instead of failing to load one).

    Only looks for files and modules, never imports the engine's model code here: that pulls in torch, which
    belongs to the worker thread.
    """
    from ..models.registry import built_in, default_spec

    spec = default_spec()
    if spec is not None:
        return spec
    found = built_in()
    return found[1].spec if found is not None else None
