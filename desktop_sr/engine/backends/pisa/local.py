"""The PiSA-SR session's part for local strengths (issue 19): which branches a map needs, the decode whose GroupNorm
statistics follow the map, and the AdaIN colour fix place by place (see :mod:`.strength_map`, :mod:`.local_norm`).

A mixin of :class:`~desktop_sr.engine.backends.pisa.session.PisaSession`, kept apart so the session reads as the scalar
pipeline with a few hooks. Everything here reuses the session's caches: the eps of both branches, the corner
decodes and their GroupNorm statistics (recorded while the corners were decoded), the corner images' moments.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...api import RenderParams
from ...control import Control
from ...kernels.processing import channel_stats
from ...sd21.local_norm import LocalGroupNorm, corner_weights, recording_group_norms
from ...sd21.vae_tiling import GroupStats
from ...strength_map import local_adain
from .latent_strength import branches_for, latent_strengths

if TYPE_CHECKING:
    from ...api import Region
    from .session import PisaSession

#: (pix, sem) of the corner images (the same as pisa_session.CORNER_POINTS; kept here to avoid an import cycle).
CORNERS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))


def varying(p: np.ndarray, s: np.ndarray) -> bool:
    return bool(np.ptp(p) > 0 or np.ptp(s) > 0)


class LocalStrengths:
    def _map_branches(self: PisaSession, params: RenderParams) -> tuple[str, ...]:  # type: ignore[misc]
        w, h = self._work_size(params.scale)
        f = self.model.vae_scale
        return branches_for(params, math.ceil(w / f), math.ceil(h / f))

    def _mean_params(self: PisaSession, params: RenderParams, zh: torch.Tensor) -> RenderParams:  # type: ignore[misc]
        """The scalar strengths a render with maps has on average (exact for uniform maps): for what can only be
        blended globally, the decoder's statistics of a window and its colour fix without the corner images."""
        if params.maps is None:
            return params
        p, s = latent_strengths(params, zh)
        return params.with_(pix=float(p.mean()), sem=float(s.mean()), maps=None)

    def _recording(  # type: ignore[misc]
        self: PisaSession, zh: torch.Tensor, record: GroupStats | None
    ) -> contextlib.AbstractContextManager[object]:
        """An untiled decode notes a corner's GroupNorm statistics on the way (a tiled one records them itself)."""
        tile = self.tiles.vae_tile
        if record is None or zh.shape[-1] > tile or zh.shape[-2] > tile:
            return contextlib.nullcontext()
        return recording_group_norms(self.model.vae.decoder, record)

    def _local_norm(  # type: ignore[misc]
        self: PisaSession, params: RenderParams, zh: torch.Tensor, control: Control | None, *, compute: bool = True
    ) -> LocalGroupNorm | None:
        """GroupNorm statistics that follow varying local strengths, from the corner decodes' statistics: decoded
        now where missing (and kept for the instant preview) unless not ``compute``. None for uniform strengths:
        the plain decode is then the scalar render's, bit for bit."""
        if params.maps is None:
            return None
        p, s = latent_strengths(params, zh)
        if not varying(p, s):
            return None
        corners = []
        for cp, cs in CORNERS:
            key = self._raw_key(params, cp, cs)
            if key not in self._corner_stats:
                if not compute:
                    return None
                zc = self.latent_result(params.with_(pix=cp, sem=cs, maps=None), control)
                record: GroupStats = {}
                with self._recording(zc, record):
                    self.cache.put(key, self._decode(zc, params.scale, None, control, record=record))
                self._corner_stats[key] = record
            corners.append(self._corner_stats[key])
        return LocalGroupNorm(corners, corner_weights(p, s))

    def _local_color_fix(  # type: ignore[misc]
        self: PisaSession, params: RenderParams, y: np.ndarray, region: Region | None = None
    ) -> np.ndarray | None:
        """AdaIN place by place for varying local strengths (the whole work-size result, or a window of it); None
        when the global fix is the right one (other fixes, no map, uniform maps) or the corners are not at hand."""
        if params.maps is None or params.color_fix != "adain":
            return None
        p, s = latent_strengths(params, self.latent(params.scale))
        if not varying(p, s) or self._output_stats(params.with_(maps=None)) is None:
            return None
        moments = self.cache.get(self._key("corner-stats", params.scale, params.realism, params.prompt.strip()))
        ref = channel_stats(self.model_input(params.scale))
        return local_adain(y, ref, moments, params, size=self._work_size(params.scale), region=region)  # type: ignore[arg-type]
