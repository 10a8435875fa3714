"""Tiled UNet and VAE passes that work for any aspect ratio and leave no seams.

UNet (latent space): overlapping tiles, each tile's eps weighted by a Gaussian computed AFTER the tile size is
clamped to the image (the reference code computes it before and crashes on elongated images).

VAE: overlapping tiles blended with cosine ramps that are zero at a tile's inner border, where convolution padding
disturbs the output. GroupNorm is the one non-local operation of the VAE: each tile would otherwise normalise with
its own statistics and come out in a slightly different tone. So the statistics are recorded once on the whole
input (downsampled when large) and every tile is normalised with them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from .api import CancelToken, ProgressFn
from .device import empty_cache, is_out_of_memory
from .errors import OutOfMemory
from .tile_settings import TileSettings

__all__ = ["TileSettings", "gaussian_weights", "retry_on_oom", "tile_starts", "tiled_eps", "tiled_vae"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, size)`` with tiles of ``tile`` (clamped to size) overlapping by ``overlap``."""
    tile = min(tile, size)
    if tile >= size:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def gaussian_weights(h: int, w: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """1 x 1 x h x w Gaussian bump (sigma = 0.1 of each side), the reference code's weighting, per actual tile size."""

    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float64)
        mid = (n - 1) / 2
        return torch.exp(-((x - mid) ** 2) / (2 * (n**2) * 0.01)) / math.sqrt(2 * math.pi * 0.01)

    return torch.outer(axis(h), axis(w)).to(device=device, dtype=dtype)[None, None]


def ramp_weights(h: int, w: int, ramp: int, sides: tuple[bool, bool, bool, bool], device: torch.device) -> torch.Tensor:
    """1 x 1 x h x w blend mask: 1 inside; on each side flagged in (top, bottom, left, right) a cosine ramp over
    ``ramp`` pixels whose outer quarter is exactly 0 (those pixels see the convolution padding)."""

    def axis(n: int, lo: bool, hi: bool) -> torch.Tensor:
        v = torch.ones(n, dtype=torch.float32)
        r = min(ramp, n // 2)
        if r <= 0:
            return v
        dead = r // 4
        x = torch.arange(r, dtype=torch.float32)
        ramp_v = torch.where(
            x < dead, torch.zeros_like(x), 0.5 - 0.5 * torch.cos(math.pi * (x - dead + 0.5) / (r - dead))
        )
        if lo:
            v[:r] = torch.minimum(v[:r], ramp_v)
        if hi:
            v[n - r :] = torch.minimum(v[n - r :], ramp_v.flip(0))
        return v

    top, bottom, left, right = sides
    return torch.outer(axis(h, top, bottom), axis(w, left, right)).to(device)[None, None]


def _report(progress: ProgressFn | None, done: int, total: int, stage: str) -> None:
    if progress is not None:
        progress(done, total, stage)


def tiled_eps(
    fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    tile: int,
    overlap: int,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    stage: str = "unet",
) -> torch.Tensor:
    """Apply the UNet ``fn`` over latent tiles and blend eps with Gaussian weights."""
    _, _, h, w = z.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    total = len(ys) * len(xs)
    if total == 1:
        if cancel:
            cancel.check()
        out = fn(z)
        _report(progress, 1, 1, stage)
        return out
    th, tw = min(tile, h), min(tile, w)
    weights = gaussian_weights(th, tw, z.device)
    acc = torch.zeros(z.shape, device=z.device, dtype=torch.float32)
    norm = torch.zeros((1, 1, h, w), device=z.device, dtype=torch.float32)
    done = 0
    for y in ys:
        for x in xs:
            if cancel:
                cancel.check()
            out = fn(z[:, :, y : y + th, x : x + tw]).to(torch.float32)
            acc[:, :, y : y + th, x : x + tw] += out * weights
            norm[:, :, y : y + th, x : x + tw] += weights
            done += 1
            _report(progress, done, total, stage)
    return (acc / norm).to(z.dtype)


# -- GroupNorm with shared statistics ---------------------------------------------------------------------------------
GroupStats = dict[torch.nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]]


@contextlib.contextmanager
def record_group_norm(module: torch.nn.Module) -> Iterator[GroupStats]:
    """Record the per-group mean and variance each GroupNorm sees during one forward pass."""
    stats: GroupStats = {}
    handles = []

    def hook(gn: torch.nn.GroupNorm, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].to(torch.float32)
        g = x.reshape(x.shape[0], gn.num_groups, -1)
        stats[gn] = (g.mean(dim=-1), g.var(dim=-1, unbiased=False))

    for m in module.modules():
        if isinstance(m, torch.nn.GroupNorm):
            handles.append(m.register_forward_pre_hook(hook))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def frozen_group_norm(module: torch.nn.Module, stats: GroupStats) -> Iterator[None]:
    """Make every GroupNorm of ``module`` normalise with the given statistics instead of its input's."""
    patched = []
    for m in module.modules():
        if isinstance(m, torch.nn.GroupNorm) and m in stats:
            mean, var = stats[m]

            def forward(x: torch.Tensor, m: torch.nn.GroupNorm = m, mean: torch.Tensor = mean, var: torch.Tensor = var):
                n, c = x.shape[:2]
                g = x.reshape(n, m.num_groups, -1).to(torch.float32)
                g = (g - mean[:n, :, None]) * torch.rsqrt(var[:n, :, None] + m.eps)
                y = g.reshape(x.shape).to(x.dtype)
                if m.affine:
                    shape = (1, c) + (1,) * (x.ndim - 2)
                    y = y * m.weight.reshape(shape) + m.bias.reshape(shape)
                return y

            m.forward = forward  # type: ignore[method-assign]
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _downsample_to(x: torch.Tensor, limit: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if max(h, w) <= limit:
        return x
    f = limit / max(h, w)
    return F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")


def tiled_vae(
    fn: Callable[[torch.Tensor], torch.Tensor],
    net: torch.nn.Module,
    x: torch.Tensor,
    *,
    factor: float,
    tile: int,
    overlap: int,
    stats_size: int,
    region: tuple[int, int, int, int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    stage: str = "decode",
) -> torch.Tensor:
    """Run a VAE half (``fn`` = encode or decode, ``net`` = its module) over tiles of ``x``.

    ``factor`` is output pixels per input pixel (8 for decode, 1/8 for encode). ``tile``/``overlap`` are in input
    pixels. ``region`` (y0, y1, x0, x1) in input pixels limits the work to a window (the visible part of the photo);
    the result then covers only that window. With one tile and no region this is exactly ``fn(x)``.
    """
    _, _, h, w = x.shape
    y0, y1, x0, x1 = region if region is not None else (0, h, 0, w)
    whole = region is None or (y0, y1, x0, x1) == (0, h, 0, w)
    if whole and h <= tile and w <= tile:
        if cancel:
            cancel.check()
        out = fn(x)
        _report(progress, 1, 1, stage)
        return out
    # Shared GroupNorm statistics of the whole input.
    with record_group_norm(net) as stats:
        fn(_downsample_to(x, stats_size))
    # Work on the window plus a margin so its borders see real context.
    margin = overlap
    wy0, wy1 = max(0, y0 - margin), min(h, y1 + margin)
    wx0, wx1 = max(0, x0 - margin), min(w, x1 + margin)
    win = x[:, :, wy0:wy1, wx0:wx1]
    wh, ww = win.shape[-2:]
    ys, xs = tile_starts(wh, tile, overlap), tile_starts(ww, tile, overlap)
    th, tw = min(tile, wh), min(tile, ww)
    oh, ow = round(wh * factor), round(ww * factor)
    acc: torch.Tensor | None = None
    norm = torch.zeros((1, 1, oh, ow), device=x.device, dtype=torch.float32)
    ramp = max(1, round(overlap * factor))
    total, done = len(ys) * len(xs), 0
    with frozen_group_norm(net, stats):
        for ty in ys:
            for tx in xs:
                if cancel:
                    cancel.check()
                out = fn(win[:, :, ty : ty + th, tx : tx + tw]).to(torch.float32)
                if acc is None:
                    acc = torch.zeros((1, out.shape[1], oh, ow), device=x.device, dtype=torch.float32)
                sides = (ty > 0, ty + th < wh, tx > 0, tx + tw < ww)
                wgt = ramp_weights(out.shape[-2], out.shape[-1], ramp, sides, x.device)
                oy, ox = round(ty * factor), round(tx * factor)
                acc[:, :, oy : oy + out.shape[-2], ox : ox + out.shape[-1]] += out * wgt
                norm[:, :, oy : oy + out.shape[-2], ox : ox + out.shape[-1]] += wgt
                done += 1
                _report(progress, done, total, stage)
    assert acc is not None
    result = acc / norm.clamp_min(1e-8)
    cy0, cx0 = round((y0 - wy0) * factor), round((x0 - wx0) * factor)
    cy1, cx1 = cy0 + round((y1 - y0) * factor), cx0 + round((x1 - x0) * factor)
    return result[:, :, cy0:cy1, cx0:cx1].to(x.dtype)


def retry_on_oom(
    run: Callable[[int], torch.Tensor], tile: int, device: torch.device, minimum: int = 16
) -> torch.Tensor:
    """Call ``run(tile)``; on out-of-memory free the cache, halve the tile and try again."""
    while True:
        try:
            return run(tile)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            empty_cache(device)
            if tile // 2 < minimum:
                raise OutOfMemory(
                    f"out of memory even with {tile}-pixel latent tiles on {device}; "
                    "lower the memory budget, use a smaller scale, or choose the CPU"
                ) from exc
            tile //= 2
