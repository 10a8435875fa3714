"""One entry point that turns a model description into a session, whatever the model's kind.

The GUI, CLI and batch runner hold a :class:`ModelSpec` (from settings, the model manager or the command line)
and call :func:`open_session`; only this module knows which class serves which kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .api import UpscaleSession
from .errors import ModelError
from .tile_settings import TileSettings


@dataclass(frozen=True)
class ModelSpec:
    """Where a model lives. ``kind`` is ``pisa-sr`` (base folder + LoRA file) or ``bundled``."""

    kind: str
    name: str = ""
    base_dir: Path | None = None
    lora: Path | None = None
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @staticmethod
    def bundled() -> ModelSpec:
        """The upscaler that ships with the app (Real-ESRGAN x4plus); the name matches the GUI's default."""
        from .backends.bundled.files import BUNDLED_NAME

        return ModelSpec("bundled", BUNDLED_NAME)

    @staticmethod
    def pisa(base_dir: str | Path, lora: str | Path, name: str = "") -> ModelSpec:
        return ModelSpec("pisa-sr", name or Path(lora).stem, Path(base_dir), Path(lora))

    def describe(self) -> str:
        if self.kind == "pisa-sr":
            return f"{self.name} (PiSA-SR: {self.base_dir} + {self.lora})"
        return self.name if self.kind in self.name.lower() else f"{self.name} ({self.kind})"


def open_session(
    spec: ModelSpec,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_mb: int = 1024,
    tiles: TileSettings | None = None,
    models_dir: Path | None = None,
) -> UpscaleSession:
    """Load the model ``spec`` describes. Raises :class:`ModelError` naming the file at fault.

    ``models_dir`` is the model store's folder (the caller asks :mod:`desktop_sr.models` for it): the bundled model
    converts its weights into it once. The engine never looks the folder up itself."""
    if spec.kind == "pisa-sr":
        if spec.base_dir is None or spec.lora is None:
            raise ModelError(spec.base_dir or Path("."), "a PiSA-SR model needs a base model folder and a LoRA file")
        from .backends.pisa.session import load_pisa_session

        return load_pisa_session(spec.base_dir, spec.lora, device=device, dtype=dtype, cache_mb=cache_mb, tiles=tiles)
    if spec.kind == "bundled":
        try:
            from .backends.bundled import load_bundled_session
        except ImportError as exc:
            raise ModelError(Path(spec.name or "bundled"), f"the bundled model is not available ({exc})") from exc
        # PiSA-SR's latent tile settings do not apply: the bundled model sizes its own tiles (options tile/overlap).
        options: dict[str, object] = {"models_dir": models_dir, **spec.options}  # the spec's own folder wins
        return load_bundled_session(device=device, dtype=dtype, cache_mb=cache_mb, **options)  # type: ignore[arg-type]
    raise ModelError(Path(spec.name or spec.kind), f"unknown model kind {spec.kind!r}")
