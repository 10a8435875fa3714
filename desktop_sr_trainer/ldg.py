"""RCOD latent domain grouping (LDG) and degradation-aware sampling (DAS).

A one-step model trained at one timestep learns the "average" restoration. RCOD instead feeds each sample's
degradation level in as the UNet timestep: the cosine similarity M = cos(z_L, z_HR) of the LQ and HR latents says
how far the LQ is from its target, and

    t = k * (n - floor(n * (M - M_min) / (M_max - M_min)))            (RCOD Eq. 5; k = 250, n = 3)

puts strongly degraded samples (small M) at t = n k (more generation) and mild ones at t = k. At inference the
user picks t in {k, ..., n k} as the realism level. The teacher's CSD timestep follows the group (Eq. 7):
t_r ~ U{max(20, t - k), ..., min(980, t + k)}. M = M_max would give floor(n) = n and t = 0, which is no group, so
the index is clipped to n - 1 (that sample joins the mildest group, t = k).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import LdgConfig


def latent_cosine(z_l: torch.Tensor, z_hr: torch.Tensor) -> torch.Tensor:
    """M per sample: cosine similarity of the flattened latents, shape (B,)."""
    return F.cosine_similarity(z_l.flatten(1).float(), z_hr.flatten(1).float(), dim=1)


def group_timesteps(m: torch.Tensor, m_min: float, m_max: float, k: int = 250, n: int = 3) -> torch.Tensor:
    """RCOD Eq. 5 per sample (long tensor of values in {k, 2k, ..., nk})."""
    if not m_max > m_min:
        raise ValueError(f"LDG needs M_max > M_min, got {m_min} and {m_max}")
    frac = (m.double().clamp(m_min, m_max) - m_min) / (m_max - m_min)
    group = torch.floor(n * frac).clamp(0, n - 1)
    return (k * (n - group)).long()


def das_timesteps(t: torch.Tensor, gen: torch.Generator, k: int = 250, low: int = 20, high: int = 980) -> torch.Tensor:
    """RCOD Eq. 7: the teacher timestep uniformly from [max(low, t - k), min(high, t + k)], both ends included."""
    lo = torch.clamp(t - k, min=low)
    hi = torch.clamp(t + k, max=high)
    u = torch.rand(t.shape, generator=gen, dtype=torch.float64)
    return (lo + torch.floor(u * (hi - lo + 1).double()).long()).clamp(max=hi)


class LatentGrouping:
    """Holds M_min / M_max (from the config or a calibration pass) and assigns per-sample timesteps."""

    def __init__(self, cfg: LdgConfig) -> None:
        self.cfg = cfg
        self.m_min = cfg.m_min
        self.m_max = cfg.m_max

    @property
    def calibrated(self) -> bool:
        return not (math.isnan(self.m_min) or math.isnan(self.m_max))

    def calibrate(self, values: torch.Tensor) -> None:
        """Take the range of M over calibration samples, keeping any bound the config fixed."""
        values = values.double()
        if math.isnan(self.cfg.m_min):
            self.m_min = float(values.min())
        if math.isnan(self.cfg.m_max):
            self.m_max = float(values.max())
        if not self.m_max > self.m_min:  # all samples alike (e.g. one photo): widen so Eq. 5 stays defined
            self.m_min, self.m_max = self.m_min - 1e-3, self.m_max + 1e-3

    def timesteps(self, z_l: torch.Tensor, z_hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, t) per sample."""
        m = latent_cosine(z_l, z_hr)
        return m, group_timesteps(m.cpu(), self.m_min, self.m_max, self.cfg.k, self.cfg.n)

    def das(self, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return das_timesteps(t.cpu(), gen, self.cfg.k, self.cfg.das_min, self.cfg.das_max)

    def state(self) -> dict[str, float]:
        return {"m_min": self.m_min, "m_max": self.m_max}

    def load_state(self, state: dict[str, float]) -> None:
        self.m_min, self.m_max = float(state["m_min"]), float(state["m_max"])
