"""Face restoration models (GFPGAN, RestoreFormer, CodeFormer) read by spandrel: a family that restores faces of a
finished result rather than making it.

``family`` (torch-free: the ``weights`` role, recognising a face model's file from its tensor names without torch,
the official sources and their licences), ``load`` (reads the file safely, builds the network with spandrel's
architecture classes, runs one aligned face).
"""

from .family import CATALOGUE, FAMILY, KIND, face_spec

__all__ = ["CATALOGUE", "FAMILY", "KIND", "face_spec"]
