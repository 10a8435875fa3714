"""The bundled Real-ESRGAN x4plus as a model family: its weights come with the app (torch-free).

Nothing needs importing. A user who has Real-ESRGAN's official fp32 ``RealESRGAN_x4plus.pth`` (the app's own weights
are the ncnn release's, stored in fp16) may import it as this family's ``weights`` (``models import FILE --kind
bundled``, or Choose model): the bundled model then runs on those tensors, with everything else the bundled model
does (its strengths, borders and tiles). Files are never claimed without ``--kind``: the same file opens as a
community upscaler too."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModelError
from ...families import BuiltIn, Capabilities, Details, FileRole, ModelFamily, OpenOptions, register
from ...spec import ModelSpec
from .files import BUNDLED_NAME, converted_path, find_source, weights_available

if TYPE_CHECKING:
    from ...control import Control
    from .session import BundledSession

KIND = "bundled"
#: The store id of the built-in model (``desktop-sr models default bundled``, ``--model bundled``).
BUILT_IN_ID = "bundled"
#: The user's own weights for the bundled network (optional: the built-in model has none).
WEIGHTS = FileRole(
    "weights",
    "Real-ESRGAN x4plus weights",
    suffixes=(".pth", ".safetensors"),
    hint="the official fp32 RealESRGAN_x4plus.pth (github.com/xinntao/Real-ESRGAN releases), used instead of the "
    "fp16 weights that come with the app",
)


class BundledFamily(ModelFamily):
    kind = KIND
    label = "Real-ESRGAN x4plus (comes with the app)"
    roles = (WEIGHTS,)
    import_label = "Real-ESRGAN x4plus with your own weights (the official fp32 .pth)"
    files_optional = True
    capabilities = Capabilities(
        strengths=True,
        scales=(1, 2, 3, 4),
        licence_note="Real-ESRGAN x4plus weights (c) 2021 Xintao Wang, BSD-3-Clause",
        vulkan=True,  # its ncnn weights run on any GPU through ncnn's Vulkan runtime (vulkan.py)
        native_scale=4,  # x1-x3 are its x4 result resized: they cost what x4 costs
    )
    order = 0

    def claims(self, paths: Sequence[Path]) -> None:
        return None  # only with --kind bundled: a RealESRGAN_x4plus.pth is a community upscaler too

    def take(self, paths: Sequence[Path]) -> dict[str, Path] | None:
        return super().claims(paths)  # one weights file, by its suffix

    def inspect(self, files: Mapping[str, Path]) -> Details:
        super().inspect(files)
        from .weights import read_user_weights  # torch: the tensors are checked against the x4plus layout

        read_user_weights(files[WEIGHTS.key])
        return Details({"architecture": "RRDBNet (Real-ESRGAN x4plus)", "scale": "4", "weights": "your own file"})

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
        own = spec.file(WEIGHTS.key)
        if own is not None:  # an imported RealESRGAN_x4plus.pth
            extra["weights"] = own
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
