"""The Real-ESRGAN degradation: shapes, range, seeded determinism, and that each stage does what it claims."""

from __future__ import annotations

import math

import pytest
import torch

from desktop_sr_trainer.config import DegradationConfig
from desktop_sr_trainer.degradations import (
    Degrader,
    add_gaussian_noise,
    add_poisson_noise,
    filter2d,
    gaussian_kernel,
    generalized_gaussian_kernel,
    jpeg,
    plateau_kernel,
    random_kernel,
    resize,
    sinc_kernel,
)


def smooth_image(h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A photo-like test image: smooth gradients plus a little fine texture, (1, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.3 * torch.sin(6 * xx * yy)])
    return (base + 0.05 * torch.rand((3, h, w), generator=g)).clamp(0, 1)[None]


def high_freq_energy(img: torch.Tensor) -> float:
    """Mean squared discrete Laplacian: what a blur must lower."""
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    b, c, h, w = img.shape
    out = torch.nn.functional.conv2d(img.reshape(b * c, 1, h, w), lap[None, None])
    return float((out**2).mean())


def blockiness(img: torch.Tensor) -> float:
    """Mean |horizontal step| across 8x8 block borders divided by the mean step inside blocks (1 = no blocks)."""
    d = (img[..., :, 1:] - img[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # step between column j and j+1
    border = torch.tensor([(j + 1) % 8 == 0 for j in range(d.numel())])
    return float(d[border].mean() / d[~border].mean())


def test_pipeline_shape_range_and_8bit():
    hr = smooth_image(64, 48)[0]
    lq = Degrader(DegradationConfig())(hr, torch.Generator().manual_seed(3))
    assert lq.shape == hr.shape
    assert float(lq.min()) >= 0.0 and float(lq.max()) <= 1.0
    assert torch.equal((lq * 255).round() / 255, lq)  # quantised to 8 bits
    assert not torch.allclose(lq, hr, atol=0.02)


def test_pipeline_is_deterministic_per_seed():
    hr = smooth_image()[0]
    deg = Degrader(DegradationConfig())
    a = deg(hr, torch.Generator().manual_seed(11))
    b = deg(hr, torch.Generator().manual_seed(11))
    c = deg(hr, torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pipeline_loses_detail_like_a_x4_downscale():
    """The LQ carries far less high-frequency energy than the HR (it went through a x4 reduction and blur)."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand((3, 64, 64), generator=g)
    lq = Degrader(DegradationConfig())(hr, torch.Generator().manual_seed(5))
    assert high_freq_energy(lq[None]) < 0.5 * high_freq_energy(hr[None])


@pytest.mark.parametrize(
    "kernel",
    [
        gaussian_kernel(21, 2.0, 2.0, 0.0),
        gaussian_kernel(15, 3.0, 0.5, 0.7),
        generalized_gaussian_kernel(13, 1.5, 1.0, 0.3, 2.5),
        plateau_kernel(17, 1.5, 1.5, 0.0, 1.5),
        sinc_kernel(math.pi / 4, 13),
    ],
)
def test_every_kernel_is_normalised_and_blurs(kernel):
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-9)
    noise = torch.rand((1, 3, 48, 48), generator=torch.Generator().manual_seed(1))
    blurred = filter2d(noise, kernel.float())
    assert blurred.shape == noise.shape
    assert high_freq_energy(blurred) < 0.5 * high_freq_energy(noise)


def test_isotropic_kernel_is_symmetric_and_anisotropic_is_not():
    iso = gaussian_kernel(15, 2.0, 2.0, 0.0)
    aniso = gaussian_kernel(15, 3.0, 0.6, 0.5)
    assert torch.allclose(iso, iso.T) and torch.allclose(iso, iso.flip(0))
    assert not torch.allclose(aniso, aniso.T, atol=1e-4)


def test_random_kernels_follow_the_configured_sizes():
    cfg = DegradationConfig()
    g = torch.Generator().manual_seed(0)
    sizes = {
        random_kernel(g, cfg.kernel_list, cfg.kernel_prob, cfg.kernel_range, cfg.blur_sigma, cfg.betag_range,
                      cfg.betap_range, cfg.sinc_prob).shape[0]
        for _ in range(60)
    }  # fmt: skip
    assert sizes <= set(cfg.kernel_range) and len(sizes) > 3


def test_gaussian_noise_raises_variance_by_sigma_squared():
    flat = torch.full((1, 3, 64, 64), 0.5)
    sigma = 20 / 255
    noisy = add_gaussian_noise(flat, sigma, gray=False, gen=torch.Generator().manual_seed(0))
    assert float(noisy.var()) == pytest.approx(sigma**2, rel=0.1)
    gray = add_gaussian_noise(flat, sigma, gray=True, gen=torch.Generator().manual_seed(0))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert not torch.equal(noisy[:, 0], noisy[:, 1])


def test_poisson_noise_raises_variance():
    img = smooth_image()
    noisy = add_poisson_noise(img, 2.0, gray=False, gen=torch.Generator().manual_seed(0))
    assert float((noisy - img).var()) > 1e-4
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1


def test_jpeg_introduces_8x8_block_statistics():
    img = smooth_image(64, 64)
    assert blockiness(img) == pytest.approx(1.0, abs=0.25)
    assert blockiness(jpeg(img, 10)) > 1.5
    assert blockiness(jpeg(img, 10)) > blockiness(jpeg(img, 95))


def test_resize_modes_give_the_requested_size():
    img = smooth_image(40, 24)
    for mode in ("area", "bilinear", "bicubic"):
        assert resize(img, (10, 6), mode).shape == (1, 3, 10, 6)
    assert resize(img, (0.2, 0.1), "bicubic").shape == (1, 3, 1, 1)  # never an empty image
