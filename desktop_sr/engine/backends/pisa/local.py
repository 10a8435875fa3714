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


#: Largest step between the anchor strengths of a map that varies one strength (see :func:`anchors`).
ANCHOR_STEP = 0.5
#: A map's end this close to a multiple of :data:`ANCHOR_STEP` takes that multiple as its anchor (see
#: :func:`anchor_levels`): a mask saved in 16 bits reads 1.0 back as 1.0000153.
ANCHOR_SNAP = 0.01


def anchor_levels(lo: float, hi: float) -> np.ndarray:
    """The strengths of the plain renders a map from ``lo`` to ``hi`` blends: both ends and the multiples of
    :data:`ANCHOR_STEP` between them, ascending.

    Fixed multiples rather than even steps from ``lo`` to ``hi``: with even steps, a map that reads back from its
    16-bit file at 0 and 1.0000153 (x 1.5) took five anchors instead of four, so its transition blended other
    renders than the map painted in the editor, 5 levels apart at the seam. With the multiples, a region painted to
    a strength normalises the same whatever else the map holds, and an end within :data:`ANCHOR_SNAP` of a
    multiple is that multiple (no near-duplicate decode)."""
    ends = [snapped(float(lo)), snapped(float(hi))]
    grid = np.arange(math.floor(ends[0] / ANCHOR_STEP) + 1, math.ceil(ends[1] / ANCHOR_STEP)) * ANCHOR_STEP
    return np.unique(np.array([ends[0], *grid[(grid > ends[0]) & (grid < ends[1])], ends[1]], np.float64))


def snapped(v: float) -> float:
    """``v``, or the multiple of :data:`ANCHOR_STEP` within :data:`ANCHOR_SNAP` of it."""
    near = round(v / ANCHOR_STEP) * ANCHOR_STEP
    return near if abs(v - near) <= ANCHOR_SNAP else v


def varying(p: np.ndarray, s: np.ndarray) -> bool:
    return bool(np.ptp(p) > 0 or np.ptp(s) > 0)


def anchors(p: np.ndarray, s: np.ndarray) -> tuple[list[tuple[float, float]], np.ndarray]:
    """The (pix, sem) of the plain renders whose GroupNorm statistics a decode with local strengths (P, S) blends,
    and their weights (K x h x w, non-negative, summing to 1 at every latent pixel).

    A map that varies one strength (the usual painting: more or less detail, the other strength uniform) takes
    anchors along that strength (:func:`anchor_levels`: its ends and the multiples of :data:`ANCHOR_STEP` between)
    and interpolates linearly between neighbours: a region painted to a strength that is an anchor (both ends of
    the map always are) normalises exactly as the plain render at that strength. The corners
    (base, pix, full) extrapolate beyond them: with a 0.5 / 1.5 semantic map, the weights (1 - P, P - S, S) are
    (0, -0.5, 1.5), and the 1.5 half came out 5.3 levels from the plain render at 1.5 (trained test VAE); with
    anchors at 0.5 and 1.5, each half normalises as its own render. Cost: one decode per anchor that is not a
    corner, once per map range (kept like the corners'). Maps varying both strengths blend the corners."""
    for values, fixed, along_sem in ((s, p, True), (p, s, False)):
        if np.ptp(fixed) > 0 or np.ptp(values) == 0:
            continue
        lo, hi = float(values.min()), float(values.max())
        levels = anchor_levels(lo, hi)
        other = float(fixed.flat[0])
        points = [(other, float(v)) if along_sem else (float(v), other) for v in levels]
        # hat functions on the levels: linear interpolation between the two neighbours of each value
        pos = np.interp(values, levels, np.arange(len(levels), dtype=np.float64))
        weights = np.clip(1.0 - np.abs(pos[None] - np.arange(len(levels))[:, None, None]), 0.0, None)
        return points, weights
    return list(CORNERS), corner_weights(p, s)


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
        """GroupNorm statistics that follow varying local strengths, blended from those of plain decodes at anchor
        strengths (:func:`anchors`): decoded now where missing (and kept, the corners for the instant preview too)
        unless not ``compute``. None for uniform strengths: the plain decode is then the scalar render's, bit for
        bit."""
        if params.maps is None:
            return None
        p, s = latent_strengths(params, zh)
        if not varying(p, s):
            return None
        session = self.session
        points, weights = anchors(p, s)
        if not compute and any(session._raw_key(params, *pt) not in session._corner_stats for pt in points):
            points, weights = list(CORNERS), corner_weights(p, s)  # a preview before the anchors: the corners' blend
        stats: dict[tuple[float, float], GroupStats] = {}
        for cp, cs in (*CORNERS, *points):  # the corners always: the local colour fix blends their images
            key = session._raw_key(params, cp, cs)
            if key not in session._corner_stats:
                if not compute:
                    return None
                zc = session.latent_result(params.with_(pix=cp, sem=cs, maps=None), control)
                record: GroupStats = {}
                with self.recording(zc, record):
                    session.cache.put(key, session._decode(zc, params.scale, None, control, record=record))
                session._corner_stats[key] = record
            stats[cp, cs] = session._corner_stats[key]
        return LocalGroupNorm([stats[pt] for pt in points], weights)

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
