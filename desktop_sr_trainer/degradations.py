"""The Real-ESRGAN second-order degradation, written in plain torch (plus Pillow for JPEG), seeded per sample.

Real-world LQ photos are blurred, resized, noisy and JPEG-compressed, often twice (a photo of a screen, a re-shared
JPEG). Real-ESRGAN's pipeline synthesises that from a clean HR crop and PiSA-SR trains on it (with milder strengths
than Real-ESRGAN's own, see :class:`~desktop_sr_trainer.config.DegradationConfig`), so the adapters learn to undo
realistic damage rather than a plain bicubic downscale. Everything random is drawn from one
``torch.Generator`` per sample: the same seed gives the same LQ on any machine and after a resume.

Order (Real-ESRGAN ``feed_data``): blur(k1) -> random resize -> Gaussian/Poisson noise -> JPEG ->
[p=second_blur_prob] blur(k2) -> random resize -> noise -> {resize to HR/4 + final sinc, JPEG} in a random order ->
resize back to the HR size -> quantise to 8 bits. Kernels: isotropic/anisotropic Gaussian, generalised Gaussian,
plateau, and a circular low-pass (sinc) kernel. The LQ is resized back to the HR size because PiSA-SR's input is the
bicubic-upscaled LQ; quantising to 8 bits makes it look like a decoded photo, which is what the app is given.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .config import DegradationConfig

RESIZE_MODES = ("area", "bilinear", "bicubic")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


# -- random draws from one generator ------------------------------------------------------------------------------
def uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def chance(gen: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=gen, dtype=torch.float64)) < p


def choice(gen: torch.Generator, options: list | tuple, probs: list[float] | None = None):  # noqa: ANN201
    if probs is None:
        return options[int(torch.randint(len(options), (), generator=gen))]
    weights = torch.tensor(probs, dtype=torch.float64)
    return options[int(torch.multinomial(weights, 1, generator=gen))]


# -- blur kernels --------------------------------------------------------------------------------------------------
def mesh_grid(size: int) -> torch.Tensor:
    """(size, size, 2) pixel offsets from the kernel centre."""
    ax = torch.arange(-size // 2 + 1.0, size // 2 + 1.0, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def sigma_matrix(sig_x: float, sig_y: float, theta: float) -> torch.Tensor:
    """Covariance of a rotated 2-D Gaussian: U diag(sx^2, sy^2) U^T."""
    d = torch.diag(torch.tensor([sig_x**2, sig_y**2], dtype=torch.float64))
    c, s = math.cos(theta), math.sin(theta)
    u = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return u @ d @ u.T


def _quadratic(size: int, sig_x: float, sig_y: float, theta: float) -> torch.Tensor:
    """x^T Sigma^-1 x over the kernel grid."""
    grid = mesh_grid(size)
    inv = torch.linalg.inv(sigma_matrix(sig_x, sig_y, theta))
    return torch.einsum("hwi,ij,hwj->hw", grid, inv, grid)


def gaussian_kernel(size: int, sig_x: float, sig_y: float, theta: float) -> torch.Tensor:
    k = torch.exp(-0.5 * _quadratic(size, sig_x, sig_y, theta))
    return k / k.sum()


def generalized_gaussian_kernel(size: int, sig_x: float, sig_y: float, theta: float, beta: float) -> torch.Tensor:
    """exp(-0.5 (x^T S^-1 x)^beta): flatter top and sharper fall-off than a Gaussian for beta > 1."""
    k = torch.exp(-0.5 * torch.pow(_quadratic(size, sig_x, sig_y, theta), beta))
    return k / k.sum()


def plateau_kernel(size: int, sig_x: float, sig_y: float, theta: float, beta: float) -> torch.Tensor:
    """1 / ((x^T S^-1 x)^beta + 1): a flat plateau with heavy tails (out-of-focus like)."""
    k = 1.0 / (torch.pow(_quadratic(size, sig_x, sig_y, theta), beta) + 1.0)
    return k / k.sum()


def sinc_kernel(cutoff: float, size: int) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernel: the ringing and overshoot artefacts of real resamplers."""
    grid = mesh_grid(size)
    r = torch.sqrt((grid**2).sum(-1))
    centre = size // 2
    r_safe = torch.where(r == 0, torch.ones_like(r), r)
    k = cutoff * torch.special.bessel_j1(cutoff * r_safe) / (2 * math.pi * r_safe)
    k[centre, centre] = cutoff**2 / (4 * math.pi)
    return k / k.sum()


def _beta(gen: torch.Generator, beta_range: list[float]) -> float:
    """Real-ESRGAN draws beta below or above 1 with equal chance."""
    if chance(gen, 0.5):
        return uniform(gen, beta_range[0], 1.0)
    return uniform(gen, 1.0, beta_range[1])


def random_kernel(
    gen: torch.Generator,
    kernel_list: list[str],
    kernel_prob: list[float],
    kernel_range: list[int],
    sigma_range: list[float],
    betag_range: list[float],
    betap_range: list[float],
    sinc_prob: float,
) -> torch.Tensor:
    """One blur kernel of the first or second degradation (Real-ESRGAN ``random_mixed_kernels`` + sinc)."""
    size = int(choice(gen, kernel_range))
    if chance(gen, sinc_prob):
        cutoff = uniform(gen, math.pi / 3, math.pi) if size < 13 else uniform(gen, math.pi / 5, math.pi)
        return sinc_kernel(cutoff, size)
    kind = str(choice(gen, kernel_list, kernel_prob))
    sig_x = uniform(gen, *sigma_range)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sig_y, theta = sig_x, 0.0
    else:
        sig_y, theta = uniform(gen, *sigma_range), uniform(gen, -math.pi, math.pi)
    if kind in ("iso", "aniso"):
        return gaussian_kernel(size, sig_x, sig_y, theta)
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sig_x, sig_y, theta, _beta(gen, betag_range))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sig_x, sig_y, theta, _beta(gen, betap_range))
    raise ValueError(f"unknown kernel type {kind!r}")


def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (B, C, H, W) with one 2-D kernel, reflect-padded (replicate if the image is tiny)."""
    k = kernel.to(img.device, img.dtype)
    pad = k.shape[-1] // 2
    b, c, h, w = img.shape
    mode = "reflect" if pad < h and pad < w else "replicate"
    x = F.pad(img.reshape(b * c, 1, h, w), (pad, pad, pad, pad), mode=mode)
    return F.conv2d(x, k[None, None]).reshape(b, c, h, w)


# -- resize, noise, JPEG -------------------------------------------------------------------------------------------
def resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if mode == "area":
        return F.interpolate(img, size=size, mode="area")
    return F.interpolate(img, size=size, mode=mode, align_corners=False)


def add_gaussian_noise(img: torch.Tensor, sigma: float, gray: bool, gen: torch.Generator) -> torch.Tensor:
    """Additive white noise with std ``sigma`` (in 0..1 units); ``gray`` uses one noise plane for all channels."""
    b, c, h, w = img.shape
    noise = torch.randn((b, 1 if gray else c, h, w), generator=gen, dtype=torch.float32) * sigma
    return (img + noise.to(img.device, img.dtype)).clamp(0.0, 1.0)


def add_poisson_noise(img: torch.Tensor, scale: float, gray: bool, gen: torch.Generator) -> torch.Tensor:
    """Shot noise: Poisson counts at the image's own number of grey levels, scaled by ``scale``."""
    q = (img * 255.0).round().clamp(0, 255) / 255.0
    if gray:
        w = torch.tensor(GRAY_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
        q = (q * w).sum(dim=1, keepdim=True)
    levels = len(torch.unique((q * 255.0).round()))
    vals = 2 ** math.ceil(math.log2(max(levels, 2)))
    counts = torch.poisson((q * vals).to("cpu", torch.float64), generator=gen)
    noise = (counts / vals).to(img.device, img.dtype) - q
    return (img + noise * scale).clamp(0.0, 1.0)


def jpeg(img: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG-compress each image with Pillow (4:2:0, like most cameras and web pipelines)."""
    out = []
    q = int(round(min(max(quality, 1.0), 100.0)))
    for one in img:
        arr = (one.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=q)
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(dec).permute(2, 0, 1))
    return torch.stack(out).to(img.device, img.dtype)


# -- the pipeline --------------------------------------------------------------------------------------------------
class Degrader:
    """Makes an LQ image from an HR crop with the configured second-order pipeline (PiSA-SR's strengths by default)."""

    def __init__(self, cfg: DegradationConfig) -> None:
        self.cfg = cfg

    def _resize_scale(self, gen: torch.Generator, probs: list[float], rng: list[float]) -> float:
        kind = choice(gen, ("up", "down", "keep"), probs)
        if kind == "up":
            return uniform(gen, 1.0, rng[1])
        if kind == "down":
            return uniform(gen, rng[0], 1.0)
        return 1.0

    def _noise(self, out: torch.Tensor, gen: torch.Generator, second: bool) -> torch.Tensor:
        c = self.cfg
        p_gauss = c.gaussian_noise_prob2 if second else c.gaussian_noise_prob
        p_gray = c.gray_noise_prob2 if second else c.gray_noise_prob
        if chance(gen, p_gauss):
            sigma = uniform(gen, *(c.noise_range2 if second else c.noise_range)) / 255.0
            return add_gaussian_noise(out, sigma, chance(gen, p_gray), gen)
        scale = uniform(gen, *(c.poisson_scale_range2 if second else c.poisson_scale_range))
        return add_poisson_noise(out, scale, chance(gen, p_gray), gen)

    def kernels(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The three kernels of one sample (first blur, second blur, final sinc or None), drawn up front."""
        c = self.cfg
        k1 = random_kernel(gen, c.kernel_list, c.kernel_prob, c.kernel_range, c.blur_sigma, c.betag_range,
                           c.betap_range, c.sinc_prob)  # fmt: skip
        k2 = random_kernel(gen, c.kernel_list2, c.kernel_prob2, c.kernel_range, c.blur_sigma2, c.betag_range2,
                           c.betap_range2, c.sinc_prob2)  # fmt: skip
        final = None
        if chance(gen, c.final_sinc_prob):
            size = int(choice(gen, c.kernel_range))
            final = sinc_kernel(uniform(gen, math.pi / 3, math.pi), size)
        return k1, k2, final

    @torch.no_grad()
    def __call__(self, hr: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``hr``: (C, H, W) or (1, C, H, W) in [0, 1]. Returns the LQ at the HR size, quantised to 8 bits."""
        c = self.cfg
        squeeze = hr.ndim == 3
        x = hr[None] if squeeze else hr
        if x.shape[0] != 1:
            raise ValueError("degrade one image at a time: each sample has its own random draws")
        x = x.to(torch.float32)
        h, w = x.shape[-2:]
        sf = c.scale
        k1, k2, final = self.kernels(gen)
        # first degradation
        out = filter2d(x, k1)
        s = self._resize_scale(gen, c.resize_prob, c.resize_range)
        out = resize(out, (h * s, w * s), choice(gen, RESIZE_MODES))
        out = self._noise(out, gen, second=False)
        out = jpeg(out, uniform(gen, *c.jpeg_range))
        # second degradation
        if chance(gen, c.second_blur_prob):
            out = filter2d(out, k2)
        s = self._resize_scale(gen, c.resize_prob2, c.resize_range2)
        out = resize(out, (h / sf * s, w / sf * s), choice(gen, RESIZE_MODES))
        out = self._noise(out, gen, second=True)
        # the final sinc and the last JPEG, in either order (other orders give twisted lines, says Real-ESRGAN)
        low = (h // sf, w // sf)
        if chance(gen, 0.5):
            out = resize(out, low, choice(gen, RESIZE_MODES))
            if final is not None:
                out = filter2d(out, final)
            out = jpeg(out, uniform(gen, *c.jpeg_range2))
        else:
            out = jpeg(out, uniform(gen, *c.jpeg_range2))
            out = resize(out, low, choice(gen, RESIZE_MODES))
            if final is not None:
                out = filter2d(out, final)
        mode = choice(gen, RESIZE_MODES) if c.resize_back_mode == "random" else c.resize_back_mode
        out = resize(out, (h, w), mode)
        out = (out * 255.0).round().clamp(0, 255) / 255.0
        return out[0] if squeeze else out
