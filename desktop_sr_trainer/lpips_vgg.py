"""LPIPS (VGG variant) in plain torch, so the trainer needs neither the ``lpips`` package nor torchvision.

The ``lpips`` package imports torchvision, which on some machines only installs beside a different torch build,
and downloads its VGG backbone on first use. The network is small and fixed, so it is written out here with the
exact layer layout of torchvision's ``vgg16().features`` (state dict keys ``features.N.weight``) and of lpips'
linear heads (``lin0..lin4.model.1.weight``). Real weights load from two files named in the config:

* ``loss.lpips_vgg_weights``: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``);
* ``loss.lpips_lin_weights``: the lpips package's ``lpips/weights/v0.1/vgg.pth``.

Without them the network would have random weights, and stage 2 would train the semantic LoRA (at weight 2)
towards the features of a random network: :func:`build_lpips` refuses, unless a test opts in explicitly.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

#: torchvision vgg16 "D" configuration; "M" is a 2x2 max-pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: indices (in ``features``) of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: the five taps LPIPS compares.
TAPS = (3, 8, 15, 22, 29)
CHANNELS = (64, 128, 256, 512, 512)


class LinearHead(nn.Module):
    """lpips ``NetLinLayer``: dropout (inactive at eval) + 1x1 conv to one channel, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LpipsVGG(nn.Module):
    """d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 ), images in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in VGG16_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(LinearHead(c) for c in CHANNELS)
        # lpips' ScalingLayer: ImageNet statistics expressed for inputs in [-1, 1]
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.pretrained = False
        self.requires_grad_(False).eval()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        h = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                out.append(h)
                if i == TAPS[-1]:
                    break
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample distance, shape (B,)."""
        feats = self.taps(torch.cat([x, y]))  # one pass over both images: half the kernel launches
        total = x.new_zeros(x.shape[0])
        for lin, f in zip(self.lins, feats, strict=True):
            f = f / (torch.sqrt((f**2).sum(dim=1, keepdim=True)) + 1e-10)
            a, b = f.chunk(2)
            total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return total

    # -- weights -----------------------------------------------------------------------------------------------------
    def load_weights(self, vgg_path: str | Path, lin_path: str | Path) -> None:
        """Load torchvision's VGG16 features and lpips' linear heads (``.pth`` or ``.safetensors``)."""
        vgg = _read_state(Path(vgg_path))
        lin = _read_state(Path(lin_path))
        features = {k.removeprefix("features."): v for k, v in vgg.items() if k.startswith("features.")}
        if not features:
            raise ValueError(f"{vgg_path}: no 'features.*' tensors; expected torchvision's vgg16 state dict")
        self.features.load_state_dict(features, strict=True)
        heads = {}
        for i in range(len(CHANNELS)):
            key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight") if k in lin), None)
            if key is None:
                raise ValueError(f"{lin_path}: missing lin{i}.model.1.weight; expected lpips' weights/v0.1/vgg.pth")
            heads[f"{i}.model.1.weight"] = lin[key]
        self.lins.load_state_dict(heads, strict=True)
        self.pretrained = True


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: LPIPS weight file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}


WEIGHTS_HELP = (
    "loss.lpips_vgg_weights = torchvision's ImageNet VGG16, vgg16-397923af.pth (https://download.pytorch.org/models/"
    "vgg16-397923af.pth, or torch.save(torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), ...)), and "
    "loss.lpips_lin_weights = the LPIPS linear heads, vgg.pth from the lpips package (lpips/weights/v0.1/vgg.pth "
    "inside the wheel from `pip download lpips --no-deps`). See docs/training.md"
)


class LpipsWeightsMissing(ValueError):
    """Stage 2 needs LPIPS and the config does not name both weight files."""


def build_lpips(vgg_path: str = "", lin_path: str = "", *, allow_random: bool = False) -> LpipsVGG:
    """LPIPS-VGG with real weights from both files; without them refuse, or (``allow_random``, tests only) warn."""
    net = LpipsVGG()
    if vgg_path and lin_path:
        net.load_weights(vgg_path, lin_path)
        return net
    unset = [k for k, v in (("loss.lpips_vgg_weights", vgg_path), ("loss.lpips_lin_weights", lin_path)) if not v]
    missing = " and ".join(unset)
    if not allow_random:
        raise LpipsWeightsMissing(
            f"stage 2 needs the real LPIPS weights, and {missing} {'is' if len(unset) == 1 else 'are'} not set. "
            f"The two files: {WEIGHTS_HELP}. With random weights "
            "the perceptual loss (weight loss.lpips) would train the semantic LoRA towards noise; to train without "
            "LPIPS on purpose, set loss.lpips = 0."
        )
    message = (
        f"LPIPS runs with RANDOM weights ({missing} not set; allowed explicitly, for tests): the semantic stage's "
        "perceptual loss is meaningless."
    )
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    return net
