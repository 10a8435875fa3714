"""Tiled VAE encode and decode that normalise with the whole image's GroupNorm statistics.

GroupNorm is the one non-local operation of SD's VAE: a tile normalised with its own statistics comes out in a
different tone, and statistics taken from a downsampled copy shift the whole result (measured: 27 dB and 7-10 levels
of mean shift at 2048 x 1536). So the tiles run *in lockstep*: every tile runs the unmodified diffusers forward in a
thread of its own, one thread at a time, and each GroupNorm call waits until every tile has added the sums of its
*core* (the tiles' cores partition the image, so every pixel counts once) before normalising with the combined mean
and variance. The result equals the untiled one up to what a tile border cuts from the receptive field (the overlap
is blended away) and the mid-block attention, which sees one tile. Working memory is one tile's; what stays alive
between GroupNorms (the activations of every tile, about the untiled network's) is bounded by ``state_budget``: when
the image needs more, every tile runs with the statistics of one forward of a copy downsampled to a tile (measured
better than a sample of full-resolution tiles; see :func:`tiled_vae`). A window of the image (a preview) takes its
statistics from a spread sample of tiles; every tile still runs up to the decoder's mid-block attention (latent
resolution, cheap), so that attention sees the whole image and the statistics before it are exact.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..control import Control
from ..errors import Cancelled
from ..kernels.moments import Moments, group_moments
from ..kernels.moments import combine as combine_moments
from ..kernels.tiling import Sides, inner_sides, ramp_weights, tile_starts
from ..rect import Rect
from ..stages import Stage
from .group_norm import normalise as _normalise

#: A region's statistics come from at least this share of the tiles (and at least ``region_sample``): measured on a
#: 1024 x 768 result in 256 px tiles, four tiles missed the whole image's channel means by up to 17 levels.
REGION_SAMPLE_SHARE = 1 / 3

#: Overlap (latent px) below which a decoder tile's core lacks context: the decoder's 3x3 convolutions at latent
#: resolution see about 10 latent px, and a core whose border has too little of it comes out wrong, an error the
#: whole-image statistics then spread over the image. Measured with the trained test VAE, a 1024 x 768 crop of a
#: 2048 x 1536 result's latent in 192 px tiles: overlap 8 gave 39 dB, 12 gave 58 dB, 16 gave 70 dB.
MIN_DECODE_OVERLAP = 12

#: Per GroupNorm module: (mean, var) per group, float32, shape (groups,).
GroupStats = dict[torch.nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]]
#: local(gn, x, window): a GroupNorm of ``x`` with statistics that vary over the image (local strengths, see
#: :mod:`.local_norm`); ``window`` = the tile's rectangle in input pixels.
LocalNorm = Callable[[torch.nn.GroupNorm, torch.Tensor, Rect], torch.Tensor]


@dataclass(frozen=True)
class Tile:
    """A padded tile and its core (a cell of a partition of the image, inside the tile), input pixels."""

    rect: Rect
    core: Rect


def _cores(starts: list[int], tile: int, size: int, align: int) -> list[tuple[int, int]]:
    """Split ``[0, size)`` at the middle of each overlap (a multiple of ``align``): one core per tile."""
    bounds = [0]
    for a, b in pairwise(starts):
        end = min(a + tile, size)
        mid = round((b + end) / 2 / align) * align
        bounds.append(min(max(mid, b, bounds[-1]), end))
    bounds.append(size)
    return list(pairwise(bounds))


def balanced_tile(size: int, tile: int, overlap: int, align: int = 1) -> int:
    """The smallest tile side (a multiple of ``align``, at most ``tile``) that covers ``size`` with as few tiles as
    ``tile`` does. Tiles of the full side leave the last one overlapping its neighbour far beyond ``overlap`` (a
    256 latent px side in 128 px tiles: starts 0, 112, 128): work and lockstep memory for nothing. An SD-width
    2048 x 1536 result in 1024 px tiles kept 9.7 GB of activations; balanced, 5.9 GB, in the same six tiles."""
    if size <= tile:
        return size
    n = len(tile_starts(size, tile, overlap))
    side = math.ceil((size + (n - 1) * overlap) / n)
    return min(tile, math.ceil(side / align) * align)


def plan_tiles(h: int, w: int, tile: int, overlap: int, align: int = 1) -> list[Tile]:
    """Overlapping tiles of at most ``tile`` pixels covering an h x w input, with cores that partition it; as few
    tiles as ``tile`` needs, each as small as that count allows (:func:`balanced_tile`)."""
    th, tw = balanced_tile(h, tile, overlap, align), balanced_tile(w, tile, overlap, align)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    cys, cxs = _cores(ys, th, h, align), _cores(xs, tw, w, align)
    rows, cols = zip(ys, cys, strict=True), list(zip(xs, cxs, strict=True))
    return [Tile(Rect(x, y, x + tw, y + th), Rect(cx[0], cy[0], cx[1], cy[1])) for y, cy in rows for x, cx in cols]


def decode_overlap(tile: int, overlap: int) -> int:
    """The overlap (latent px) decoder tiles of ``tile`` get: at least :data:`MIN_DECODE_OVERLAP`, at most half the
    tile (an out-of-memory retry halves the tile; a smaller stride would multiply the work)."""
    return max(1, min(max(overlap, MIN_DECODE_OVERLAP), tile // 2))


def spread_sample(tiles: Sequence[Tile], n: int) -> list[int]:
    """Indices of ``n`` tiles spread evenly over the grid (row-major order), always including the first and last."""
    if n >= len(tiles):
        return list(range(len(tiles)))
    n = max(1, n)
    return sorted({round(i * (len(tiles) - 1) / max(1, n - 1)) for i in range(n)})


# -- GroupNorm patching -----------------------------------------------------------------------------------------------
class _TileContext(threading.local):
    """Which tile the current thread runs (set only inside lockstep threads)."""

    tile: Tile | None = None
    lockstep: _Lockstep | None = None
    index: int = 0
    window: Rect | None = None  # the frozen-statistics tile being run (for a LocalNorm)


_ctx = _TileContext()


def _core_rect(h: int, w: int, tile: Tile) -> Rect:
    """The tile's core in the coordinates of an h x w activation of that tile (any layer's resolution)."""
    r, c = tile.rect, tile.core.shifted(-tile.rect.x0, -tile.rect.y0)
    sy, sx = h / r.height, w / r.width
    return Rect(round(c.x0 * sx), round(c.y0 * sy), round(c.x1 * sx), round(c.y1 * sy))


def _core_moments(x: torch.Tensor, gn: torch.nn.GroupNorm, tile: Tile) -> Moments:
    """Per-group moments of ``x`` over the tile's core (centred, see :mod:`.moments`).

    ``x`` is N x C x H x W, or N x C x L for the attention's GroupNorm (tokens of an H x W map, row by row)."""
    if x.ndim == 3:
        th, tw = tile.rect.height, tile.rect.width
        s = math.sqrt(x.shape[2] / (th * tw))
        x = x.reshape(x.shape[0], x.shape[1], round(th * s), round(tw * s))
    rows, cols = _core_rect(x.shape[-2], x.shape[-1], tile).slices
    return group_moments(x[:, :, rows, cols], gn.num_groups)


@contextlib.contextmanager
def _patched_group_norms(
    net: torch.nn.Module, frozen: GroupStats | None = None, local: LocalNorm | None = None
) -> Iterator[list[torch.nn.GroupNorm]]:
    """Route every GroupNorm of ``net`` through the lockstep exchange (inside lockstep threads), the ``local``
    normalisation (for the tile in ``_ctx.window``) or the ``frozen`` statistics. Yields the modules in order."""
    modules = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]

    def make(gn: torch.nn.GroupNorm) -> Callable[[torch.Tensor], torch.Tensor]:
        original = type(gn).forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            lockstep = _ctx.lockstep
            if lockstep is not None and _ctx.tile is not None:
                if local is not None:  # local strengths in lockstep: only the attention meets (see tiled_vae)
                    return local(gn, x, _ctx.tile.rect)
                mean, var = lockstep.group_stats(_ctx.index, gn, _core_moments(x, gn, _ctx.tile))
                return _normalise(x, gn, mean, var)
            if local is not None and _ctx.window is not None:
                return local(gn, x, _ctx.window)
            if frozen is not None and gn in frozen:
                return _normalise(x, gn, *frozen[gn])
            return original(gn, x)

        return forward

    for m in modules:
        m.forward = make(m)  # type: ignore[method-assign]
    try:
        yield modules
    finally:
        for m in modules:
            del m.forward


#: Bytes of attention scores one query chunk may hold (see :func:`bounded_attention`).
SCORE_CHUNK_BYTES = 256 * 1024**2


def bounded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``scaled_dot_product_attention`` in chunks of queries, so no more than :data:`SCORE_CHUNK_BYTES` of scores
    exist at once. The VAE's attention has one head of 512 channels, which no fused kernel takes on MPS (and flash
    attention takes nowhere): a whole 2048 x 1536 image's 49k tokens would otherwise build a 9 GB score matrix."""
    b, h, lq, _ = q.shape
    per_query = b * h * k.shape[-2] * 4  # fp32 scores (the math path's softmax)
    rows = max(1, SCORE_CHUNK_BYTES // max(per_query, 1))
    if rows >= lq:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
    for r0 in range(0, lq, rows):
        out[:, :, r0 : r0 + rows] = torch.nn.functional.scaled_dot_product_attention(q[:, :, r0 : r0 + rows], k, v)
    return out


class BoundedAttention:
    """The VAE's attention processor: plain self-attention of a diffusers ``Attention`` block computed with
    :func:`bounded_attention`; any call it does not handle (masks, cross-attention, spatial norms) goes to the
    processor it replaced. :class:`_WholeImageAttention` extends it to keys and values of the whole image."""

    def __init__(self, fallback: Callable[..., torch.Tensor]) -> None:
        self.fallback = fallback

    @staticmethod
    def handles(attn: torch.nn.Module, hidden_states: torch.Tensor, *extra: object) -> bool:
        return all(e is None for e in extra) and hidden_states.ndim == 4 and attn.spatial_norm is None

    def keys_values(
        self, attn: torch.nn.Module, x: torch.Tensor, hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The keys and values the queries attend to (the block's own here); None defers to the fallback."""
        return attn.to_k(x), attn.to_v(x)

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not self.handles(attn, hidden_states, encoder_hidden_states, attention_mask, temb):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        x = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        kv = self.keys_values(attn, x, (h, w))
        if kv is None:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        q = attn.to_q(x)
        del x
        keys, values = kv
        heads = attn.heads
        hd = q.shape[-1] // heads
        q = q.view(b, -1, heads, hd).transpose(1, 2)
        keys = keys.view(b, -1, heads, hd).transpose(1, 2)
        values = values.view(b, -1, heads, hd).transpose(1, 2)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            keys = attn.norm_k(keys)
        out = bounded_attention(q, keys, values)
        out = out.transpose(1, 2).reshape(b, -1, heads * hd).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def bound_attention(net: torch.nn.Module) -> None:
    """Give every diffusers attention block of ``net`` a :class:`BoundedAttention` processor (once)."""
    from diffusers.models.attention_processor import Attention

    for m in net.modules():
        if isinstance(m, Attention) and not isinstance(m.processor, BoundedAttention):
            m.processor = BoundedAttention(m.processor)


class _WholeImageAttention(BoundedAttention):
    """Self-attention of a tile's queries over the keys and values of the whole image (every tile's core tokens,
    gathered in lockstep), so the VAE's mid-block attention sees what it sees untiled. The gathered keys and values
    are kept: tiles run after the lockstep (with frozen statistics) attend to them too. Before any are gathered, or
    for any call it does not handle, it defers to the processor it replaced."""

    def __init__(self, fallback: Callable[..., torch.Tensor]) -> None:
        super().__init__(fallback)
        self.kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def keys_values(
        self, attn: torch.nn.Module, x: torch.Tensor, hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        lockstep, tile = _ctx.lockstep, _ctx.tile
        if lockstep is None or tile is None:
            return self.kv  # after the lockstep: the gathered ones; before: None (the fallback)
        b = x.shape[0]
        h, w = hw
        k, v = attn.to_k(x), attn.to_v(x)
        rows, cols = _core_rect(h, w, tile).slices

        def core(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, h, w, -1)[:, rows, cols].reshape(b, -1, t.shape[-1])

        def combine(parts: list[object]) -> tuple[torch.Tensor, torch.Tensor]:
            keys = torch.cat([p[0] for p in parts], dim=1)  # type: ignore[index]
            self.kv = keys, torch.cat([p[1] for p in parts], dim=1)  # type: ignore[index]
            return self.kv

        return lockstep.meet(_ctx.index, (core(k), core(v)), combine, cut=True)  # type: ignore[return-value]


@contextlib.contextmanager
def _whole_image_attention(net: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Give every attention module of ``net`` the whole-image processor while the lockstep runs."""
    from diffusers.models.attention_processor import Attention

    swapped = [m for m in net.modules() if isinstance(m, Attention)] if enabled else []
    saved = [m.processor for m in swapped]
    for m, proc in zip(swapped, saved, strict=True):
        m.processor = _WholeImageAttention(proc)
    try:
        yield
    finally:
        for m, proc in zip(swapped, saved, strict=True):
            m.processor = proc


class _Lockstep:
    """Runs one thread per tile, one at a time, meeting wherever the network needs the whole image.

    Tiles take turns in index order. Tile i runs until its next meeting point (a GroupNorm, or the mid-block
    attention), leaves its contribution and hands the turn to the next tile; the last tile combines the contributions
    (sums into mean and variance; keys and values into the whole image's) and hands the turn back to the first. Every
    tile runs the same network, so all meet at the same points in the same order. With ``keep``, only those tiles
    go on past the attention (the cut): the others leave once the whole image's keys and values are gathered.

    Each tile waits on an event of its own, set only when it has something to do: one shared condition woke every
    waiting thread at every hand-over, and hundreds of tiles then spent most of the time fighting for the GIL.
    """

    def __init__(
        self,
        n: int,
        control: Control | None,
        on_round: Callable[[int], None],
        keep: Sequence[int] | None = None,
    ) -> None:
        self.active = list(range(n))
        self.keep = sorted(keep) if keep is not None else None
        self.control = control
        self.on_round = on_round
        self.cond = threading.Lock()
        self.wake = [threading.Event() for _ in range(n)]
        self.turn = 0
        self.round = 0
        self.parts: list[object] = []
        self.result: object = None
        self.recorded: GroupStats = {}
        self.error: BaseException | None = None

    def _next(self, i: int) -> int:
        """The active tile after ``i`` (-1 after the last)."""
        at = bisect.bisect_right(self.active, i)
        return self.active[at] if at < len(self.active) else -1

    def _hand_to(self, j: int) -> None:
        """Give the turn to tile ``j`` (under the lock)."""
        self.turn = j
        if j >= 0:
            self.wake[j].set()

    def _wake_all(self) -> None:
        for ev in self.wake:
            ev.set()

    def _wait_turn(self, i: int, round_: int) -> None:
        while True:
            with self.cond:
                if self.error is not None or not self._is_active(i):
                    raise _Aborted()
                if self.round >= round_ and self.turn == i:
                    return
                self.wake[i].clear()  # under the lock: a hand-over after this sets it again
            self.wake[i].wait(timeout=0.5)

    def _is_active(self, i: int) -> bool:
        at = bisect.bisect_left(self.active, i)
        return at < len(self.active) and self.active[at] == i

    def meet(self, i: int, part: object, combine: Callable[[list[object]], object], cut: bool = False) -> object:
        """Leave ``part``; once every tile has, all get ``combine(parts)`` (computed once, by the last tile). At a
        ``cut``, tiles not kept leave (their thread ends) once they have the result."""
        with self.cond:
            if self.control is not None and self.control.cancelled:
                self.error = Cancelled()
                self._wake_all()
                raise _Aborted()
            self.parts.append(part)
            mine = self.round
            if i == self.active[-1]:
                try:
                    self.result = combine(self.parts)
                except BaseException as exc:
                    self.error = exc
                    self._wake_all()
                    raise _Aborted() from exc
                self.parts = []
                if cut and self.keep is not None:
                    leaving = set(self.active) - set(self.keep)
                    self.active, self.keep = self.keep, None
                    for j in leaving:
                        self.wake[j].set()  # to end their threads
                self.round += 1
                self._hand_to(self.active[0])
                self.on_round(self.round)
            else:
                self._hand_to(self._next(i))
        self._wait_turn(i, mine + 1)
        return self.result

    def group_stats(self, i: int, gn: torch.nn.GroupNorm, moments: Moments) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole image's per-group mean and variance from every tile's core moments (Chan's combination)."""

        def combine(parts: list[object]) -> tuple[torch.Tensor, torch.Tensor]:
            # On the device: a .cpu() here would wait for the GPU at every GroupNorm (no host copy in the tile loop).
            stats = combine_moments(parts).stats()  # type: ignore[arg-type]
            self.recorded[gn] = stats
            return stats

        return self.meet(i, moments, combine)  # type: ignore[return-value]

    def finish(self, i: int) -> None:
        with self.cond:
            self._hand_to(self._next(i))

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.error is None:
                self.error = exc
            self._wake_all()


class _Aborted(Exception):
    """Raised in the other tiles' threads when one tile failed or the work was cancelled."""


def _run_lockstep(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tiles: Sequence[Tile],
    control: Control | None,
    on_round: Callable[[int], None],
    on_tile: Callable[[int, torch.Tensor], None],
    keep: Sequence[int] | None = None,
) -> GroupStats:
    """Run ``fn`` on every tile in lockstep (see :class:`_Lockstep`); ``on_tile(i, out)`` gets each output in order
    (with ``keep``, only those tiles run past the attention and give an output). Returns the statistics used at each
    GroupNorm."""
    lockstep = _Lockstep(len(tiles), control, on_round, keep)
    grad = torch.is_grad_enabled()

    def body(i: int, tile: Tile) -> None:
        _ctx.tile, _ctx.lockstep, _ctx.index = tile, lockstep, i
        try:
            lockstep._wait_turn(i, 0)
            rows, cols = tile.rect.slices
            with torch.set_grad_enabled(grad):
                out = fn(x[:, :, rows, cols])
            on_tile(i, out)
            lockstep.finish(i)
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            lockstep.fail(exc)
        finally:
            _ctx.tile, _ctx.lockstep = None, None

    threads = [threading.Thread(target=body, args=(i, t), daemon=True, name=f"vae-tile-{i}") for i, t in
               enumerate(tiles)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    error, lockstep.error = lockstep.error, None  # the lockstep must not keep the error (and its frames) alive
    if error is not None:
        raise error
    return lockstep.recorded


def count_group_norms(net: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.GroupNorm) for m in net.modules())


def tiled_vae(
    fn: Callable[[torch.Tensor], torch.Tensor],
    net: torch.nn.Module,
    x: torch.Tensor,
    *,
    factor: float,
    tile: int,
    overlap: int,
    align: int = 1,
    region: Rect | None = None,
    state_bytes_per_px: float = 0.0,
    state_budget: int | None = None,
    region_sample: int = 4,
    attention_tokens: int = 160_000,
    stats: GroupStats | None = None,
    record: GroupStats | None = None,
    sample_out: list[tuple[Rect, torch.Tensor]] | None = None,
    local: LocalNorm | None = None,
    control: Control | None = None,
    stage: Stage = Stage.DECODE,
    attention_bytes_per_px: float = 0.0,
) -> torch.Tensor:
    """Run a VAE half (``fn`` = encode or decode, ``net`` = its module) over tiles of ``x``.

    ``factor`` is output pixels per input pixel (8 for decode, 1/8 for encode); ``tile``/``overlap`` are in input
    pixels and tile borders fall on multiples of ``align`` (8 for encode, so every layer maps them to whole pixels).
    With one tile and no region this is exactly ``fn(x)``: no statistics pass. ``region`` (in input pixels) limits
    the work to a window plus a margin; its statistics then come from a lockstep run over ``region_sample`` tiles
    (at least a third of them) spread over the whole image (a preview: the full render is exact).
    ``state_bytes_per_px`` (bytes kept per full-resolution pixel between GroupNorms) and ``state_budget`` bound
    the lockstep's memory; beyond it a whole image's statistics come from its copy downsampled to a tile, a region's
    from a spread sample of tiles. ``attention_bytes_per_px`` (bytes a decoder tile keeps per input pixel while it
    waits at the mid-block attention; 0 for the encoder, whose attention comes last) lets every tile of a sampled
    region run up to that attention when all of them fit there. ``stats`` given (see
    :func:`gather_stats`, :func:`blend_stats`) are used as they are, for every tile; ``record`` receives the
    statistics used. ``sample_out`` receives, for each tile of a statistics sample, its core's output and where that
    core lies in output pixels: what a region's colour fix estimates the whole result's tone from.
    When every tile runs in lockstep and the attention layer has at most ``attention_tokens``
    positions, the attention also sees the whole image (its cost then stays below the decoder's convolutions:
    about 32 N FLOP per output pixel against about 5 M); beyond that, each tile's attention sees the tile.
    ``local`` (with ``stats``, used where it declines a module) normalises each tile with statistics that vary
    over the image, even for a single tile.
    """
    _, _, h, w = x.shape
    image = Rect.whole(w, h)
    region = Rect(*region) if region is not None else image
    whole = region == image
    if whole and h <= tile and w <= tile and local is None:
        if control:
            control.check()
        out = fn(x)
        if control:
            control.report(1, 1, stage)
        return out

    tiles = plan_tiles(h, w, tile, overlap, align)
    full_px = tiles[0].rect.area * max(factor, 1.0) ** 2
    fits = len(tiles)
    if state_budget is not None and state_bytes_per_px > 0:
        fits = max(1, int(state_budget // (full_px * state_bytes_per_px)))
    if stats is not None:
        sample, margin = [], 0 if whole else overlap
        win = image if whole else region.grown(margin).clipped(w, h)
    elif whole:
        sample = spread_sample(tiles, fits)
        margin, win = 0, image
        if len(sample) < len(tiles):
            # Not every tile fits: the statistics of one forward of the input downsampled to a tile. A sample of
            # full-resolution tiles follows the content of the part it covers, and measured worse at 2048 x 1536:
            # 14.6 dB and up to 51 levels of shift (trained test VAE, 2 of 4 tiles) against 29.7 dB and 4.5 levels;
            # 16.3 dB against 23.8 dB with SD-2.1-shaped weights (3 of 6 tiles).
            stats, sample = gather_stats(fn, net, downsampled(x, tile)), []
    else:
        sample = spread_sample(tiles, min(fits, max(region_sample, math.ceil(len(tiles) * REGION_SAMPLE_SHARE))))
        margin = overlap
        win = region.grown(margin).clipped(w, h)

    oh, ow = round(win.height * factor), round(win.width * factor)
    ramp = max(1, round(overlap * factor))
    acc: torch.Tensor | None = None
    out_dtype: torch.dtype | None = None  # the result keeps the dtype the network produced, whatever the input's
    norm = torch.zeros((1, 1, oh, ow), device=x.device, dtype=torch.float32)
    ramps: dict[tuple[int, int, Sides], torch.Tensor] = {}  # made once per shape, on the device

    def ramp_for(th: int, tw: int, sides: Sides) -> torch.Tensor:
        key = (th, tw, sides)
        if key not in ramps:
            ramps[key] = ramp_weights(th, tw, ramp, sides, x.device)
        return ramps[key]

    def add(t: Tile, out: torch.Tensor) -> None:
        """Blend one tile's output into the window (tiles outside the window are ignored)."""
        nonlocal acc, out_dtype
        part = t.rect.intersection(win)  # input pixels
        if part.empty:
            return
        out_dtype = out_dtype or out.dtype
        out = out.to(torch.float32)
        if acc is None:
            acc = torch.zeros((1, out.shape[1], oh, ow), device=x.device, dtype=torch.float32)
        wgt = ramp_for(out.shape[-2], out.shape[-1], inner_sides(t.rect, w, h))
        src = part.shifted(-t.rect.x0, -t.rect.y0).scaled(factor)  # output pixels of the tile
        # where it lands in the window's output: its start rounded alike, its size the source's (no off-by-one)
        dx0, dy0 = round((part.x0 - win.x0) * factor), round((part.y0 - win.y0) * factor)
        (dr, dc), (sr, sc) = src.shifted(dx0 - src.x0, dy0 - src.y0).slices, src.slices
        acc[:, :, dr, dc] += out[:, :, sr, sc] * wgt[:, :, sr, sc]
        norm[:, :, dr, dc] += wgt[:, :, sr, sc]

    def in_window(t: Tile) -> bool:
        return t.rect.overlaps(win)

    sampled = set(sample)
    rest = [i for i, t in enumerate(tiles) if i not in sampled and in_window(t)]
    rounds = count_group_norms(net)
    total = rounds + len(rest)
    done_tiles = 0
    exact = stats is None and whole and len(sample) == len(tiles)
    tokens = h * w * min(factor, 1.0) ** 2
    # The decoder's attention comes before any upsampling: when every tile can wait there (a few latent-resolution
    # maps each), all of them reach it, the attention sees the whole image, and the tiles beyond the sample leave.
    waiting = sum(t.rect.area for t in tiles) * attention_bytes_per_px
    can_wait = tokens <= attention_tokens and attention_bytes_per_px > 0 and waiting <= (state_budget or 0)
    shared = (tokens <= attention_tokens and exact) or (stats is None and can_wait)
    # Local strengths (their statistics given per place) over several tiles: every tile still runs up to the
    # attention in lockstep, so it sees the whole image as each plain render's does. Each tile's own attention put
    # the halves of a 0/1 map 3.6 and 4.0 levels from their plain renders in 192 px tiles (trained test VAE).
    local_shared = local is not None and stats is not None and len(tiles) > 1 and can_wait
    shared = shared or local_shared
    lock = list(range(len(tiles))) if shared else sample

    def on_round(r: int) -> None:
        if control:
            control.report(min(r, rounds), total, stage)

    def on_tile(i: int, out: torch.Tensor) -> None:
        t = tiles[lock[i]]
        add(t, out)
        if sample_out is not None and len(sample) < len(tiles):
            rows, cols = _core_rect(out.shape[-2], out.shape[-1], t).slices
            sample_out.append((t.core.scaled(factor), out[:, :, rows, cols]))

    with _whole_image_attention(net, shared):
        if stats is None:
            keep = sample if shared and not exact else None  # the tiles that go on past the attention
            with _patched_group_norms(net):
                stats = _run_lockstep(fn, x, [tiles[i] for i in lock], control, on_round, on_tile, keep)
        else:
            rounds = 0
            total = len(rest)
        if local_shared:
            in_win = [i for i in rest if in_window(tiles[i])]
            with _patched_group_norms(net, frozen=stats, local=local):
                _run_lockstep(fn, x, tiles, control, lambda _r: None, lambda i, out: add(tiles[i], out), in_win)
            if control:
                control.report(total, total, stage)
            rest = []
        if record is not None:
            record.update(stats)
        with _patched_group_norms(net, frozen=stats, local=local):
            for i in rest:
                if control:
                    control.check()
                t = tiles[i]
                _ctx.window = t.rect
                rows, cols = t.rect.slices
                try:
                    add(t, fn(x[:, :, rows, cols]))
                finally:
                    _ctx.window = None
                done_tiles += 1
                if control:
                    control.report(rounds + done_tiles, total, stage)
    assert acc is not None
    result = acc / norm.clamp_min(1e-8)
    cx0, cy0 = round((region.x0 - win.x0) * factor), round((region.y0 - win.y0) * factor)
    rows, cols = Rect(cx0, cy0, cx0 + round(region.width * factor), cy0 + round(region.height * factor)).slices
    return result[:, :, rows, cols].to(out_dtype or x.dtype)


def blend_stats(corners: Sequence[GroupStats], weights: Sequence[float]) -> GroupStats:
    """Statistics of a linear blend of latents, estimated from those of its corners: means and second moments
    combined with the blend's weights (exact at a corner, close between them: the statistics vary smoothly)."""
    out: GroupStats = {}
    total = sum(weights) or 1.0
    for gn in corners[0]:
        mean = sum(w / total * c[gn][0] for w, c in zip(weights, corners, strict=True))
        # the mixture's variance, centred (no second moment minus a squared mean: that cancels in float32)
        var = sum(w / total * (c[gn][1] + (c[gn][0] - mean).square()) for w, c in zip(weights, corners, strict=True))
        out[gn] = (mean, var.clamp_min(0.0))  # type: ignore[union-attr]
    return out


def downsampled(x: torch.Tensor, limit: int) -> torch.Tensor:
    """``x`` area-downsampled so its longer side is at most ``limit`` pixels (unchanged if it already is)."""
    h, w = x.shape[-2:]
    f = min(1.0, limit / max(h, w))
    if f >= 1.0:
        return x
    return torch.nn.functional.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")


def gather_stats(fn: Callable[[torch.Tensor], torch.Tensor], net: torch.nn.Module, x: torch.Tensor) -> GroupStats:
    """The GroupNorm statistics of one untiled forward of ``fn`` on ``x`` (e.g. a downsampled copy of an image)."""
    h, w = x.shape[-2:]
    with _patched_group_norms(net):
        whole = Rect.whole(w, h)
        return _run_lockstep(fn, x, [Tile(whole, whole)], None, lambda _r: None, lambda _i, _o: None)


def vae_state_bytes_per_px(vae: torch.nn.Module, dtype: torch.dtype) -> float:
    """Bytes a tile keeps alive per full-resolution pixel between GroupNorms: the widest full-resolution block's
    hidden state and its residual, plus the GroupNorm input, in ``dtype``."""
    channels = int(getattr(getattr(vae, "config", None), "block_out_channels", (128,))[0])
    return 3.0 * channels * torch.finfo(dtype).bits / 8


def vae_attention_bytes_per_px(vae: torch.nn.Module, dtype: torch.dtype) -> float:
    """Bytes a decoder tile keeps alive per latent pixel while it waits at the mid-block attention: its hidden state,
    the residual, the normalised input and its queries, keys and values, at the mid-block's width, in ``dtype``."""
    channels = int(getattr(getattr(vae, "config", None), "block_out_channels", (512,))[-1])
    return 6.0 * channels * torch.finfo(dtype).bits / 8


__all__ = [
    "GroupStats",
    "Tile",
    "blend_stats",
    "decode_overlap",
    "gather_stats",
    "plan_tiles",
    "spread_sample",
    "tiled_vae",
    "vae_attention_bytes_per_px",
    "vae_state_bytes_per_px",
]
