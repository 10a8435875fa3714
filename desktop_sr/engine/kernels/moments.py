"""Per-group mean and variance of activations, numerically stable on every device, with bounded temporaries.

``E[x^2] - mean^2`` in float32 cancels over millions of pixels (and MPS has no float64 to hide it): each channel's
moments are taken centred on its own mean in float32 chunks of a few channels (a chunk's copy is the only
temporary, at most :data:`CHUNK_BYTES`), then channels, groups and tiles are combined with Chan's parallel formula
in float64 (float32 on MPS): ``M2 = M2_a + M2_b + n_a n_b / (n_a + n_b) (mean_a - mean_b)^2``, which never
subtracts two large numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Bytes of the float32 copy of a channel chunk (the only temporary of :func:`group_moments`).
CHUNK_BYTES = 64 * 1024**2


def wide_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


@dataclass(frozen=True)
class Moments:
    """Per-group count, mean and M2 (sum of squared deviations from the mean), in a wide dtype, on the device."""

    count: int
    mean: torch.Tensor
    m2: torch.Tensor

    @property
    def var(self) -> torch.Tensor:
        return (self.m2 / max(self.count, 1)).clamp_min(0.0)

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) in float32, as GroupNorm uses them."""
        return self.mean.to(torch.float32), self.var.to(torch.float32)


def combine(parts: Sequence[Moments]) -> Moments:
    """The moments of the union of disjoint sets (Chan et al.'s pairwise update, all parts at once)."""
    parts = [p for p in parts if p.count > 0] or list(parts[:1])
    n = sum(p.count for p in parts)
    if n == 0:
        return parts[0]
    mean = sum(p.mean * (p.count / n) for p in parts)
    m2 = sum(p.m2 + p.count * (p.mean - mean).square() for p in parts)
    return Moments(n, mean, m2)  # type: ignore[arg-type]


def _channel_moments(x: torch.Tensor, wide: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and M2 of ``x`` (N x C x ...) laid out channels-first: chunks of a few whole channels."""
    n, c = x.shape[0], x.shape[1]
    per_channel = n * (x.numel() // max(n * c, 1))
    step = max(1, CHUNK_BYTES // (per_channel * 4))
    means, m2s = [], []
    dims = [0, *range(2, x.ndim)]
    for c0 in range(0, c, step):
        part = x[:, c0 : c0 + step]
        chunk = part.to(torch.float32)
        mean_c = chunk.mean(dim=dims, keepdim=True)
        dev = chunk - mean_c if chunk is part else chunk.sub_(mean_c)  # never write into ``x`` itself
        del part
        m2s.append(dev.square_().sum(dim=dims, dtype=torch.float32).to(wide))
        means.append(mean_c.reshape(-1).to(wide))
        del chunk, dev
    return torch.cat(means), torch.cat(m2s)


def _channel_moments_last(x: torch.Tensor, wide: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and M2 of ``x`` whose channels are its innermost dimension (channels-last, the engine's
    layout on the CPU and CUDA): chunks of whole rows, each a (pixels x C) matrix reduced over its rows. Reducing a
    channels-last map channel by channel walks it with a stride of C and took five times torch's own GroupNorm."""
    y = x.movedim(1, -1)  # N x ... x C
    c = y.shape[-1]
    if y.ndim == 2:
        y = y[:, None]
    row = max(1, y[:, :1].numel())
    step = max(1, CHUNK_BYTES // (row * 4))
    count, mean, m2 = 0, torch.zeros(c, dtype=wide, device=x.device), torch.zeros(c, dtype=wide, device=x.device)
    for r0 in range(0, y.shape[1], step):
        chunk = y[:, r0 : r0 + step].reshape(-1, c).to(torch.float32)
        k = chunk.shape[0]
        mean_k = chunk.mean(dim=0)
        m2_k = (chunk - mean_k).square_().sum(dim=0, dtype=torch.float32).to(wide)
        mean_k = mean_k.to(wide)
        del chunk
        total = count + k  # Chan's pairwise update (see the module's docstring)
        delta = mean_k - mean
        m2 = m2 + m2_k + delta.square() * (count * k / total)
        mean = mean + delta * (k / total)
        count = total
    return mean, m2


def group_moments(x: torch.Tensor, groups: int) -> Moments:
    """Moments of ``x`` (N x C x H x W or N x C x L, any strides) per group of ``C // groups`` consecutive
    channels."""
    n, c = x.shape[0], x.shape[1]
    per_channel = n * (x.numel() // max(n * c, 1))
    wide = wide_dtype(x.device)
    if per_channel == 0:
        zeros = torch.zeros(groups, dtype=wide, device=x.device)
        return Moments(0, zeros, zeros.clone())
    size = c // groups
    channels_last = x.stride(1) == 1 and c > 1
    mean_c, m2_c = (_channel_moments_last if channels_last else _channel_moments)(x, wide)
    mean_g = mean_c.reshape(groups, size).mean(dim=1)
    spread = (mean_c.reshape(groups, size) - mean_g[:, None]).square().sum(dim=1) * per_channel
    return Moments(per_channel * size, mean_g, m2_c.reshape(groups, size).sum(dim=1) + spread)


__all__ = ["CHUNK_BYTES", "Moments", "combine", "group_moments", "wide_dtype"]
