"""Community upscalers (ESRGAN, Real-ESRGAN compact, SwinIR, HAT, DAT, SPAN, OmniSR...) read by spandrel.

``family`` (torch-free: the one ``weights`` role, file types, opening), ``load`` (reads a file without running any
pickle, detects the architecture with spandrel, builds the :class:`~desktop_sr.engine.upscaler.network.Network`).
"""

from .family import FAMILY, KIND, community_spec

__all__ = ["FAMILY", "KIND", "community_spec"]
