"""What the pixel and semantic strengths mean for a feed-forward upscaler.

The network's correction to bicubic, ``d = model - bicubic``, is split by a Gaussian low-pass into
``low = G * d`` and ``high = d - low``; a result is ``bicubic + pix * low + sem * high``. So (1, 1) is the network's
output, (0, 0) is bicubic, and the plane is linear, like PiSA-SR's (pix, sem) plane, so the GUI's corner blend is
exact and a slider move is three array operations on cached arrays.

The low-pass has sigma = half an input pixel (``0.5 * scale`` output pixels). Its gain is 1/2 at about 3/4 of the
input's Nyquist frequency, so ``low`` is the correction the input's own pixel grid could carry (tone, edge
position and sharpness, denoising at the input's resolution: fidelity, the pixel strength) and ``high`` is the
detail finer than one input pixel, which the network can only invent from what it learned (texture, crisp
micro-edges: the semantic strength). The detail map shows ``|high|``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SIGMA_INPUT_PX = 0.5


def sigma_for(scale: int) -> float:
    return SIGMA_INPUT_PX * scale


def radius_for(scale: int) -> int:
    """Pixels of context the low-pass reads on each side (3 sigma)."""
    return math.ceil(3 * sigma_for(scale))


def gaussian_lowpass(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an H x W x C float32 image; the border is reflected (replicated when tiny)."""
    r = math.ceil(3 * sigma)
    if r == 0:
        return img.copy()
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    c = img.shape[2]
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    h, w = x.shape[-2:]
    mode = "reflect" if r < min(h, w) else "replicate"
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())


def split_bands(model: np.ndarray, bicubic: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) with low + high = model - bicubic."""
    d = model - bicubic
    low = gaussian_lowpass(d, sigma_for(scale))
    return low, d - low


def _gain(v: float | np.ndarray) -> np.float32 | np.ndarray:
    """A strength as a float32 factor: a scalar, or an H x W map (local strengths) broadcast over the channels."""
    if isinstance(v, np.ndarray) and v.ndim == 2:
        return np.asarray(v, dtype=np.float32)[..., None]
    return np.float32(v)


def compose(
    bicubic: np.ndarray, low: np.ndarray, high: np.ndarray, pix: float | np.ndarray, sem: float | np.ndarray
) -> np.ndarray:
    """bicubic + pix * low + sem * high, clipped to [0, 1]; ``pix``/``sem`` may be H x W maps of local strengths
    (:mod:`desktop_sr.engine.strength_map`), which scale the same bands pixel by pixel."""
    out = bicubic + _gain(pix) * low
    out += _gain(sem) * high
    return np.clip(out, 0.0, 1.0, out=out)


def detail_map(high: np.ndarray) -> np.ndarray:
    """|high| summed over channels, scaled so its 99th percentile is 1 (like the PiSA-SR session's map)."""
    d = np.abs(high).sum(axis=2)
    top = float(np.percentile(d, 99)) or 1.0
    return np.clip(d / top, 0.0, 1.0).astype(np.float32)
