"""The Qt-free engine: model loading, PiSA-SR inference with a latent cache, tiling, colour fix."""

from .api import (
    REALISM_PRESETS,
    CancelToken,
    Corners,
    ModelInfo,
    RenderParams,
    UpscaleSession,
)
from .errors import Cancelled, EngineError, ModelError, OutOfMemory, TooLarge

__all__ = [
    "REALISM_PRESETS",
    "CancelToken",
    "Cancelled",
    "Corners",
    "EngineError",
    "ModelError",
    "ModelInfo",
    "OutOfMemory",
    "TooLarge",
    "RenderParams",
    "UpscaleSession",
]
