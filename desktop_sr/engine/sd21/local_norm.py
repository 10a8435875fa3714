"""Decoding with local strengths: GroupNorm statistics that follow the maps place by place.

GroupNorm is the VAE decoder's one whole-image operation: every pixel is normalised with the mean and variance of
the whole activation. A result composed with a half-0/half-1 semantic map therefore comes out in a tone between the
two scalar results on *both* halves (measured on the trained small VAE: 1-7 levels per channel), although its
latent equals each scalar latent on its half. So the decode of a varying map normalises each pixel with the
statistics of the scalar render that has its strengths: the corner renders' statistics (base, pix, full, recorded
while they were decoded, at no cost) blended with the local corner weights (1 - P, P - S, S), means and second
moments alike - exact at a corner, the estimate :func:`.vae_tiling.blend_stats` uses between them. A uniform map
keeps the plain decode (the session checks), so it stays byte-identical to the scalar strengths. What remains is
the receptive field across the feathered seam and the mid-block attention.

:func:`.vae_tiling.tiled_vae` applies it tile by tile (a single tile for an untiled decode), with each tile's
window, so tiled decodes and visible-region renders honour the maps alike.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..kernels.moments import group_moments
from ..rect import Rect
from .vae_tiling import GroupStats

Forward = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _patched(net: torch.nn.Module, make: Callable[[torch.nn.GroupNorm], Forward]) -> Iterator[None]:
    modules = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    for m in modules:
        m.forward = make(m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)  # an out-of-memory retry may have tiled (and unpatched) in between


@contextlib.contextmanager
def recording_group_norms(net: torch.nn.Module, record: GroupStats) -> Iterator[None]:
    """Run ``net`` unchanged (the stock GroupNorm computes the output) and note each GroupNorm's per-group mean and
    variance in ``record``, in the format :mod:`.vae_tiling` records."""

    def make(gn: torch.nn.GroupNorm) -> Forward:
        original = type(gn).forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            flat = x if x.ndim == 4 else x[..., None]  # the attention's GroupNorm: N x C x L
            record[gn] = group_moments(flat, gn.num_groups).stats()  # on the device: no wait for the GPU
            return original(gn, x)

        return forward

    with _patched(net, make):
        yield


class LocalGroupNorm:
    """A :data:`~.vae_tiling.LocalNorm`: GroupNorm with statistics blended per position from the corners'.

    ``corners``: the statistics of the base, pix and full corner decodes; ``weights``: 3 x h x w corner weights on
    the latent grid (the decoder's input). Called by :func:`.vae_tiling.tiled_vae` for each tile with the tile's
    window in latent pixels; the weights are cropped to it and resized to each activation's resolution."""

    def __init__(self, corners: Sequence[GroupStats], weights: np.ndarray) -> None:
        self.corners = list(corners)
        self.weights = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32))  # K x gh x gw
        self._moments: dict[torch.nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}
        self._resized: dict[tuple[object, ...], torch.Tensor] = {}

    def mean_stats(self) -> GroupStats:
        """The corners' statistics blended with the mean weights: for modules or paths that need one set."""
        from .vae_tiling import blend_stats

        mean = self.weights.mean(dim=(1, 2)).tolist()
        return blend_stats(self.corners, mean)

    def _weights_at(self, window: Rect, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (window, h, w, str(device))
        found = self._resized.get(key)
        if found is None:
            rows, cols = window.slices
            crop = self.weights[:, rows, cols][None]
            if crop.shape[-2:] != (h, w):
                crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
            found = crop[0].to(device)
            if len(self._resized) > 64:
                self._resized.clear()
            self._resized[key] = found
        return found

    def __call__(self, gn: torch.nn.GroupNorm, x: torch.Tensor, window: Rect) -> torch.Tensor:
        if any(gn not in c for c in self.corners):
            return type(gn).forward(gn, x)
        if gn not in self._moments:
            means = torch.stack([c[gn][0].to(torch.float32) for c in self.corners])  # K x G
            variances = torch.stack([c[gn][1].to(torch.float32) for c in self.corners])
            self._moments[gn] = (means, variances)
        means, variances = self._moments[gn]
        shape = x.shape
        n, c = shape[0], shape[1]
        g = gn.num_groups
        if x.ndim == 3:  # the attention's GroupNorm: tokens of the tile's map, row by row
            s = math.sqrt(shape[2] / (window.height * window.width))
            x = x.reshape(n, c, round(window.height * s), round(window.width * s))
        h, w = x.shape[-2:]
        # The statistics on the weights' own grid (the latent grid: smooth there), then stretched to the layer
        lh, lw = min(h, window.height), min(w, window.width)
        wk = self._weights_at(window, lh, lw, x.device)  # K x lh x lw
        means, variances = means.to(x.device), variances.to(x.device)
        mean = torch.einsum("khw,kg->ghw", wk, means)
        # the mixture's variance, centred per corner (a second moment minus a squared mean cancels in float32)
        spread = (means[:, :, None, None] - mean[None]).square()  # K x G x lh x lw, at latent resolution
        var = torch.einsum("khw,kg->ghw", wk, variances) + torch.einsum("khw,kghw->ghw", wk, spread)
        rstd = torch.rsqrt(var.clamp_min(0.0) + gn.eps)  # G x lh x lw
        shift = -mean * rstd
        if (lh, lw) != (h, w):
            both = F.interpolate(torch.cat([rstd, shift])[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            rstd, shift = both[:g], both[g:]
        # two fused passes over the activation (it is the large tensor: 128-512 channels at full resolution)
        xg = x.reshape(n, g, c // g, h, w).to(torch.float32)
        y = torch.addcmul(shift[None, :, None], xg, rstd[None, :, None]).reshape(n, c, h, w)
        if gn.affine:
            y = torch.addcmul(gn.bias.to(torch.float32)[None, :, None, None], y,
                              gn.weight.to(torch.float32)[None, :, None, None])  # fmt: skip
        return y.to(x.dtype).reshape(shape)


def corner_weights(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """3 x h x w weights of the base, pix and full corners for local strengths (P, S): (1 - P, P - S, S)."""
    return np.stack([1.0 - p, p - s, s])
