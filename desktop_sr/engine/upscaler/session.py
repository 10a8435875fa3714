"""Any feed-forward upscaler (the bundled Real-ESRGAN, a community model through spandrel) behind the session API.

Per photo the network runs once (at its own factor, tile by tile, only where a render needs it); everything else -
other scales, the (pix, sem) plane, corners, the detail map - is array arithmetic on that cached output (see
:mod:`.compose`). Other scales are the network's output resized with Lanczos, as Real-ESRGAN's own ``--outscale``
does: a network is trained for one factor.

What the shared parameters mean here:
- ``pix``/``sem``: strengths of the low- and high-frequency parts of the correction to bicubic (see compose.py);
- ``realism`` and ``prompt``: ignored (a feed-forward network has neither); ``ModelInfo`` says so, so the GUI
  disables those controls;
- ``color_fix``: ignored. These networks keep colours (they have no latent-space drift for a fix to undo), and a fix
  measured on the whole result would make the (pix, sem) plane non-linear, breaking the exact corner preview.

A network on a device that can fail (the bundled model through Vulkan) comes with a :class:`~.fallback.Fallback`:
a failing device costs time, never the render (see :mod:`.fallback`), and :attr:`UpscalerSession.notice` says so.
"""

from __future__ import annotations

import gc
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..api import Corners, PhotoHolder, Region, RenderParams, check_photo
from ..cache import LRUCache, photo_hash
from ..control import Control
from ..errors import DeviceFailed, ModelError
from ..hardware.budget import memory_budget
from ..hardware.device import conv_memory_format, dtype_name, empty_cache
from ..kernels.processing import resize_rgb
from ..kernels.tiling import Attempt, retry_on_oom
from ..rect import Rect
from ..strength_map import output_strengths
from .compose import compose, detail_map, radius_for, split_bands
from .fallback import Fallback, fallback_notice
from .network import Network
from .tiled import NetTiles, TiledOutput


def color_fix_note(who: str) -> str:
    """Why the colour fix is off for a feed-forward upscaler, in the words the GUI's note and the CLI use."""
    return (
        f"the colour fix is off for {who} (a fix over the whole result would make the pix/sem corner preview inexact)"
    )


log = logging.getLogger(__name__)

Bands = tuple[np.ndarray, np.ndarray, np.ndarray]  # bicubic, low, high


class UpscalerSession(PhotoHolder):
    """Implements :class:`~desktop_sr.engine.api.UpscaleSession` for a feed-forward :class:`~.network.Network`."""

    #: Measured: 91 bytes per output pixel above the tile-bound cost (1 and 2.4 MP results, fp32 CPU).
    BYTES_PER_OUTPUT_PX = 100
    RENDER_OVERHEAD = 400 * 1024**2

    def __init__(
        self,
        network: Network,
        *,
        device: torch.device,
        dtype: torch.dtype,
        tiles: NetTiles | None = None,
        cache_mb: int = 1024,
        weights_path: Path | None = None,
        fallback: Fallback | None = None,
        notice: str = "",
    ) -> None:
        self.network = network
        self.model = network.module
        self.scale = network.scale  # the network's own factor
        self.device = device
        self.dtype = dtype
        self.tiles = tiles if tiles is not None else default_tiles(network, device, dtype)
        #: What to finish on when the device fails (see :mod:`.fallback`); None: a failure is the caller's.
        self.fallback = fallback
        #: One line for the user when the session runs elsewhere than asked ("vulkan:0 failed during the render
        #: (...); finishing on the CPU"), or "": the CLI prints it, the GUI's status bar shows it.
        self.notice = notice
        self.weights_path = weights_path
        #: Cheap derived arrays (bicubic, resized outputs, frequency bands): recomputed when evicted.
        self.cache = LRUCache(cache_mb * 1024 * 1024)
        #: Finished network outputs of earlier photos: costly to recompute, so kept apart from the derived arrays.
        self.outputs = LRUCache(cache_mb * 1024 * 1024)
        self.info = replace(network.info, device=network.device or str(device),
                            dtype=network.precision or dtype_name(dtype))  # fmt: skip
        self._rgb: np.ndarray | None = None
        self._hash = ""
        self._tiled: TiledOutput | None = None  # the current photo's partial network output
        self._net: np.ndarray | None = None  # the current photo's whole network output, once complete
        self.network_passes = 0  # tiles actually run, for tests and benchmarks

    # -- photo ------------------------------------------------------------------------------------------------------
    def set_photo(self, rgb: np.ndarray) -> None:
        rgb = check_photo(rgb)
        digest = photo_hash(rgb)
        if digest == self._hash:
            return
        self._rgb, self._hash = rgb, digest
        self._tiled = None
        found = self.outputs.get(self._net_key())
        self._net = found if isinstance(found, np.ndarray) else None

    def _net_key(self) -> tuple[object, ...]:
        return (self._hash, "net", self.tiles.key())

    def _key(self, *parts: object) -> tuple[object, ...]:
        return (self._hash, self.tiles.key(), *parts)

    # -- the network -------------------------------------------------------------------------------------------------
    def _run_tile(self, x: torch.Tensor, control: Control | None) -> torch.Tensor:
        self.network_passes += 1
        x = x.to(self.device, self.dtype).contiguous(memory_format=conv_memory_format(self.device))
        with torch.inference_mode():
            y = self.network(x, control.check if control is not None else None)
        return y.to(torch.float32).cpu().contiguous()

    def _network(self, window: Rect | None, control: Control | None) -> np.ndarray:
        """The network output over ``window`` (in its output pixels; None = whole photo)."""
        if self._net is not None:
            if window is None:
                return self._net
            return self._net[window.slices]

        def run(attempt: Attempt) -> torch.Tensor:
            tile = attempt.tile
            if tile != self.tiles.tile:  # out of memory: a smaller grid (the tiles done so far do not fit it)
                self.tiles = replace(self.tiles, tile=tile, overlap=min(self.tiles.overlap, tile // 4))
                self._tiled = None
            if self._tiled is None:
                self._tiled = TiledOutput(self.photo, self.tiles, self.scale)
            return torch.from_numpy(self._tiled.window(self._run_tile, window, control))

        while True:
            try:
                out = retry_on_oom(run, Attempt(self.tiles.tile), self.device, minimum=32).numpy()
                break
            except DeviceFailed as exc:
                self._device_failed(exc)
        if window is None:
            self._net, self._tiled = out, None
            self.outputs.put(self._net_key(), out)
        return out

    def _device_failed(self, exc: DeviceFailed) -> None:
        """The device failed mid-render: its tiles once more at half the size, then the rest on the fallback network
        on the CPU, keeping the tiles done where they agree with it (see :mod:`.fallback`)."""
        fallback = self.fallback
        if fallback is None:
            raise exc
        smaller = fallback.smaller(self.tiles)
        if smaller is not None:  # a new grid: the tiles done so far do not fit it
            log.info("%s; trying again with %d px tiles", exc, smaller.tile)
            self.tiles, self._tiled = smaller, None
            return
        network = fallback.build()
        self.fallback = None
        self.notice = fallback_notice(exc)
        log.info("%s", self.notice)
        _close_module(self.model)
        self.network, self.model = network, network.module
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.info = replace(network.info, device="cpu", dtype=dtype_name(self.dtype))
        cpu = default_tiles(network, self.device, self.dtype)
        if not fallback.keeps_tiles or self.tiles.tile > cpu.tile:  # a GPU's 512 px tiles take minutes on a CPU
            self.tiles, self._tiled = cpu, None

    def is_cached(self, params: RenderParams) -> bool:
        """True once the network has covered the whole photo: every scale and strength is arithmetic from there."""
        if self._rgb is None:
            return False
        return self._net is not None or (self._tiled is not None and self._tiled.complete)

    def model_output(self, scale: int, control: Control | None = None) -> np.ndarray:
        """The network's result at ``scale`` for the whole photo (resized with Lanczos where ``scale`` is not the
        network's own)."""
        if scale == self.scale:
            return self._network(None, control)
        key = self._key("model", scale)
        cached = self.cache.get(key)
        if cached is None:
            net = self._network(None, control)
            cached = resize_rgb(net, self.output_size(scale), Image.Resampling.LANCZOS)
            np.clip(cached, 0.0, 1.0, out=cached)
            self.cache.put(key, cached)
        return cached  # type: ignore[return-value]

    # -- bands -------------------------------------------------------------------------------------------------------
    def _full_bands(self, scale: int, control: Control | None) -> Bands:
        low, high = self.cache.get(self._key("low", scale)), self.cache.get(self._key("high", scale))
        if low is None or high is None:
            low, high = split_bands(self.model_output(scale, control), self.bicubic(scale), scale)
            self.cache.put(self._key("low", scale), low)
            self.cache.put(self._key("high", scale), high)
        return self.bicubic(scale), low, high  # type: ignore[return-value]

    def _region_bands(self, scale: int, region: Region, control: Control | None) -> Bands:
        """Bands of a region only, running just the tiles under it (the GUI's visible region first).

        The window is widened by the low-pass radius plus the Lanczos support so the crop equals the same crop of
        the whole-photo bands, and aligned to multiples of ``scale`` so it maps to whole network pixels and the
        resize samples the same positions as on the whole photo.
        """
        ph, pw = self.photo.shape[:2]
        n = self.scale
        # the Lanczos support (3 lobes of the coarser grid), in output pixels, when the network's factor differs
        m = radius_for(scale) + (0 if scale == n else 4 + math.ceil(3 * scale / n))
        # the widened region in photo pixels: at ``scale`` it is the extended region, at ``n`` the network's window
        # (a photo pixel k maps to the whole output pixels k scale and k n; at the network's factor they agree)
        photo_px = region.grown(m).outer(scale).clipped(pw, ph)
        ext = photo_px.scaled(scale)
        model = self._network(photo_px.scaled(n), control)
        if scale != n:
            model = resize_rgb(model, (ext.width, ext.height), Image.Resampling.LANCZOS)
            np.clip(model, 0.0, 1.0, out=model)
        bic = self.bicubic(scale)[ext.slices]
        low, high = split_bands(model, bic, scale)
        crop = region.shifted(-ext.x0, -ext.y0).slices
        return bic[crop], low[crop], high[crop]

    def _bands_cached(self, scale: int) -> bool:
        return self._key("low", scale) in self.cache and self._key("high", scale) in self.cache

    # -- the session API ---------------------------------------------------------------------------------------------
    def render(
        self,
        params: RenderParams,
        *,
        region: Region | None = None,
        control: Control | None = None,
    ) -> np.ndarray:
        if control is not None:
            control.check()
        scale = params.scale
        if not self.is_cached(params):
            self.check_fits(scale)
        if region is not None:
            w, h = self.output_size(scale)
            region = Rect(*region)  # a caller's plain (x0, y0, x1, y1) tuple too
            if region.empty or not Rect.whole(w, h).contains(region):
                raise ValueError(f"region {tuple(region)} is outside the {w} x {h} result")
            if region == Rect.whole(w, h):
                region = None
        if region is None or self._bands_cached(scale) or self.is_cached(params):
            bic, low, high = self._full_bands(scale, control)
            if region is not None:
                bic, low, high = (a[region.slices] for a in (bic, low, high))
        else:
            bic, low, high = self._region_bands(scale, region, control)
        if params.maps is not None:  # local strengths scale the same two bands, pixel by pixel
            w, h = self.output_size(scale)
            pix, sem = output_strengths(params, w, h, region)
            return compose(bic, low, high, pix, sem)
        return compose(bic, low, high, params.pix, params.sem)

    def corners(self, params: RenderParams, *, control: Control | None = None) -> Corners:
        """bicubic (0, 0), bicubic + low (1, 0), bicubic + low + high (1, 1): ``Corners.blend`` is then exact."""
        bic, low, high = self._full_bands(params.scale, control)
        pix = bic + low
        return Corners(base=bic.copy(), pix=pix, full=pix + high)

    def detail_map(self, params: RenderParams, *, control: Control | None = None) -> np.ndarray:
        """|high-frequency correction|: where the network adds detail finer than the photo's pixels."""
        _, _, high = self._full_bands(params.scale, control)
        return detail_map(high)

    def close(self) -> None:
        self.cache.clear()
        self.outputs.clear()
        self._tiled = self._net = None
        _close_module(self.model)
        del self.model, self.network
        gc.collect()
        empty_cache(self.device)


def default_tiles(network: Network, device: torch.device, dtype: torch.dtype) -> NetTiles:
    """Tiles sized from the free memory of ``device`` (where the network computes; see :meth:`NetTiles.for_budget`)."""
    tiles = NetTiles.for_budget(
        memory_budget(device),
        torch.finfo(dtype).bits // 8,
        gpu=device.type != "cpu",
        bytes_per_input_px=network.bytes_per_input_px,
        largest=network.largest_tile,
    )
    return replace(tiles, pad=network.pad)


def _close_module(module: object) -> None:
    """Release a module that holds device memory outside torch (ncnn's Vulkan network) now, not at collection."""
    close = getattr(module, "close", None)
    if callable(close) and not isinstance(module, torch.nn.Module):
        close()


def int_option(name: str, value: object, low: int, high: int) -> int:
    """An option that may arrive as a string (from ``ModelSpec.options`` or a settings file), checked."""
    try:
        number = int(str(value))
    except ValueError:
        raise ModelError(Path(name), f"option {name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise ModelError(Path(name), f"option {name} must be between {low} and {high}, not {number}")
    return number


def tiles_from_options(tile: object | None, overlap: object | None) -> NetTiles | None:
    """Input-pixel tile geometry from the ``tile``/``overlap`` options; None = sized from free memory."""
    if tile is None and overlap is None:
        return None
    t = int_option("tile", tile, 32, 4096) if tile is not None else NetTiles().tile
    o = int_option("overlap", overlap, 0, t // 2) if overlap is not None else min(NetTiles().overlap, t // 4)
    return NetTiles(tile=t, overlap=o)
