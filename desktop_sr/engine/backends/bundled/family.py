"""The bundled Real-ESRGAN x4plus as a model family: nothing to import, its weights come with the app (torch-free)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModelError
from ...families import BuiltIn, Capabilities, ModelFamily, OpenOptions, register
from ...spec import ModelSpec
from .files import BUNDLED_NAME, converted_path, find_source, weights_available

if TYPE_CHECKING:
    from ...control import Control
    from .session import BundledSession

KIND = "bundled"
#: The store id of the built-in model (``desktop-sr models default bundled``, ``--model bundled``).
BUILT_IN_ID = "bundled"


class BundledFamily(ModelFamily):
    kind = KIND
    label = "Real-ESRGAN x4plus (comes with the app)"
    roles = ()
    capabilities = Capabilities(
        strengths=True,
        scales=(1, 2, 3, 4),
        licence_note="Real-ESRGAN x4plus weights (c) 2021 Xintao Wang, BSD-3-Clause",
        vulkan=True,  # its ncnn weights run on any GPU through ncnn's Vulkan runtime (vulkan.py)
        native_scale=4,  # x1-x3 are its x4 result resized: they cost what x4 costs
    )
    order = 0

    def claims(self, paths: object) -> None:
        return None  # nothing to import

    def built_in(self, models_dir: Path | None) -> BuiltIn | None:
        if not weights_available(models_dir):
            return None
        folders: list[Path] = []
        with contextlib.suppress(ModelError):  # converted earlier, the package since removed: still usable
            folders.append(find_source().bin.parent)
        converted = converted_path(models_dir).parent if models_dir is not None else None
        where = "installed with the app"
        if converted is not None and converted.is_dir():
            folders.append(converted)
            where += f"; converted weights in {converted}"
        return BuiltIn(BUILT_IN_ID, BUNDLED_NAME, bundled_spec(), tuple(folders), where)

    def verify_built_in(self, models_dir: Path | None) -> tuple[int, list[tuple[Path, str]]]:
        from .weights import verify_bundled  # torch: only when the bundled model is verified

        return verify_bundled(models_dir)

    def open(self, spec: ModelSpec, options: OpenOptions, control: Control | None = None) -> BundledSession:
        from .session import load_bundled_session

        # PiSA-SR's latent tile settings do not apply: the bundled model sizes its own tiles (options tile/overlap).
        extra: dict[str, object] = {"models_dir": options.models_dir, **spec.options}  # the spec's own folder wins
        return load_bundled_session(
            device=options.device,
            dtype=options.dtype,
            cache_mb=options.cache_mb,
            **extra,  # type: ignore[arg-type]
        )


FAMILY = register(BundledFamily())


def bundled_spec() -> ModelSpec:
    """The upscaler that ships with the app; the name matches the GUI's and the model manager's."""
    return ModelSpec(KIND, BUNDLED_NAME)
