"""The steps of a render, named once: what the engine reports to ``Control.report(done, total, stage)`` and times.

A :class:`Stage` is a ``str``, so a report reads and compares as the word itself (``"unet-pix"``) and whoever
only shows it (a progress bar, a log) needs nothing from here. Long operations that are not renders (a model import,
a download) report labels in words instead; :meth:`Stage.of` tells the two apart.
"""

from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    """One step of a render. The value is the word a progress report carries (unchanged from the bare strings)."""

    ENCODE = "encode"  # the VAE encodes the model input into latents
    UNET = "unet"  # a UNet pass whose caller named no branch (``tiled_eps``'s default)
    UNET_PIX = "unet-pix"  # the pixel branch's UNet pass
    UNET_FULL = "unet-full"  # the full (pixel + semantic) branch's UNet pass
    UNET_PAIR = "unet-pix+full"  # both branches as one batch
    DECODE = "decode"  # the VAE decodes the composed latents
    COLOUR_FIX = "colour fix"  # timed only: it has no tiles to report
    UPSCALE = "upscale"  # the one pass of a feed-forward upscaler (the bundled Real-ESRGAN)

    # f"{stage}" and str(stage) give the word on every Python (3.11 and later would print "Stage.UNET_PIX").
    __str__ = str.__str__

    @property
    def kind(self) -> Stage:
        """The step this is a part of: :attr:`UNET` for any UNet pass, else the stage itself."""
        return Stage.UNET if self in _UNET_PASSES else self

    @property
    def label(self) -> str:
        """The stage in a timing line (``unet pix 6.2 s``): the report's word with spaces for hyphens."""
        return self.value.replace("-", " ")

    @classmethod
    def of(cls, name: str) -> Stage | None:
        """The stage a report names, or None for a label in words ("Copying x.bin") or nothing."""
        try:
            return cls(name)
        except ValueError:
            return None

    @classmethod
    def kind_of(cls, name: str) -> Stage | None:
        """:attr:`kind` of the stage a report names; None when it names none."""
        stage = cls.of(name)
        return None if stage is None else stage.kind

    @classmethod
    def unet(cls, branch: str) -> Stage:
        """The UNet pass of a PiSA-SR branch: ``"pix"`` or ``"full"``."""
        return {"pix": cls.UNET_PIX, "full": cls.UNET_FULL}[branch]


_UNET_PASSES = frozenset({Stage.UNET, Stage.UNET_PIX, Stage.UNET_FULL, Stage.UNET_PAIR})

__all__ = ["Stage"]
