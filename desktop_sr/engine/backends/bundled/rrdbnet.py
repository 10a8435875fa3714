"""RRDBNet, the generator of ESRGAN / Real-ESRGAN (Wang et al., 2018 and 2021), written out in plain torch.

Written here rather than imported from ``basicsr`` or ``realesrgan`` because those packages pull in torchvision,
OpenCV and a training framework for ~80 lines of model code. Parameter names follow BasicSR's ``RRDBNet`` exactly,
so an official ``RealESRGAN_x4plus.pth`` (key ``params_ema``) loads with ``load_state_dict`` as well as the weights
converted from the ncnn files (see :mod:`.ncnn`).

Only the x4 layout is implemented (x2/x1 variants of Real-ESRGAN pixel-unshuffle the input first; no weights for
them are bundled). Input and output are N x 3 x H x W in [0, 1] (not [-1, 1] like the diffusion model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

#: Real-ESRGAN x4plus: 64 features, 32 growth channels, 23 RRDB blocks.
X4PLUS = {"num_feat": 64, "num_grow_ch": 32, "num_block": 23}


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing the block input and every earlier output (dense connections)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # residual scaling 0.2, as trained


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a scaled skip over all three."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """x4 RRDBNet: features at input resolution, then two nearest-neighbour x2 upsamplings each followed by a conv."""

    scale = 4

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32) -> None:  # fmt: skip
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor, between_blocks: Callable[[], None] | None = None) -> torch.Tensor:
        """``between_blocks`` runs after each of the 23 blocks: a cancel check there stops a big tile within
        a second or so instead of at its end."""
        feat = self.conv_first(x)
        body = feat
        for block in self.body:
            body = block(body)
            if between_blocks is not None:
                between_blocks()
        feat = feat + self.conv_body(body)
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def conv_names(model: nn.Module) -> list[str]:
    """Names of the model's convolutions in forward order, which is also the order ncnn stores them in."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
