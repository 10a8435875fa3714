"""The PiSA-SR inference session: encode once, cache eps per realism level, compose any (pix, sem) for free.

eps is linear in (lambda_pix, lambda_sem): eps = pix * eps_pix + sem * (eps_full - eps_pix). So per photo and
realism level the session caches z_L, eps_pix and eps_full, and a slider change costs only latent arithmetic and
a VAE decode (of the visible region first, if the caller asks). Only the branches a setting needs are computed:
(0, 0) needs none, (p, 0) only the pixel pass, (s, s) - including the default (1, 1) - only the full pass.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...api import Corners, ModelInfo, PhotoHolder, Region, RenderParams, check_photo
from ...cache import LRUCache, photo_hash
from ...control import Control
from ...hardware.budget import memory_budget, state_budget
from ...hardware.device import empty_cache, synchronize
from ...hardware.precision import DeviceTraits
from ...kernels.processing import (
    PROCESS_SIZE,
    channel_stats,
    color_fix,
    enlarged_size,
    model_input_of,
    pad_to_multiple,
    resize_rgb,
    to_numpy,
    to_tensor,
)
from ...kernels.tiling import Attempt, TileSettings, retry_on_oom, tiled_eps
from ...rect import Rect
from ...sd21.local_norm import LocalGroupNorm
from ...sd21.vae_tiling import (
    GroupStats,
    blend_stats,
    decode_overlap,
    tiled_vae,
    vae_attention_bytes_per_px,
    vae_state_bytes_per_px,
)
from ...stages import Stage
from ...timing import StageTimes
from .family import KIND
from .latent_strength import compose_latent
from .local import LocalDecode, mean_params
from .model import PisaModel

#: Output pixels decoded around a region so the wavelet colour fix (5 levels, dilation up to 16) sees its context.
WAVELET_MARGIN = 32
#: A region covering at least this share of the result is rendered whole (exact, and cached for the full render).
WHOLE_REGION_SHARE = 0.4


#: Both UNet branches run as one batch of two when the render may use this much memory (the UNet's activations
#: double; at a 96-latent-pixel tile that is about 1 GB more in fp16, 2 GB in fp32).
PAIR_MIN_BUDGET = 4 * 1024**3

#: Corner statistics kept (three corners per photo, scale, realism and prompt: a few photos' worth).
CORNER_STATS_KEPT = 24

#: (pix, sem) of the corner images: base = decode(z_L), pix = decode(z_L - eps_pix), full = decode(z_L - eps_full).
CORNER_POINTS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))


Sample = list[tuple[Rect, np.ndarray]]  # decoded tile cores and where they lie in the result


def sampled_output_stats(
    sample: Sample, ref: np.ndarray, ref_stats: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The whole decoded result's per-channel mean and std, estimated from a spread sample of decoded tile cores:
    the result follows its model input (the bicubic upscale) up to added detail, so the sample's offset from the
    input (mean) and its contrast ratio to it (std) carry over to the whole, whose input statistics are known.
    Measured on a 1024 x 768 result: a visible-region AdaIN with the region's own statistics was 36 levels off the
    whole render; with these, within a level or two."""
    outs = np.concatenate([o.reshape(-1, o.shape[-1]) for _, o in sample]).astype(np.float64)
    refs = np.concatenate([ref[where.slices].reshape(-1, ref.shape[-1]) for where, _ in sample])
    refs = refs.astype(np.float64)
    mean = ref_stats[0] + outs.mean(axis=0) - refs.mean(axis=0)
    std = ref_stats[1] * outs.std(axis=0) / np.maximum(refs.std(axis=0), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


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

    def __init__(
        self,
        model: PisaModel,
        *,
        cache_mb: int = 1024,
        tiles: TileSettings | None = None,
        process_size: int = PROCESS_SIZE,
    ) -> None:
        self.model = model
        #: Photos with a side under process_size // scale run enlarged, as the reference script's ``process_size``.
        self.process_size = process_size
        if tiles is None:  # the VAE decoder dominates the working memory: size for its dtype
            itemsize = torch.finfo(model.vae_dtype).bits // 8
            tiles = TileSettings.for_budget(memory_budget(model.device), itemsize)
        self.tiles = tiles
        self.cache = LRUCache(cache_mb * 1024 * 1024)
        #: Bytes the VAE's lockstep tiles may keep alive between GroupNorms (beyond it, a whole image takes the
        #: statistics of a downsampled copy, a region those of a sample of tiles); None: what the device has free
        #: at each render (:meth:`current_state_budget`), since a batch or another program may have taken some.
        self.state_budget: int | None = None
        #: Every tiled pass tried since the caller last cleared it (an out-of-memory retry adds one), in order.
        self.attempts: list[Attempt] = []
        timesteps = tuple(model.ckpt.timesteps)
        self.info = ModelInfo(
            name=model.name,
            kind=KIND,
            device=str(model.device),
            dtype=model.dtype_name,
            supports_realism=True,
            supports_prompt=True,
            trained_timesteps=timesteps,
        )
        self._rgb: np.ndarray | None = None
        self._hash = ""
        #: The decoder's GroupNorm statistics of the corner renders (a few numbers each), for region renders.
        self._corner_stats: dict[tuple[object, ...], GroupStats] = {}
        self.unet_passes = 0  # tile passes actually run (a paired pass counts two), for tests and benchmarks
        #: Run eps_pix and eps_full as one batch when both are needed (see :meth:`PisaModel.eps_pair`).
        # Not on the CPU: there the pair measured no faster than two passes (it is compute-bound), and a branch
        # computed in a batch of two differs from one computed alone in the last float bits, so the result of a
        # setting would depend on which branch an earlier render had cached (one 8-bit level here and there).
        self.pair_branches = (
            model.can_pair and model.device.type != "cpu" and memory_budget(model.device) >= PAIR_MIN_BUDGET
        )
        #: Wall time per stage of the work done since the last :meth:`StageTimes.reset` (the caller resets).
        self.timings = StageTimes()
        #: Local strengths (a render with maps): their branches, GroupNorm statistics and colour fix.
        self.local = LocalDecode(self)

    def current_state_budget(self) -> int:
        """The lockstep's state budget for a pass starting now (see :func:`~..hardware.budget.state_budget`)."""
        if self.state_budget is not None:
            return self.state_budget
        itemsize = torch.finfo(self.model.vae_dtype).bits // 8
        return state_budget(self.model.device, tiles=self.tiles, itemsize=itemsize)

    def _timed(self, stage: Stage):  # type: ignore[no-untyped-def]
        return self.timings.stage(stage, sync=lambda: synchronize(self.model.device))

    # -- photo ------------------------------------------------------------------------------------------------------
    def set_photo(self, rgb: np.ndarray) -> None:
        self._rgb = check_photo(rgb)
        self._hash = photo_hash(self._rgb)
        # The corner statistics are keyed by photo: a batch borrowing this session between two renders of the
        # editor's photo must not cost the editor's previews their tone. Kept for the last few photos (a few
        # numbers per GroupNorm each).
        while len(self._corner_stats) > CORNER_STATS_KEPT:
            self._corner_stats.pop(next(iter(self._corner_stats)))

    def _key(self, *parts: object) -> tuple[object, ...]:
        return (self._hash, self.model.model_id, self.tiles.key(), *parts)

    def enlarged(self, scale: int) -> bool:
        """Whether this photo is too small for the model at ``scale`` and runs enlarged, as the reference does."""
        h, w = self.photo.shape[:2]
        return enlarged_size(w, h, scale, self.process_size) is not None

    def model_input(self, scale: int) -> np.ndarray:
        """What the VAE encodes and the colour fix matches: the bicubic upscale of the photo, or for a photo whose
        short side is under 512 / scale, of the photo first enlarged (Pillow bicubic) to a short side of
        512 // scale, exactly as the reference script does. The result is resized back to scale x the photo."""
        if not self.enlarged(scale):
            return self.bicubic(scale)
        key = self._key("input", scale)
        cached = self.cache.get(key)
        if cached is None:
            cached = model_input_of(self.photo, scale, self.process_size)
            self.cache.put(key, cached)
        return cached  # type: ignore[return-value]

    def prime_model_input(self, scale: int, rgb: np.ndarray) -> None:
        """Hand over :func:`model_input_of` of the current photo, computed elsewhere
        (e.g. by the CLI while the model loaded), so the render does not compute it again."""
        w, h = self.output_size(scale) if not self.enlarged(scale) else (0, 0)
        if not self.enlarged(scale) and rgb.shape[:2] != (h, w):
            raise ValueError(f"a x{scale} model input of this photo is {w} x {h}, not {rgb.shape[1]} x {rgb.shape[0]}")
        self.cache.put(self._key("input" if self.enlarged(scale) else "bicubic", scale), rgb)

    def _work_size(self, scale: int) -> tuple[int, int]:
        """(width, height) the network works at: the output size, or the enlarged one for small photos."""
        x = self.model_input(scale)
        return x.shape[1], x.shape[0]

    # -- cached latents ------------------------------------------------------------------------------------------
    def latent(self, scale: int, control: Control | None = None) -> torch.Tensor:
        """z_L of the padded bicubic input."""
        key = self._key("z", scale)
        z = self.cache.get(key)
        if z is not None:
            return z  # type: ignore[return-value]
        x, _ = pad_to_multiple(to_tensor(self.model_input(scale)), self.model.vae_scale)
        x = x.to(self.model.device, self.model.vae_dtype)
        f = self.model.vae_scale

        def run(attempt: Attempt) -> torch.Tensor:
            tile = attempt.tile
            return tiled_vae(
                self.model.encode, self.model.vae.encoder, x, factor=1 / f, tile=tile * f,
                overlap=min(self.tiles.vae_overlap, tile // 2) * f, align=f, control=control, stage=Stage.ENCODE,
                state_bytes_per_px=self._state_bytes_per_px(), state_budget=attempt.state_budget,
            )  # fmt: skip

        with self._timed(Stage.ENCODE):
            first = Attempt(self.tiles.vae_tile, self.current_state_budget(), stage=Stage.ENCODE)
            with self.model.vae_precision():
                z = retry_on_oom(run, first, self.model.device, tried=self.attempts)
        self.cache.put(key, z)
        return z

    def prepare(self, scale: int, control: Control | None = None) -> None:
        """Encode the current photo for ``scale`` ahead of any render (the GUI calls it from its worker as soon as a
        photo is opened): the first render then starts at the UNet. Cached like every latent; cancellable."""
        self.latent(scale, control)

    def eps(self, params: RenderParams, branch: str, control: Control | None = None) -> torch.Tensor:
        """eps_pix (``branch='pix'``) or eps_full (``'full'``) at the params' realism level, prompt and scale."""
        key = self._key("eps", params.scale, params.realism, params.prompt.strip(), branch)
        eps = self.cache.get(key)
        if eps is not None:
            return eps  # type: ignore[return-value]
        z = self.latent(params.scale, control)
        cond = self.model.prompts.get(params.prompt)

        def unet(zt: torch.Tensor) -> torch.Tensor:
            self.unet_passes += 1
            return self.model.eps(zt, params.realism, cond, branch)

        def run(attempt: Attempt) -> torch.Tensor:
            return tiled_eps(
                unet, z, attempt.tile, min(self.tiles.unet_overlap, attempt.tile // 2), control=control,
                stage=Stage.unet(branch),
            )  # fmt: skip

        with self._timed(Stage.unet(branch)):
            first = Attempt(self.tiles.unet_tile, stage=Stage.unet(branch))
            eps = retry_on_oom(run, first, self.model.device, tried=self.attempts)
        self.cache.put(key, eps)
        return eps

    def _eps_pair(self, params: RenderParams, control: Control | None) -> dict[str, torch.Tensor]:
        """Compute and cache eps_pix and eps_full in one batched pass per tile; returns both by branch."""
        z = self.latent(params.scale, control)
        cond = self.model.prompts.get(params.prompt)

        def unet(zt: torch.Tensor) -> torch.Tensor:
            self.unet_passes += 2
            return self.model.eps_pair(zt, params.realism, cond)

        def run(attempt: Attempt) -> torch.Tensor:
            return tiled_eps(
                unet, z, attempt.tile, min(self.tiles.unet_overlap, attempt.tile // 2), control=control,
                stage=Stage.UNET_PAIR,
            )  # fmt: skip

        with self._timed(Stage.UNET_PAIR):
            first = Attempt(self.tiles.unet_tile, stage=Stage.UNET_PAIR)
            both = retry_on_oom(run, first, self.model.device, tried=self.attempts)
        pair = {branch: both[i : i + 1].clone() for i, branch in enumerate(("pix", "full"))}
        for branch, eps in pair.items():
            self.cache.put(self._key("eps", params.scale, params.realism, params.prompt.strip(), branch), eps)
        return pair

    def is_cached(self, params: RenderParams) -> bool:
        if self._key("z", params.scale) not in self.cache:
            return False
        return all(
            self._key("eps", params.scale, params.realism, params.prompt.strip(), b) in self.cache
            for b in (needed_branches(params.pix, params.sem) if params.maps is None else self.local.branches(params))
        )

    def latent_result(self, params: RenderParams, control: Control | None = None) -> torch.Tensor:
        """z_H = z_L - (pix * eps_pix + sem * (eps_full - eps_pix)), computing only the branches needed."""
        z = self.latent(params.scale, control)
        branches = needed_branches(params.pix, params.sem) if params.maps is None else self.local.branches(params)
        eps: dict[str, torch.Tensor] = {}
        if (
            self.pair_branches
            and len(branches) == 2
            and not any(
                self._key("eps", params.scale, params.realism, params.prompt.strip(), b) in self.cache for b in branches
            )
        ):
            eps = self._eps_pair(params, control)  # used directly: a cache too small to keep them must not recompute
        if params.maps is not None:  # local strengths: the same arithmetic per latent pixel (latent_strength.py)
            return compose_latent(z, params, lambda b: eps[b] if b in eps else self.eps(params, b, control))
        out = z.to(torch.float32).clone()
        if "full" in branches:
            e_full = eps["full"] if "full" in eps else self.eps(params, "full", control)
            out -= params.sem * e_full.to(torch.float32)
        if "pix" in branches:
            e_pix = eps["pix"] if "pix" in eps else self.eps(params, "pix", control)
            out -= (params.pix - params.sem) * e_pix.to(torch.float32)
        return out.to(z.dtype)

    # -- decoding ------------------------------------------------------------------------------------------------
    def _state_bytes_per_px(self) -> float:
        return vae_state_bytes_per_px(self.model.vae, self.model.vae_dtype)

    def _attention_bytes_per_px(self) -> float:
        return vae_attention_bytes_per_px(self.model.vae, self.model.vae_dtype)

    def _decode(
        self,
        zh: torch.Tensor,
        scale: int,
        region: Region | None,
        control: Control | None,
        *,
        stats: GroupStats | None = None,
        record: GroupStats | None = None,
        sample: Sample | None = None,
        local: LocalGroupNorm | None = None,
    ) -> np.ndarray:
        """Decode z_H (the whole work-size image, or the output ``region`` of it) to H x W x 3 in [0, 1], with the
        given GroupNorm ``stats`` if any; ``record`` receives the statistics a tiled decode used, ``sample`` the
        decoded cores of the tiles a region's statistics were sampled from, with where they lie."""
        f = self.model.vae_scale
        w, h = self._work_size(scale)
        out = Rect(*region) if region is not None else Rect.whole(w, h)
        if out.empty or not Rect.whole(w, h).contains(out):
            raise ValueError(f"region {tuple(out)} is outside the {w} x {h} result")
        lat = out.outer(f).clipped(zh.shape[-1], zh.shape[-2])  # the latent pixels the region needs
        lat_region = None if region is None else lat
        if local is not None and stats is None:
            stats = local.mean_stats()  # where the local statistics decline a module

        cores: list[tuple[Rect, torch.Tensor]] = []

        def run(attempt: Attempt) -> torch.Tensor:
            cores.clear()  # an out-of-memory retry starts the sample again
            tile = attempt.tile
            return tiled_vae(
                self.model.decode, self.model.vae.decoder, zh, factor=f, tile=tile,
                overlap=decode_overlap(tile, self.tiles.vae_overlap), region=lat_region,
                state_bytes_per_px=self._state_bytes_per_px(), state_budget=attempt.state_budget,
                attention_bytes_per_px=self._attention_bytes_per_px(),
                stats=stats, record=record, local=local, sample_out=cores if sample is not None else None,
                control=control, stage=Stage.DECODE,
            )  # fmt: skip

        with self._timed(Stage.DECODE):
            first = Attempt(self.tiles.vae_tile, self.current_state_budget(), stage=Stage.DECODE)
            with self.model.vae_precision():
                y = to_numpy(retry_on_oom(run, first, self.model.device, tried=self.attempts))
        if sample is not None:
            sample.extend((where, to_numpy(out)) for where, out in cores)
        ox, oy = (lat.x0 * f, lat.y0 * f) if region is not None else (0, 0)
        return y[out.shifted(-ox, -oy).slices]

    def region_is_exact(self, params: RenderParams, region: Region) -> bool:
        """Whether :meth:`render` of this region is exactly the crop of the full render: it is when the full
        result is cached, or when the region is rendered whole (small photos, one VAE tile, a large share)."""
        if self._key("img", params) in self.cache:
            return True
        return self._render_whole(params.scale, region)

    def _render_whole(self, scale: int, region: Region) -> bool:
        if self.enlarged(scale):
            return True
        w, h = self.output_size(scale)
        tile_px = self.tiles.vae_tile * self.model.vae_scale
        if w <= tile_px and h <= tile_px:
            return True
        return Rect(*region).area >= WHOLE_REGION_SHARE * w * h

    def _raw_key(self, params: RenderParams, pix: float, sem: float) -> tuple[object, ...]:
        return self._key("raw", params.scale, params.realism, params.prompt.strip(), pix, sem)

    def _output_stats(self, params: RenderParams) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-channel mean and std of the whole decoded result before the colour fix, as the blend of the cached
        corner images (the instant preview of these params) has them; None when the corners were not rendered.

        The blend is a + p (b - a) + s (c - b) per pixel, so its mean and variance follow exactly from the corners'
        means and 3 x 3 covariance per channel, which are computed once and kept (a few numbers)."""
        key = self._key("corner-stats", params.scale, params.realism, params.prompt.strip())
        stats = self.cache.get(key)
        if stats is None:
            imgs = [self.cache.get(self._raw_key(params, p, s)) for p, s in CORNER_POINTS]
            if any(i is None for i in imgs):
                return None
            flat = np.stack([np.asarray(i, dtype=np.float64).reshape(-1, 3) for i in imgs])  # 3 x N x C
            means = flat.mean(axis=1)  # 3 x C
            centred = flat - means[:, None, :]
            cov = np.einsum("inc,jnc->cij", centred, centred) / flat.shape[1]  # C x 3 x 3
            stats = np.concatenate([means.T[:, None, :], cov], axis=1)  # C x 4 x 3: one array for the cache
            self.cache.put(key, stats)
        means, cov = stats[:, 0, :].T, stats[:, 1:, :]
        a = np.array([1.0 - params.pix, params.pix - params.sem, params.sem])
        mean = a @ means
        var = np.einsum("i,cij,j->c", a, cov, a)
        return mean.astype(np.float32), np.sqrt(np.maximum(var, 0.0)).astype(np.float32)

    def render(
        self,
        params: RenderParams,
        *,
        region: Region | None = None,
        control: Control | None = None,
    ) -> np.ndarray:
        if control:
            control.check()
        region = Rect(*region) if region is not None else None  # a caller's plain (x0, y0, x1, y1) tuple too
        full_key = self._key("img", params)
        full = self.cache.get(full_key)
        if full is None and region is not None and self._render_whole(params.scale, region):
            full = self.render(params, control=control)
        if full is not None:  # read-only (see below): no full-size copy for a result seen before
            if region is None:
                return full  # type: ignore[return-value]
            return full[region.slices]  # type: ignore[index]
        self.check_fits(params.scale)
        zh = self.latent_result(params, control)
        if region is None:
            corner = params.maps is None and (params.pix, params.sem) in CORNER_POINTS
            record: GroupStats = {}
            local = self.local.norm(params, zh, control)
            with self.local.recording(zh, record if corner else None):
                raw = self._decode(zh, params.scale, None, control, record=record if corner else None, local=local)
            if corner:  # later region renders take their tone from the corners (see _render_region)
                self.cache.put(self._raw_key(params, params.pix, params.sem), raw)
                if record:
                    self._corner_stats[self._raw_key(params, params.pix, params.sem)] = record
            with self._timed(Stage.COLOUR_FIX):
                y = self.local.color_fix(params, raw)
                if y is None:
                    y = color_fix(raw, self.model_input(params.scale), params.color_fix)
                if self.enlarged(params.scale):
                    y = np.clip(resize_rgb(y, self.output_size(params.scale)), 0.0, 1.0)
            # Results are large (12 bytes a pixel): the caller gets the cached array itself, made read-only so a
            # caller that wants to change it must copy, and the cache can never be corrupted by one that forgets.
            y.flags.writeable = False
            self.cache.put(full_key, y)
            return y
        return self._render_region(params, zh, region, control)

    def _render_region(
        self,
        params: RenderParams,
        zh: torch.Tensor,
        region: Region,
        control: Control | None,
    ) -> np.ndarray:
        """A window of a photo too large to render whole first. For settings between the corners once those are
        rendered (the GUI's instant previews), the decoder's GroupNorm statistics are blended from theirs and the
        colour fix matches the whole result's statistics, blended likewise; otherwise both come from a spread sample
        of tiles (see :mod:`.vae_tiling` and :func:`sampled_output_stats`). The wavelet fix sees a margin. Each
        tile's attention sees the tile."""
        w, h = self.output_size(params.scale)
        m = WAVELET_MARGIN if params.color_fix == "wavelet" else 0
        ext = region.grown(m).clipped(w, h)  # what is decoded and colour-fixed: the region and the wavelet's margin
        corners = [self._corner_stats.get(self._raw_key(params, p, s)) for p, s in CORNER_POINTS]
        stats = None
        mean = mean_params(params, zh)  # with local strengths: their means (what blends globally)
        weights = (1.0 - mean.pix, mean.pix - mean.sem, mean.sem)
        # Between the corners (no negative weight) their blend is as close as a fresh sample (measured: 1.6 vs 1.5
        # levels mean error) at no cost; outside it extrapolates the variances (4.8 vs 1.3 levels): sample then.
        if all(c is not None for c in corners) and min(weights) >= 0.0:
            stats = blend_stats(corners, weights)  # type: ignore[arg-type]
        local = self.local.norm(params, zh, control, compute=False)  # only once the corners are at hand
        sample: Sample = []
        y = self._decode(zh, params.scale, ext, control, stats=stats, local=local, sample=sample)
        ref = self.model_input(params.scale)
        local_fix = self.local.color_fix(params, y, ext)
        if local_fix is not None:
            y = local_fix
        elif params.color_fix == "adain":
            ref_stats = channel_stats(ref)
            out_stats = self._output_stats(mean) if stats is not None else None
            if out_stats is None and sample:  # the window itself, decoded anyway, adds to the sample
                out_stats = sampled_output_stats([*sample, (ext, y)], ref, ref_stats)
            y = color_fix(y, ref[ext.slices], "adain", ref_stats=ref_stats, out_stats=out_stats)
        else:
            y = color_fix(y, ref[ext.slices], params.color_fix)
        return y[region.shifted(-ext.x0, -ext.y0).slices]

    def corners(self, params: RenderParams, *, control: Control | None = None) -> Corners:
        imgs = [self.render(params.with_(pix=p, sem=s, maps=None), control=control) for p, s in CORNER_POINTS]
        return Corners(base=imgs[0], pix=imgs[1], full=imgs[2])

    def detail_map(self, params: RenderParams, *, control: Control | None = None) -> np.ndarray:
        """|eps_full - eps_pix| summed over channels, upsampled to the output and scaled by its 99th percentile."""
        diff = (self.eps(params, "full", control) - self.eps(params, "pix", control)).abs()
        d = diff.to(torch.float32).sum(dim=1, keepdim=True)
        f = self.model.vae_scale
        ww, wh = self._work_size(params.scale)
        d = F.interpolate(d, scale_factor=f, mode="bilinear", align_corners=False)[0, 0, :wh, :ww].cpu().numpy()
        w, h = self.output_size(params.scale)
        if (ww, wh) != (w, h):  # a small photo ran enlarged
            d = resize_rgb(d[..., None], (w, h))[..., 0]
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
    emulate: DeviceTraits | None = None,
) -> PisaSession:
    """``emulate``: run in the precision the engine picks for that device (see :class:`PisaModel`)."""
    model = PisaModel(base_dir, lora, device=device, dtype=dtype, emulate=emulate)
    return PisaSession(model, cache_mb=cache_mb, tiles=tiles)
