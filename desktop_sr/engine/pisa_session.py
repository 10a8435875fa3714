"""The PiSA-SR inference session: encode once, cache eps per realism level, compose any (pix, sem) for free.

eps is linear in (lambda_pix, lambda_sem): eps = pix * eps_pix + sem * (eps_full - eps_pix). So per photo and
realism level the session caches z_L, eps_pix and eps_full, and a slider change costs only latent arithmetic and
a VAE decode (of the visible region first, if the caller asks). Only the branches a setting needs are computed:
(0, 0) needs none, (p, 0) only the pixel pass, (s, s) - including the default (1, 1) - only the full pass.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .api import CancelToken, Corners, ModelInfo, PhotoHolder, ProgressFn, Region, RenderParams, check_photo
from .cache import LRUCache, photo_hash
from .device import empty_cache, memory_budget
from .pisa_model import PisaModel
from .processing import bicubic_upscale, color_fix, pad_to_multiple, to_numpy, to_tensor
from .tiling import TileSettings, retry_on_oom, tiled_eps, tiled_vae


def needed_branches(pix: float, sem: float) -> tuple[str, ...]:
    """The UNet branches a (pix, sem) setting depends on: eps = sem * eps_full + (pix - sem) * eps_pix."""
    out = []
    if pix != sem:
        out.append("pix")
    if sem != 0:
        out.append("full")
    return tuple(out)


class PisaSession(PhotoHolder):
    """Implements :class:`~desktop_sr.engine.api.UpscaleSession` for a :class:`PisaModel`."""

    #: Measured: 63 bytes per output pixel with small tiles (1 and 4.2 MP results with their corners); the VAE's
    #: tile work space (up to about 1 GB for SD-2.1 at the default tile) comes on top.
    BYTES_PER_OUTPUT_PX = 70
    RENDER_OVERHEAD = 1024**3

    def __init__(self, model: PisaModel, *, cache_mb: int = 1024, tiles: TileSettings | None = None) -> None:
        self.model = model
        if tiles is None:
            itemsize = torch.finfo(model.dtype).bits // 8
            tiles = TileSettings.for_budget(memory_budget(model.device), itemsize)
        self.tiles = tiles
        self.cache = LRUCache(cache_mb * 1024 * 1024)
        timesteps = tuple(model.ckpt.timesteps)
        self.info = ModelInfo(
            name=model.name,
            kind="pisa-sr",
            device=str(model.device),
            dtype=model.dtype_name,
            supports_realism=True,
            supports_prompt=True,
            trained_timesteps=() if timesteps == (1,) else timesteps,
        )
        self._rgb: np.ndarray | None = None
        self._hash = ""
        self.unet_passes = 0  # tile passes actually run, for tests and benchmarks

    # -- photo ------------------------------------------------------------------------------------------------------
    def set_photo(self, rgb: np.ndarray) -> None:
        self._rgb = check_photo(rgb)
        self._hash = photo_hash(self._rgb)

    def _key(self, *parts: object) -> tuple[object, ...]:
        return (self._hash, self.model.model_id, self.tiles.key(), *parts)

    def bicubic(self, scale: int) -> np.ndarray:
        key = self._key("bicubic", scale)
        cached = self.cache.get(key)
        if cached is None:
            cached = bicubic_upscale(self.photo, scale)
            self.cache.put(key, cached)
        return cached  # type: ignore[return-value]

    # -- cached latents ------------------------------------------------------------------------------------------
    def latent(self, scale: int, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> torch.Tensor:
        """z_L of the padded bicubic input."""
        key = self._key("z", scale)
        z = self.cache.get(key)
        if z is not None:
            return z  # type: ignore[return-value]
        x, _ = pad_to_multiple(to_tensor(self.bicubic(scale)), self.model.vae_scale)
        x = x.to(self.model.device, self.model.dtype)
        f = self.model.vae_scale

        def run(tile: int) -> torch.Tensor:
            return tiled_vae(
                self.model.encode, self.model.vae.encoder, x, factor=1 / f, tile=tile * f,
                overlap=self.tiles.vae_overlap * f, stats_size=self.tiles.stats_size * f,
                progress=progress, cancel=cancel, stage="encode",
            )  # fmt: skip

        z = retry_on_oom(run, self.tiles.vae_tile, self.model.device)
        self.cache.put(key, z)
        return z

    def eps(
        self, params: RenderParams, branch: str, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> torch.Tensor:
        """eps_pix (``branch='pix'``) or eps_full (``'full'``) at the params' realism level, prompt and scale."""
        key = self._key("eps", params.scale, params.realism, params.prompt.strip(), branch)
        eps = self.cache.get(key)
        if eps is not None:
            return eps  # type: ignore[return-value]
        z = self.latent(params.scale, progress, cancel)
        cond = self.model.prompts.get(params.prompt)

        def unet(zt: torch.Tensor) -> torch.Tensor:
            self.unet_passes += 1
            return self.model.eps(zt, params.realism, cond, branch)

        def run(tile: int) -> torch.Tensor:
            return tiled_eps(
                unet, z, tile, min(self.tiles.unet_overlap, tile // 2), progress=progress, cancel=cancel,
                stage=f"unet-{branch}",
            )  # fmt: skip

        eps = retry_on_oom(run, self.tiles.unet_tile, self.model.device)
        self.cache.put(key, eps)
        return eps

    def is_cached(self, params: RenderParams) -> bool:
        if self._key("z", params.scale) not in self.cache:
            return False
        return all(
            self._key("eps", params.scale, params.realism, params.prompt.strip(), b) in self.cache
            for b in needed_branches(params.pix, params.sem)
        )

    def latent_result(
        self, params: RenderParams, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> torch.Tensor:
        """z_H = z_L - (pix * eps_pix + sem * (eps_full - eps_pix)), computing only the branches needed."""
        z = self.latent(params.scale, progress, cancel)
        branches = needed_branches(params.pix, params.sem)
        out = z.to(torch.float32).clone()
        if "full" in branches:
            out -= params.sem * self.eps(params, "full", progress, cancel).to(torch.float32)
        if "pix" in branches:
            out -= (params.pix - params.sem) * self.eps(params, "pix", progress, cancel).to(torch.float32)
        return out.to(z.dtype)

    # -- decoding ------------------------------------------------------------------------------------------------
    def _decode(
        self,
        zh: torch.Tensor,
        scale: int,
        region: Region | None,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
    ) -> np.ndarray:
        f = self.model.vae_scale
        w, h = self.output_size(scale)
        x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"region {region} is outside the {w} x {h} result")
        lat = (y0 // f, min(zh.shape[-2], math.ceil(y1 / f)), x0 // f, min(zh.shape[-1], math.ceil(x1 / f)))
        lat_region = None if region is None else lat

        def run(tile: int) -> torch.Tensor:
            return tiled_vae(
                self.model.decode, self.model.vae.decoder, zh, factor=f, tile=tile,
                overlap=self.tiles.vae_overlap, stats_size=self.tiles.stats_size, region=lat_region,
                progress=progress, cancel=cancel, stage="decode",
            )  # fmt: skip

        y = to_numpy(retry_on_oom(run, self.tiles.vae_tile, self.model.device))
        oy, ox = (lat[0] * f, lat[2] * f) if region is not None else (0, 0)
        return y[y0 - oy : y1 - oy, x0 - ox : x1 - ox]

    def render(
        self,
        params: RenderParams,
        *,
        region: Region | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> np.ndarray:
        if cancel:
            cancel.check()
        full_key = self._key("img", params)
        full = self.cache.get(full_key)
        if full is not None:  # read-only (see below): no full-size copy for a result seen before
            if region is None:
                return full  # type: ignore[return-value]
            x0, y0, x1, y1 = region
            return full[y0:y1, x0:x1]  # type: ignore[index]
        self.check_fits(params.scale)
        zh = self.latent_result(params, progress, cancel)
        y = self._decode(zh, params.scale, region, progress, cancel)
        ref = self.bicubic(params.scale)
        if region is not None:
            x0, y0, x1, y1 = region
            ref = ref[y0:y1, x0:x1]
        y = color_fix(y, ref, params.color_fix)
        if region is None:
            # Results are large (12 bytes a pixel): the caller gets the cached array itself, made read-only so a
            # caller that wants to change it must copy, and the cache can never be corrupted by one that forgets.
            y.flags.writeable = False
            self.cache.put(full_key, y)
        return y

    def corners(
        self, params: RenderParams, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> Corners:
        imgs = [self.render(params.with_(pix=p, sem=s), progress=progress, cancel=cancel) for p, s in
                ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))]  # fmt: skip
        return Corners(base=imgs[0], pix=imgs[1], full=imgs[2])

    def detail_map(
        self, params: RenderParams, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> np.ndarray:
        """|eps_full - eps_pix| summed over channels, upsampled to the output and scaled by its 99th percentile."""
        diff = (self.eps(params, "full", progress, cancel) - self.eps(params, "pix", progress, cancel)).abs()
        d = diff.to(torch.float32).sum(dim=1, keepdim=True)
        f = self.model.vae_scale
        w, h = self.output_size(params.scale)
        d = F.interpolate(d, scale_factor=f, mode="bilinear", align_corners=False)[0, 0, :h, :w].cpu().numpy()
        top = float(np.percentile(d, 99)) or 1.0
        return np.clip(d / top, 0.0, 1.0).astype(np.float32)

    def close(self) -> None:
        self.cache.clear()
        device = self.model.device
        del self.model
        gc.collect()
        empty_cache(device)


def load_pisa_session(
    base_dir: str | Path,
    lora: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_mb: int = 1024,
    tiles: TileSettings | None = None,
) -> PisaSession:
    return PisaSession(PisaModel(base_dir, lora, device=device, dtype=dtype), cache_mb=cache_mb, tiles=tiles)
