"""The Qt-free engine: model loading, PiSA-SR inference with a latent cache, tiling, colour fix."""

from .api import (
    REALISM_PRESETS,
    Corners,
    ModelInfo,
    Rect,
    Region,
    RenderParams,
    UpscaleSession,
)
from .control import Control
from .errors import Cancelled, EngineError, ModelError, OutOfMemory, TooLarge

__all__ = [
    "REALISM_PRESETS",
    "Cancelled",
    "Control",
    "Corners",
    "EngineError",
    "ModelError",
    "ModelInfo",
    "OutOfMemory",
    "Rect",
    "Region",
    "TooLarge",
    "RenderParams",
    "UpscaleSession",
]
