"""What the upscaler session needs to know about a network: how to call it and what sizes it takes."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from ..api import ModelInfo

#: Cancels between a network's blocks: the callable raises :class:`~desktop_sr.engine.errors.Cancelled`.
CheckFn = Callable[[], None] | None


class TileModule(Protocol):
    """What runs a tile when it is not a torch module: ``(x, check) -> y`` on CPU float32 tensors (the bundled
    model's ncnn network on a Vulkan device, :mod:`desktop_sr.engine.backends.bundled.vulkan`)."""

    def __call__(self, x: torch.Tensor, check: CheckFn = None) -> torch.Tensor: ...


@dataclass
class Network:
    """A feed-forward image network at its own factor ``scale`` (1 x C x h x w in [0, 1] -> 1 x C x sh x sw).

    ``run`` calls it; a network that can stop between blocks takes the cancel check (the bundled RRDBNet), others
    are called with the input alone. Size rules (an architecture's window or downsampling factors) are met by
    padding each tile and cropping its output, so callers never see them."""

    module: torch.nn.Module | TileModule
    scale: int
    info: ModelInfo  # device and dtype are filled in by the session
    takes_check: bool = False
    multiple_of: int = 1
    minimum: int = 1
    input_channels: int = 3
    #: Working memory per input pixel of one forward pass, fp32 (sizes tiles from the free memory).
    bytes_per_input_px: int = 16 * 1024
    #: The largest tile the architecture should see (a transformer's attention grows with its window), or None.
    largest_tile: int | None = None
    #: Reflect padding around the whole photo, as Real-ESRGAN's own inference does (zero padding darkens the edge).
    pad: int = 10
    #: Where the module runs when that is not the session's torch device (``vulkan:0``; the session then hands it
    #: CPU float32 tiles) and in what precision (``fp16 storage``): what ``ModelInfo`` says. Empty: the session's.
    device: str = ""
    precision: str = ""

    def __call__(self, x: torch.Tensor, check: CheckFn = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = self._size(h), self._size(w)
        if (th, tw) != (h, w):
            mode = "reflect" if th - h < h and tw - w < w else "replicate"
            x = F.pad(x, (0, tw - w, 0, th - h), mode=mode)
        x = _channels_in(x, self.input_channels)
        with warnings.catch_warnings():  # an architecture's own deprecation notes are not the user's business
            warnings.simplefilter("ignore", UserWarning)
            y = self.module(x, check) if self.takes_check else self.module(x)
        y = _channels_out(y)
        return y[..., : h * self.scale, : w * self.scale]

    def _size(self, n: int) -> int:
        m = max(1, self.multiple_of)
        return max(self.minimum, math.ceil(n / m) * m)


def _channels_in(x: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB to what the network reads: grey (ITU-R BT.601 luma, as the models' training code converts), or RGBA with
    an opaque alpha."""
    if channels == 3:
        return x
    if channels == 1:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return 0.299 * r + 0.587 * g + 0.114 * b
    if channels == 4:
        return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    raise ValueError(f"a network reading {channels} channels cannot take a photo")


def _channels_out(y: torch.Tensor) -> torch.Tensor:
    if y.shape[1] == 1:
        return y.expand(-1, 3, -1, -1)
    return y[:, :3]
