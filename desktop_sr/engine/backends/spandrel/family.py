"""Community upscalers as a model family: one weights file, any architecture spandrel recognises (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModelError
from ...families import WEIGHTS_SUFFIXES, Capabilities, Details, FileRole, ModelFamily, OpenOptions, register
from ...spec import ModelSpec

if TYPE_CHECKING:
    from ...control import Control
    from ...upscaler.session import UpscalerSession

KIND = "community"
WEIGHTS = FileRole(
    "weights",
    "Upscaler weights",
    suffixes=WEIGHTS_SUFFIXES,
    hint="an upscaler from OpenModelDB, chaiNNer or ComfyUI (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, OmniSR...)",
)


class CommunityFamily(ModelFamily):
    kind = KIND
    label = "Community upscaler (spandrel: ESRGAN, SwinIR, HAT, DAT, SPAN...)"
    roles = (WEIGHTS,)
    capabilities = Capabilities(
        strengths=True,
        scales=(1, 2, 3, 4, 8),
        licence_note="each model has its own licence: see where you downloaded it (OpenModelDB lists them)",
    )
    order = 20

    def inspect(self, files: Mapping[str, Path]) -> Details:
        super().inspect(files)
        from .load import describe, read_model

        return Details(describe(read_model(files[WEIGHTS.key])))

    def open(self, spec: ModelSpec, options: OpenOptions, control: Control | None = None) -> UpscalerSession:
        path = spec.file(WEIGHTS.key)
        if path is None:
            raise ModelError(Path(spec.name or KIND), "a community upscaler needs its weights file")
        from .load import load_community_session

        return load_community_session(path, spec.name, options, **spec.options)


FAMILY = register(CommunityFamily())


def community_spec(weights: str | Path, name: str = "") -> ModelSpec:
    """The spec of a community upscaler file (the CLI's ``--model FILE``, tests)."""
    return FAMILY.spec({WEIGHTS.key: weights}, name)
