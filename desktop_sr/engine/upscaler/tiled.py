"""A feed-forward network's output for one photo, computed tile by tile on demand and kept.

Why tiles on a fixed grid: RRDBNet on a CPU costs seconds per output megapixel, so the GUI's "visible region first"
only helps if a region costs only the tiles under it. The grid depends on the photo and the tile settings alone,
never on the region asked for, so every pixel is always blended from the same tiles: a region rendered first and
the whole photo rendered later agree exactly, and the tiles the region computed are not computed again.

Seams: each tile's output is blended with cosine ramps (:func:`~..kernels.tiling.ramp_weights`, zero at a
tile's inner border where convolution padding disturbs it) over an overlap. RRDBNet sees far (23 blocks of dense
3x3 convolutions), so a tile's border pixels differ from an untiled run. Measured on a real 320 px photo
(``bench/bundled_quality.py``): the default 192 px tiles with 32 px overlap are within 61 dB PSNR of an untiled run
(mean 0.08 8-bit levels), 96 px tiles within 53 dB.
The whole photo is first reflect-padded by 10 pixels like Real-ESRGAN's and ncnn's own code, because zero padding
at the photo's edges visibly darkens and streaks the outer pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..control import Control
from ..kernels.tiling import inner_sides, ramp_weights, tile_starts
from ..rect import Rect
from ..stages import Stage

SCALE = 4  # the bundled network's own factor (a session may run a network of another factor)
#: Bytes per input pixel of one forward pass at fp32: three 64-channel maps at 16x the pixels dominate.
BYTES_PER_INPUT_PX = 16 * 1024


@dataclass(frozen=True)
class NetTiles:
    """Tile geometry in input pixels. Part of every cache key: tiles change the result slightly."""

    tile: int = 192
    overlap: int = 32
    pad: int = 10

    def key(self) -> tuple[int, int, int]:
        return (self.tile, self.overlap, self.pad)

    @staticmethod
    def for_budget(
        budget_bytes: int,
        dtype_bytes: int = 4,
        gpu: bool = False,
        bytes_per_input_px: int = BYTES_PER_INPUT_PX,
        largest: int | None = None,
    ) -> NetTiles:
        """The largest tile that fits half the budget, capped: 192 on the CPU (one tile then takes seconds, not
        minutes, so progress moves) and 512 on a GPU, or ``largest`` (an architecture's own limit). A network that
        needs more memory per pixel (a transformer) says so with ``bytes_per_input_px`` (fp32 figure).
        Out-of-memory still halves the tile and retries."""
        side = int(math.sqrt(max(budget_bytes, 1) * 0.5 / (bytes_per_input_px * dtype_bytes / 4)))
        cap = 512 if gpu else 192
        if largest is not None:
            cap = min(cap, largest)
        tile = max(min(64, cap), min(cap, side // 16 * 16))
        return NetTiles(tile=tile, overlap=min(32, tile // 4))


def balanced_tile(size: int, tile: int, overlap: int) -> int:
    """The smallest tile that covers ``size`` in as few tiles as ``tile`` would, all overlapping by ``overlap``.

    With plain tiles the last one is pushed back to the border and may overlap its neighbour by far more than needed
    (a 276 px side in 192 px tiles computes 384 px); equal tiles of 154 px cost a third less on such a photo.
    """
    if size <= tile:
        return size
    n = math.ceil((size - overlap) / (tile - overlap))
    return min(tile, math.ceil((size + (n - 1) * overlap) / n))


#: Runs the network on one input tile (1 x 3 x h x w, CPU float32, [0, 1]) -> 1 x 3 x sh x sw CPU float32.
TileFn = Callable[[torch.Tensor, Control | None], torch.Tensor]


class TiledOutput:
    """The network output of one photo on a fixed tile grid; tiles are run when a region first needs them.

    Tiles are :class:`~..rect.Rect` s in the padded input's pixels; their outputs (``done``) are keyed by them."""

    def __init__(self, rgb: np.ndarray, tiles: NetTiles, scale: int = SCALE) -> None:
        self.tiles = tiles
        self.scale = scale  # the network's own factor: output pixels per input pixel
        self.height, self.width = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        p = tiles.pad
        mode = "reflect" if p < min(self.height, self.width) else "replicate"  # reflect needs more pixels than pad
        self.x = F.pad(x, (p, p, p, p), mode=mode) if p > 0 else x
        hp, wp = self.x.shape[-2:]
        self.th, self.tw = balanced_tile(hp, tiles.tile, tiles.overlap), balanced_tile(wp, tiles.tile, tiles.overlap)
        ys = tile_starts(hp, self.th, tiles.overlap)
        xs = tile_starts(wp, self.tw, tiles.overlap)
        #: The grid, row by row: the order tiles are blended in (a float sum: the order is part of the result).
        self.grid = [Rect(x, y, x + self.tw, y + self.th) for y in ys for x in xs]
        self.done: dict[Rect, torch.Tensor] = {}

    @property
    def total(self) -> int:
        return len(self.grid)

    @property
    def complete(self) -> bool:
        return len(self.done) == self.total

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.done.values())

    def _tiles_for(self, window: Rect) -> list[Rect]:
        """Grid tiles whose output overlaps ``window`` (padded-output pixels)."""
        return [t for t in self.grid if t.scaled(self.scale).overlaps(window)]

    def missing(self, region: Rect | None = None) -> int:
        """How many tiles a region (output pixels of the photo; None = all) still needs: the network passes it
        costs."""
        return sum(1 for t in self._tiles_for(self._padded(region)) if t not in self.done)

    def _padded(self, region: Rect | None) -> Rect:
        """``region`` (None = the whole output) in the output pixels of the padded input."""
        s = self.scale
        r = Rect(*region) if region is not None else Rect.whole(self.width * s, self.height * s)
        o = s * self.tiles.pad
        return r.shifted(o, o)

    def window(self, run: TileFn, region: Rect | None = None, control: Control | None = None) -> np.ndarray:
        """The output over ``region`` (network output pixels of the photo; None = all), H x W x 3 in [0, 1].

        Missing tiles are run first, with a progress report after each and a cancel check before each (and, through
        ``run``, inside each); a cancelled call keeps the tiles it finished, which are exact and reusable.
        """
        win = self._padded(region)
        needed = self._tiles_for(win)
        todo = [t for t in needed if t not in self.done]
        for i, t in enumerate(todo):
            if control is not None:
                control.check()
            rows, cols = t.slices
            self.done[t] = run(self.x[:, :, rows, cols], control)
            if control is not None:
                control.report(i + 1, len(todo), Stage.UPSCALE)
        s, hp, wp = self.scale, *self.x.shape[-2:]
        acc = torch.zeros((3, win.height, win.width), dtype=torch.float32)
        norm = torch.zeros((1, win.height, win.width), dtype=torch.float32)
        ramp = s * self.tiles.overlap
        for t in needed:
            out = self.done[t][0]
            wgt = ramp_weights(out.shape[-2], out.shape[-1], ramp, inner_sides(t, wp, hp), torch.device("cpu"))[0]
            # the part of this tile's output inside the window, in tile and in window coordinates
            ox, oy = s * t.x0, s * t.y0
            part = Rect(ox, oy, ox + out.shape[-1], oy + out.shape[-2]).intersection(win)
            tile_part = (slice(None), *part.shifted(-ox, -oy).slices)
            win_part = (slice(None), *part.shifted(-win.x0, -win.y0).slices)
            acc[win_part] += out[tile_part] * wgt[tile_part]
            norm[win_part] += wgt[tile_part]
        result = (acc / norm.clamp_min(1e-8)).clamp_(0.0, 1.0)
        return np.ascontiguousarray(result.permute(1, 2, 0).numpy())
