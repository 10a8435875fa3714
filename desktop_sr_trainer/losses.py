"""The two stages' objectives (PiSA-SR Sec. 3): pixel MSE, then MSE + LPIPS + CSD for the semantic LoRA.

Stage 1 regresses the HR image, which is what makes the pixel LoRA a fidelity knob. Stage 2 adds a perceptual
(LPIPS-VGG) and a distribution (CSD) term on the *full* model's output while the pixel LoRA is frozen, so the
semantic LoRA learns only the residual detail on top of the pixel result: that is what lets the app scale the two
independently. The weights (1, 2, 1) are the official ``lambda_l2``, ``lambda_lpips``, ``lambda_csd``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import LossConfig
from .csd import CsdTerms
from .lpips_vgg import LpipsVGG


@dataclass
class LossTerms:
    total: torch.Tensor
    parts: dict[str, float]


def pixel_loss(y: torch.Tensor, hr: torch.Tensor, cfg: LossConfig) -> LossTerms:
    """Stage 1: MSE between the decoded output and the HR crop, both in [-1, 1]."""
    mse = F.mse_loss(y.float(), hr.float())
    total = cfg.mse * mse
    return LossTerms(total, {"mse": float(mse.detach())})


def semantic_loss(
    y: torch.Tensor, hr: torch.Tensor, csd: CsdTerms | None, lpips: LpipsVGG | None, cfg: LossConfig
) -> LossTerms:
    """Stage 2: MSE + w_lpips * LPIPS + w_csd * CSD (a term with weight 0 is skipped, not computed)."""
    mse = F.mse_loss(y.float(), hr.float())
    total = cfg.mse * mse
    parts = {"mse": float(mse.detach())}
    if cfg.lpips > 0 and lpips is not None:
        lp = lpips(y.float(), hr.float()).mean()
        total = total + cfg.lpips * lp
        parts["lpips"] = float(lp.detach())
    if cfg.csd > 0 and csd is not None:
        total = total + cfg.csd * csd.loss
        parts["csd"] = float(csd.loss.detach())
    return LossTerms(total, parts)
