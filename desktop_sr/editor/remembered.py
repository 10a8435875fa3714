"""How the editor's state maps onto the settings file: the settings and the model a session starts with, and what it
writes back. Qt-free, beside the editor model, so the window only says when."""

from __future__ import annotations

from ..engine.api import RenderParams
from ..engine.loader import ModelSpec
from ..settings import Settings


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
    """The model used last time, if the settings name one."""
    if s.model_kind == "pisa-sr" and s.model_base and s.model_lora:
        return ModelSpec.pisa(s.model_base, s.model_lora, s.model_name)
    if s.model_kind and s.model_kind != "pisa-sr":
        return ModelSpec(kind=s.model_kind, name=s.model_name)
    return None


def remember_model(s: Settings, spec: ModelSpec) -> None:
    s.model_kind, s.model_name = spec.kind, spec.name
    s.model_base, s.model_lora = str(spec.base_dir or ""), str(spec.lora or "")


def default_model_spec() -> ModelSpec | None:
    """The model manager's default if there is one, else the bundled upscaler if it can run here, else None (then
    the window asks for a model instead of failing to load one).

    Only looks for files and modules, never imports the engine's model code here: that pulls in torch, which
    belongs to the worker thread.
    """
    from ..models.registry import bundled_available, default_spec

    spec = default_spec()
    if spec is not None:
        return spec
    return ModelSpec.bundled() if bundled_available() else None
