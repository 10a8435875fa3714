"""PiSA-SR's composition with local strengths: z_H = z_L - (S * eps_full + (P - S) * eps_pix), per latent pixel.

The same arithmetic, in the same order and precision, as the scalar composition in :mod:`.pisa_session`
(``out -= sem * eps_full; out -= (pix - sem) * eps_pix`` in float32, the coefficients rounded once from float64),
so maps of constants give byte-identical latents, and with them byte-identical results. The eps tensors come from
the session's cache: a change of the maps costs no UNet pass, only this and the decode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...api import RenderParams
from ...strength_map import local_strengths, needed_branches


def latent_strengths(params: RenderParams, latent: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(P, S) on the latent grid of ``latent`` (1 x C x h x w): the maps cover the whole (padded) latent."""
    h, w = latent.shape[-2:]
    return local_strengths(params, w, h)


def branches_for(params: RenderParams, width: int, height: int) -> tuple[str, ...]:
    """The UNet branches a render with these params needs, on a ``width`` x ``height`` latent grid."""
    p, s = local_strengths(params, width, height)
    return needed_branches(p, s)


def _coefficient(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None].to(like.device)


def compose_latent(z: torch.Tensor, params: RenderParams, eps: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """z_H for local strengths; ``eps(branch)`` gives the cached (or newly computed) eps of 'pix' or 'full'."""
    p, s = latent_strengths(params, z)
    branches = needed_branches(p, s)
    out = z.to(torch.float32).clone()
    if "full" in branches:
        out -= _coefficient(s, out) * eps("full").to(torch.float32)
    if "pix" in branches:
        out -= _coefficient(p - s, out) * eps("pix").to(torch.float32)
    return out.to(z.dtype)
