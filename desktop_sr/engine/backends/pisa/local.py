"""The PiSA-SR session's part for local strengths (issue 19): which branches a map needs, the decode whose GroupNorm
statistics follow the map, and the AdaIN colour fix place by place (see :mod:`.strength_map`, :mod:`.local_norm`).

:class:`LocalDecode` is a collaborator of :class:`~desktop_sr.engine.backends.pisa.session.PisaSession`
(``session.local``), kept apart so the session reads as the scalar pipeline with a few calls out. Everything here
reuses the session's caches: the eps of both branches, the corner decodes and their GroupNorm statistics (recorded
while the corners were decoded), the corner images' moments. What it uses of the session is :class:`SessionParts`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Protocol

import numpy as np
import torch

from ...api import Region, RenderParams
from ...cache import LRUCache
from ...control import Control
from ...kernels.processing import channel_stats
from ...kernels.tiling import TileSettings
from ...sd21.local_norm import LocalGroupNorm, corner_weights, recording_group_norms
from ...sd21.vae_tiling import GroupStats
from ...strength_map import local_adain
from .latent_strength import branches_for, latent_strengths
from .model import PisaModel

#: (pix, sem) of the corner images (the same as session.CORNER_POINTS: the session imports this module, so the
#: constant is repeated here rather than imported back).
CORNERS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))


def varying(p: np.ndarray, s: np.ndarray) -> bool:
    return bool(np.ptp(p) > 0 or np.ptp(s) > 0)


def mean_params(params: RenderParams, zh: torch.Tensor) -> RenderParams:
    """The scalar strengths a render with maps has on average (exact for uniform maps): for what can only be
    blended globally, the decoder's statistics of a window and its colour fix without the corner images."""
    if params.maps is None:
        return params
    p, s = latent_strengths(params, zh)
    return params.with_(pix=float(p.mean()), sem=float(s.mean()), maps=None)


class SessionParts(Protocol):
    """What :class:`LocalDecode` uses of the PiSA-SR session: its model and tiling, its cache and cache keys, the
    corner decodes' GroupNorm statistics, and its latent, decode, output-statistics and model-input steps."""

    model: PisaModel
    tiles: TileSettings
    cache: LRUCache
    _corner_stats: dict[tuple[object, ...], GroupStats]

    def _work_size(self, scale: int) -> tuple[int, int]: ...
    def _key(self, *parts: object) -> tuple[object, ...]: ...
    def _raw_key(self, params: RenderParams, pix: float, sem: float) -> tuple[object, ...]: ...
    def latent(self, scale: int, control: Control | None = None) -> torch.Tensor: ...
    def latent_result(self, params: RenderParams, control: Control | None = None) -> torch.Tensor: ...
    def _output_stats(self, params: RenderParams) -> tuple[np.ndarray, np.ndarray] | None: ...
    def model_input(self, scale: int) -> np.ndarray: ...
    def _decode(
        self,
        zh: torch.Tensor,
        scale: int,
        region: Region | None,
        control: Control | None,
        *,
        record: GroupStats | None = None,
    ) -> np.ndarray: ...


class LocalDecode:
    """Local strengths in the session's decode: the branches a map needs, GroupNorm statistics and colour fix that
    follow it.

    It holds no state of its own and reads everything through ``session`` at call time: the corner statistics and
    the cache are the session's (a cache may be shared by sessions, and replaced), so nothing here can go stale.
    """

    def __init__(self, session: SessionParts) -> None:
        self.session = session

    def branches(self, params: RenderParams) -> tuple[str, ...]:
        """The UNet branches a render with maps depends on (which the map's values over the latent grid need)."""
        s = self.session
        w, h = s._work_size(params.scale)
        f = s.model.vae_scale
        return branches_for(params, math.ceil(w / f), math.ceil(h / f))

    def recording(self, zh: torch.Tensor, record: GroupStats | None) -> contextlib.AbstractContextManager[object]:
        """An untiled decode notes a corner's GroupNorm statistics on the way (a tiled one records them itself)."""
        s = self.session
        tile = s.tiles.vae_tile
        if record is None or zh.shape[-1] > tile or zh.shape[-2] > tile:
            return contextlib.nullcontext()
        return recording_group_norms(s.model.vae.decoder, record)

    def norm(
        self, params: RenderParams, zh: torch.Tensor, control: Control | None, *, compute: bool = True
    ) -> LocalGroupNorm | None:
        """GroupNorm statistics that follow varying local strengths, from the corner decodes' statistics: decoded
        now where missing (and kept for the instant preview) unless not ``compute``. None for uniform strengths:
        the plain decode is then the scalar render's, bit for bit."""
        if params.maps is None:
            return None
        p, s = latent_strengths(params, zh)
        if not varying(p, s):
            return None
        session = self.session
        corners = []
        for cp, cs in CORNERS:
            key = session._raw_key(params, cp, cs)
            if key not in session._corner_stats:
                if not compute:
                    return None
                zc = session.latent_result(params.with_(pix=cp, sem=cs, maps=None), control)
                record: GroupStats = {}
                with self.recording(zc, record):
                    session.cache.put(key, session._decode(zc, params.scale, None, control, record=record))
                session._corner_stats[key] = record
            corners.append(session._corner_stats[key])
        return LocalGroupNorm(corners, corner_weights(p, s))

    def color_fix(self, params: RenderParams, y: np.ndarray, region: Region | None = None) -> np.ndarray | None:
        """AdaIN place by place for varying local strengths (the whole work-size result, or a window of it); None
        when the global fix is the right one (other fixes, no map, uniform maps) or the corners are not at hand."""
        if params.maps is None or params.color_fix != "adain":
            return None
        session = self.session
        p, s = latent_strengths(params, session.latent(params.scale))
        if not varying(p, s) or session._output_stats(params.with_(maps=None)) is None:
            return None
        moments = session.cache.get(session._key("corner-stats", params.scale, params.realism, params.prompt.strip()))
        ref = channel_stats(session.model_input(params.scale))
        return local_adain(y, ref, moments, params, size=session._work_size(params.scale), region=region)  # type: ignore[arg-type]
