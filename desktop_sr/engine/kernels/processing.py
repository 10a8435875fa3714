"""Pre- and post-processing around the networks: bicubic upscale, padding, colour fix, tensor <-> numpy.

The bicubic upscale uses Pillow on float32 planes, as the reference code resizes with Pillow (Keys a = -0.5),
without quantising to 8 bits. Padding reflects the border up to a multiple of the VAE factor and the result is
cropped back: never squeezed, so the output keeps the exact aspect ratio.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .small_photo import PROCESS_SIZE, enlarged_size


def resize_plane(plane: np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize one float32 H x W plane to (width, height)."""
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(img.resize(size, resample), dtype=np.float32)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize an H x W x C float image to (width, height), channel by channel, without quantising."""
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb.astype(np.float32, copy=True)
    planes = [resize_plane(rgb[..., c], size, resample) for c in range(rgb.shape[2])]
    return np.stack(planes, axis=-1)


def bicubic_upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """The model input and the 'before' image: bicubic to exactly ``scale`` times the size, clipped to [0, 1]."""
    h, w = rgb.shape[:2]
    out = resize_rgb(rgb, (w * scale, h * scale))
    return np.clip(out, 0.0, 1.0, out=out)


def model_input_of(rgb: np.ndarray, scale: int, process_size: int = PROCESS_SIZE) -> np.ndarray:
    """What PiSA-SR's VAE encodes for a ``scale`` render of ``rgb``: the bicubic upscale, or for a photo whose short
    side is under ``process_size // scale``, the bicubic upscale of the photo first enlarged (Pillow bicubic) to that
    short side, exactly as the reference script does. Needs no model, so it can run while the model loads."""
    h, w = rgb.shape[:2]
    size = enlarged_size(w, h, scale, process_size)
    if size is None:
        return bicubic_upscale(rgb, scale)
    return bicubic_upscale(np.clip(resize_rgb(rgb, size), 0.0, 1.0), scale)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 in [0, 1] -> 1 x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0) * 2.0 - 1.0


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> H x W x 3 float32 in [0, 1]."""
    y = ((x[0].detach().to(torch.float32).cpu() + 1.0) * 0.5).clamp_(0.0, 1.0)
    return np.ascontiguousarray(y.permute(1, 2, 0).numpy())


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right to a multiple; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


# -- colour fix -------------------------------------------------------------------------------------------------------
Stats = tuple[np.ndarray, np.ndarray]


def channel_stats(rgb: np.ndarray) -> Stats:
    """Per-channel mean and standard deviation of an H x W x C image (float64 sums)."""
    flat = rgb.reshape(-1, rgb.shape[-1])
    return flat.mean(axis=0, dtype=np.float64), flat.std(axis=0, dtype=np.float64)


def adain_fix(
    out: np.ndarray,
    ref: np.ndarray,
    eps: float = 1e-5,
    *,
    ref_stats: Stats | None = None,
    out_stats: Stats | None = None,
) -> np.ndarray:
    """Match each channel's mean and standard deviation of ``out`` to ``ref`` (both H x W x 3 in [0, 1]).

    A window of a larger image passes the whole image's statistics (``ref_stats``, ``out_stats``) so the window
    gets exactly the correction the whole image gets."""
    o_mean, o_std = out_stats if out_stats is not None else channel_stats(out)
    r_mean, r_std = ref_stats if ref_stats is not None else channel_stats(ref)
    fixed = np.subtract(out, o_mean, dtype=np.float32)  # one full-size buffer, worked in place: results are large
    fixed *= (r_std / (o_std + eps)).astype(np.float32)
    fixed += r_mean.astype(np.float32)
    return np.clip(fixed, 0.0, 1.0, out=fixed)


def _wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    kernel = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=x.dtype) / 16.0
    kernel = kernel.expand(x.shape[1], 1, 3, 3)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=radius)


def _wavelet_split(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    high = torch.zeros_like(x)
    for i in range(levels):
        low = _wavelet_blur(x, 2**i)
        high += x - low
        x = low
    return high, x


def wavelet_fix(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """High frequencies from the model output, low frequencies (colour, tone) from the bicubic input."""
    to = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).unsqueeze(0)
    tr = torch.from_numpy(np.ascontiguousarray(ref.transpose(2, 0, 1))).unsqueeze(0)
    high, _ = _wavelet_split(to)
    _, low = _wavelet_split(tr)
    fixed = (high + low)[0].clamp_(0, 1).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(fixed, dtype=np.float32)


def color_fix(
    out: np.ndarray, ref: np.ndarray, method: str, *, ref_stats: Stats | None = None, out_stats: Stats | None = None
) -> np.ndarray:
    if method == "adain":
        return adain_fix(out, ref, ref_stats=ref_stats, out_stats=out_stats)
    if method == "wavelet":
        return wavelet_fix(out, ref)
    if method == "none":
        return out
    raise ValueError(f"unknown colour fix {method!r}")
