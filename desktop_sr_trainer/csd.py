"""Classifier score distillation (CSD), PiSA-SR's semantic loss, as a surrogate MSE with a precomputed gradient.

The frozen base SD judges the generator's latent ``z_H``: noise it to a random timestep, predict the noise with
the negative prompt (eps_u) and with the caption under CFG 7.5 (eps_cfg), turn both into clean-latent estimates
x0(e) = (z_t - sqrt(1 - a_t) e) / sqrt(a_t), and push ``z_H`` along

    grad = (x0(eps_u) - x0(eps_cfg)) / mean|z_H - x0(eps_cfg)|        (per sample, over C, H, W)

i.e. away from what the unconditional model sees and towards what the caption-guided one sees, normalised by
DMD's per-sample weight (supplementary Eq. S4). The loss ``MSE(z_H, stopgrad(z_H - grad))`` has exactly
``d loss / d z_H = 2 grad / numel``, so autograd carries it into the semantic LoRA without differentiating
through the SD teacher. The caller supplies ``eps_fn`` (the UNet with adapters disabled), so this module holds
only the formula and is testable on fixed tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: eps_fn(z_t, t, embeddings) -> predicted noise; batched over the first dimension.
EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class CsdTerms:
    loss: torch.Tensor
    grad: torch.Tensor  # the (detached) direction that z_H is pushed against
    timesteps: torch.Tensor


def x0_from_eps(z_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """DDPM clean-latent estimate; ``alpha_bar`` is (B,) and broadcast over C, H, W."""
    a = alpha_bar.view(-1, 1, 1, 1).to(z_t.dtype)
    return (z_t - (1 - a).sqrt() * eps) / a.sqrt()


def csd_gradient(
    z_h: torch.Tensor, z_t: torch.Tensor, eps_u: torch.Tensor, eps_c: torch.Tensor, alpha_bar: torch.Tensor,
    cfg: float,
) -> torch.Tensor:  # fmt: skip
    """The CSD direction from already computed noise predictions (all tensors detached, float32)."""
    eps_cfg = eps_u + cfg * (eps_c - eps_u)
    x0_real = x0_from_eps(z_t, eps_cfg, alpha_bar)
    x0_fake = x0_from_eps(z_t, eps_u, alpha_bar)
    weight = (z_h - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True)
    return (x0_fake - x0_real) / weight


def csd_loss(
    z_h: torch.Tensor,
    eps_fn: EpsFn,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    cfg: float = 7.5,
) -> CsdTerms:
    """CSD on a batch: ``timesteps`` (B,) long and ``noise`` like ``z_h`` are drawn by the caller (seeded)."""
    with torch.no_grad():
        z = z_h.detach().float()
        a = alphas_cumprod.to(z.device)[timesteps].float()
        z_t = a.sqrt().view(-1, 1, 1, 1) * z + (1 - a).sqrt().view(-1, 1, 1, 1) * noise.float()
        # one batched teacher pass for both prompts, as the reference does
        eps = eps_fn(torch.cat([z_t, z_t]), torch.cat([timesteps, timesteps]), torch.cat([uncond, cond])).float()
        eps_u, eps_c = eps.chunk(2)
        grad = csd_gradient(z, z_t, eps_u, eps_c, a, cfg)
        grad = torch.nan_to_num(grad)
    target = (z_h.detach().float() - grad).detach()
    loss = F.mse_loss(z_h.float(), target, reduction="mean")
    return CsdTerms(loss=loss, grad=grad, timesteps=timesteps)
