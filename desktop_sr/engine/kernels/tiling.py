"""Tiled UNet and VAE passes that work for any aspect ratio and leave no seams.

UNet (latent space): overlapping tiles, each tile's eps weighted by a Gaussian computed AFTER the tile size is
clamped to the image (the reference code computes it before and crashes on elongated images).

VAE tiles (:mod:`.vae_tiling`) are blended with the cosine ramps defined here, which are zero at a tile's inner
border, where convolution padding disturbs the output.
"""

from __future__ import annotations

import gc
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

from ..control import Control
from ..errors import OutOfMemory
from ..hardware.device import empty_cache, is_out_of_memory
from ..rect import Rect
from ..stages import Stage
from ..tile_settings import TileSettings

T = TypeVar("T")

__all__ = [
    "Attempt",
    "Sides",
    "TileSettings",
    "gaussian_weights",
    "inner_sides",
    "ramp_weights",
    "retry_on_oom",
    "tile_starts",
    "tiled_eps",
]


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


#: Which sides of a tile face another tile, in :class:`~..rect.Rect`'s order: (left, top, right, bottom).
Sides = tuple[bool, bool, bool, bool]


def inner_sides(tile: Rect, width: int, height: int) -> Sides:
    """The sides of ``tile`` that lie inside a ``width`` x ``height`` image (the others are the image's border,
    where nothing is blended and no ramp is wanted)."""
    return tile.x0 > 0, tile.y0 > 0, tile.x1 < width, tile.y1 < height


def ramp_weights(h: int, w: int, ramp: int, sides: Sides, device: torch.device) -> torch.Tensor:
    """1 x 1 x h x w blend mask: 1 inside; on each side flagged in ``sides`` (left, top, right, bottom: see
    :func:`inner_sides`) a cosine ramp over ``ramp`` pixels whose outer quarter is exactly 0 (those pixels see the
    convolution padding)."""

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

    left, top, right, bottom = sides
    return torch.outer(axis(h, top, bottom), axis(w, left, right)).to(device)[None, None]


def _report(control: Control | None, done: int, total: int, stage: Stage) -> None:
    if control is not None:
        control.report(done, total, stage)


def tiled_eps(
    fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    tile: int,
    overlap: int,
    *,
    control: Control | None = None,
    stage: Stage = Stage.UNET,
) -> torch.Tensor:
    """Apply the UNet ``fn`` over latent tiles and blend eps with Gaussian weights. ``fn`` may return several
    samples per tile (e.g. both branches as one batch); the result has as many."""
    _, _, h, w = z.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    total = len(ys) * len(xs)
    if total == 1:
        if control:
            control.check()
        out = fn(z)
        _report(control, 1, 1, stage)
        return out
    th, tw = min(tile, h), min(tile, w)
    weights = gaussian_weights(th, tw, z.device)
    acc: torch.Tensor | None = None  # shaped by the first output: ``fn`` may return several samples per tile
    out_dtype = z.dtype
    norm = torch.zeros((1, 1, h, w), device=z.device, dtype=torch.float32)
    done = 0
    for y in ys:
        for x in xs:
            if control:
                control.check()
            out = fn(z[:, :, y : y + th, x : x + tw])
            out_dtype = out.dtype  # the result keeps the network's dtype (eps in the UNet's), not the latent's
            out = out.to(torch.float32)
            if acc is None:
                acc = torch.zeros((out.shape[0], out.shape[1], h, w), device=z.device, dtype=torch.float32)
            acc[:, :, y : y + th, x : x + tw] += out * weights
            norm[:, :, y : y + th, x : x + tw] += weights
            done += 1
            _report(control, done, total, stage)
    assert acc is not None
    return (acc / norm).to(out_dtype)


@dataclass(frozen=True)
class Attempt:
    """One try of a tiled pass: its tile side (latent px) and the bytes its lockstep may keep (None: no lockstep)."""

    tile: int
    state_budget: int | None = None
    #: The pass it belongs to (encode, decode, a UNet branch, ...), for reports of what was tried.
    stage: Stage | None = None

    def smaller(self, minimum: int) -> Attempt | None:
        """What to try after running out of memory: first without the lockstep's whole-image state (halving the
        tile cannot shrink it: near the budget every halving failed down to 16 px tiles), then half the tile."""
        if self.state_budget:
            return replace(self, state_budget=0)
        if self.tile // 2 < minimum:
            return None
        return replace(self, tile=self.tile // 2)


def _release(exc: BaseException) -> None:
    """Drop what a failed attempt's traceback holds: its frames keep every tensor they had (a tile's activations,
    the lockstep's state), and the exception sits in a reference cycle with them that only ``gc`` would free."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        e.__traceback__ = None
        e = e.__cause__ or e.__context__


def retry_on_oom(
    run: Callable[[Attempt], T],
    first: Attempt,
    device: torch.device,
    minimum: int = 16,
    tried: list[Attempt] | None = None,
) -> T:
    """Call ``run(first)``; on out-of-memory release the failed attempt, free the device's cache and try a smaller
    one (:meth:`Attempt.smaller`). ``tried`` receives every attempt made, in order."""
    attempt = first
    while True:
        if tried is not None:
            tried.append(attempt)
        try:
            return run(attempt)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _release(exc)
        # Outside the except clause, so the exception is gone before the cache is emptied.
        gc.collect()
        empty_cache(device)
        following = attempt.smaller(minimum)
        if following is None:
            raise OutOfMemory(
                f"out of memory even with {attempt.tile}-pixel latent tiles on {device} ({reason}); "
                "use a smaller scale, close other programs using the GPU, or choose the CPU"
            )
        attempt = following
