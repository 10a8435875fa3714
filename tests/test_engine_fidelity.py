"""Fidelity at the sizes real photos have, measured with a small VAE trained on real photos (tests/data/small_vae).

A random VAE turns half-level input changes into changes of hundreds of levels, so it cannot tell a faithful tiler,
colour fix or preview from a poor one; this one reconstructs photos smoothly, as SD's does. The UNet and text
encoder stay tiny and random (they do not enter encode + decode, and the small-photo test computes their part).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from device_target import TARGET
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import PisaSession
from desktop_sr.engine.strength_map import StrengthMaps
from desktop_sr.engine.tile_settings import TileSettings

#: The tests run again in the GPU's precision by tests/test_precision_pass.py (tests/device_target.py): the GPU's
#: result against the CPU's, untiled, tiled, with local maps and for a visible region.
precision_pass = pytest.mark.precision_pass

DATA = Path(__file__).parent / "data"
SMALL_VAE = DATA / "small_vae"
UNTILED = TileSettings(unet_tile=512, vae_tile=512)
LEVEL = 1 / 255


@pytest.fixture(scope="module")
def model(tiny_model: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> PisaModel:
    """The tiny random SD with its VAE replaced by the trained small one."""
    base = tmp_path_factory.mktemp("trained_vae") / "sd"
    shutil.copytree(tiny_model["base"], base)
    shutil.rmtree(base / "vae")
    (base / "vae").mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(SMALL_VAE / name, base / "vae" / name)
    return PisaModel(base, tiny_model["pkl"], **TARGET.model_kwargs())


def real_photo(width: int, height: int) -> np.ndarray:
    """A real photo (scikit-image's astronaut, public domain) resized to width x height, float32 in [0, 1]."""
    img = Image.open(DATA / "astronaut_512.jpg").convert("RGB")
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12))


ENCODE_DECODE = RenderParams(pix=0.0, sem=0.0, scale=4, color_fix="none")  # no UNet: encode + decode only


def render(model: PisaModel, photo: np.ndarray, tiles: TileSettings, params: RenderParams = ENCODE_DECODE):
    session = PisaSession(model, tiles=tiles)
    session.set_photo(photo)
    return session.render(params)


def assert_faithful(tiled: np.ndarray, untiled: np.ndarray, min_psnr: float, border_px: list[int]) -> None:
    assert psnr(tiled, untiled) >= min_psnr
    # The tone: per-channel mean and std within one 8-bit level (the approximate statistics shifted 7-10).
    for c in range(3):
        assert abs(tiled[..., c].mean() - untiled[..., c].mean()) < LEVEL
        assert abs(tiled[..., c].std() - untiled[..., c].std()) < LEVEL
    # No seam: the column profile of the difference has no step at the tile borders.
    profile = np.abs(tiled - untiled).mean(axis=(0, 2))
    typical = float(np.median(profile))
    for x in border_px:
        assert profile[max(0, x - 2) : x + 2].max() < 4 * typical + 0.5 * LEVEL, f"seam at x = {x}"


def decoder_borders(width: int, tiles: TileSettings) -> list[int]:
    """Output columns where a decoder tile begins or ends: where a seam would show."""
    from desktop_sr.engine.sd21.vae_tiling import decode_overlap, plan_tiles

    grid = plan_tiles(1, width // 8, tiles.vae_tile, decode_overlap(tiles.vae_tile, tiles.vae_overlap))
    return sorted({t.rect.x0 * 8 for t in grid[1:]} | {t.rect.x1 * 8 for t in grid[:-1]})


@pytest.fixture(scope="module")
def photo_1024() -> np.ndarray:
    return real_photo(256, 192)  # a 1024 x 768 result at x4


@pytest.fixture(scope="module")
def untiled_1024(model: PisaModel, photo_1024: np.ndarray) -> np.ndarray:
    return render(model, photo_1024, UNTILED)


@pytest.mark.parametrize(
    ("tiles", "min_psnr"),
    [
        (TileSettings.for_budget(1024**3), 40.0),  # what the app picks with 1 GB free: 512 px VAE tiles
        (TileSettings(vae_tile=24, vae_overlap=8), 35.0),  # 192 px tiles, as the issue measured (18.7 dB before)
    ],
    ids=["budget-1GB", "192px"],
)
def test_tiled_encode_decode_matches_untiled(model, photo_1024, untiled_1024, tiles, min_psnr):
    tiled = render(model, photo_1024, tiles)
    assert tiled.shape == untiled_1024.shape
    assert_faithful(tiled, untiled_1024, min_psnr, border_px=decoder_borders(1024, tiles))


@pytest.mark.slow  # ~21 s: 128 px decoder tiles, which only an out-of-memory retry reaches
def test_small_decoder_tiles_keep_the_tone_of_a_detailed_photo(model):
    """192 px tiles on a photo with full-resolution detail (a crop of the astronaut, not a downsampled copy): a decoder
    tile's core needs about 6 latent px of context on each side, so the decoder's overlap never drops under 12 even
    when the settings ask for 8. With 8 this measured 39 dB and a 2.6-level shift of the blue channel's mean (the
    whole-image statistics spread the cores' border errors over the image); with 12, 58 dB."""
    img = Image.open(DATA / "astronaut_512.jpg").convert("RGB").crop((128, 96, 384, 288))
    photo = np.asarray(img, dtype=np.float32) / 255.0  # 256 x 192: a 1024 x 768 result
    tiled = render(model, photo, TileSettings(vae_tile=24, vae_overlap=8))
    untiled = render(model, photo, UNTILED)
    assert_faithful(tiled, untiled, 45.0, border_px=[])


@pytest.mark.slow
def test_tiled_matches_untiled_at_2048_with_192px_tiles(model):
    """The issue's second figure: a 512 x 384 photo to a 2048 x 1536 result in 192 px tiles (18.7 dB with the old
    approximate statistics, 34.8 dB with exact ones and 8 latent px of decoder overlap)."""
    photo = real_photo(512, 384)
    tiled, untiled = render(model, photo, TileSettings(vae_tile=24)), render(model, photo, UNTILED)
    assert_faithful(tiled, untiled, 35.0, border_px=[])


@pytest.mark.slow
def test_tiled_matches_untiled_at_2048_with_production_tiles(model):
    """The issue's figure: a 512 x 384 photo to a 2048 x 1536 result with the tiles this machine picks."""
    from desktop_sr.engine.hardware.budget import memory_budget

    photo = real_photo(512, 384)
    tiles = TileSettings.for_budget(memory_budget(torch.device("cpu")))
    tiled, untiled = render(model, photo, tiles), render(model, photo, UNTILED)
    assert_faithful(tiled, untiled, 40.0, border_px=[])


SMOOTH = ("dune", "storm", "bridge")  # tests/data/smooth: sky, sand and grass (see its README)


def smooth_photo(name: str, width: int, height: int) -> np.ndarray:
    img = Image.open(DATA / "smooth" / f"{name}_512.jpg").convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def test_the_vae_group_norms_are_exact_on_large_channels_last_maps(model):
    """The cause of a whole-image tone shift: torch's CPU GroupNorm drifts on large channels-last maps (the layout
    the VAE runs in on the CPU), up to 0.005 of a unit here and 0.011 at 2048 x 1536; a 512 x 384 sand-and-sky
    photo decoded untiled to 2048 x 1536 came out 1.7 levels darker in red than in float64, and so 1.7 levels
    away from the (exact) tiled decode. The VAE's GroupNorms take centred statistics (sd21/group_norm.py)."""
    gn = next(m for m in model.vae.decoder.modules() if isinstance(m, torch.nn.GroupNorm) and m.num_channels == 64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 768, 1024, generator=gen) * 0.5 + 5 + torch.linspace(0, 1, 1024)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = gn(x)
    want = torch.nn.functional.group_norm(x.double(), gn.num_groups, gn.weight.double(), gn.bias.double(), gn.eps)
    scale = gn.weight.abs().max().item()
    assert float((got.double() - want).abs().max()) < 2e-5 * scale


@pytest.mark.parametrize(
    "name", [SMOOTH[0], *(pytest.param(n, marks=pytest.mark.slow) for n in SMOOTH[1:])]
)  # CI: the dune (the photo the tone shift was measured on); -m slow: the storm and the bridge too
def test_tiled_keeps_the_tone_of_smooth_photos(model, name):
    """Skies, sand and grass in 192 px VAE tiles (a 384 x 288 result of a 96 x 72 photo, 2 x 2 decoder tiles):
    the tone within a level of the untiled decode, channel by channel (measured 61 dB, 0.07 levels on the dune)."""
    photo = smooth_photo(name, 96, 72)
    tiled, untiled = render(model, photo, TileSettings(vae_tile=24, vae_overlap=8)), render(model, photo, UNTILED)
    assert_faithful(tiled, untiled, 40.0, border_px=[])


@pytest.mark.slow
@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_photos_at_2048_keep_their_tone(model, name):
    """The issue's figure on three smooth photos: 512 x 384 to 2048 x 1536 with the tiles this machine picks.
    Before the exact GroupNorm the untiled decode of the dune was 1.7 levels off in red (43.8 dB); now 76.7 dB."""
    from desktop_sr.engine.hardware.budget import memory_budget

    photo = smooth_photo(name, 512, 384)
    tiles = TileSettings.for_budget(memory_budget(torch.device("cpu")))
    tiled, untiled = render(model, photo, tiles), render(model, photo, UNTILED)
    assert_faithful(tiled, untiled, 40.0, border_px=[])


def reference_small_photo(model: PisaModel, photo: np.ndarray, scale: int) -> np.ndarray:
    """PiSA-SR's test script, written out here: enlarge a photo whose side is under 512 // scale so its short side
    is exactly that (bicubic), bicubic x scale, encode (mode), z - eps_full at t = 1, decode, AdaIN against the
    enlarged input, resize back to scale x the original (bicubic). Float planes throughout, as the engine does."""

    def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        planes = [Image.fromarray(np.ascontiguousarray(img[..., c]), mode="F").resize(size, Image.Resampling.BICUBIC)
                  for c in range(3)]  # fmt: skip
        return np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=-1)

    h, w = photo.shape[:2]
    side = 512 // scale
    f = side / min(w, h)
    small = np.clip(resize(photo, (int(f * w), int(f * h))), 0, 1)
    x_img = np.clip(resize(small, (small.shape[1] * scale, small.shape[0] * scale)), 0, 1)
    x = torch.from_numpy(x_img.transpose(2, 0, 1).copy())[None] * 2 - 1
    hh, ww = x.shape[-2:]
    x = torch.nn.functional.pad(x, (0, -ww % 8, 0, -hh % 8), mode="reflect")  # pad, never squeeze (DESIGN.md)
    with torch.no_grad():
        z = model.encode(x)
        eps = model.eps(z, 1, model.prompts.get(""), "full")
        y = ((model.decode(z - eps)[0, :, :hh, :ww].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    y = (y - y.mean((0, 1))) / (y.std((0, 1)) + 1e-5) * x_img.std((0, 1)) + x_img.mean((0, 1))
    y = np.clip(y, 0, 1).astype(np.float32)
    return np.clip(resize(y, (w * scale, h * scale)), 0, 1)


@pytest.mark.parametrize(("size", "scale"), [((40, 32), 4), ((100, 75), 4), ((80, 60), 1)])
def test_small_photos_and_x1_follow_the_reference(model, size, scale):
    photo = real_photo(*size)
    session = PisaSession(model, tiles=UNTILED)
    session.set_photo(photo)
    out = session.render(RenderParams(scale=scale))
    assert out.shape == (size[1] * scale, size[0] * scale, 3)
    ref = reference_small_photo(model, photo, scale)
    assert np.abs(out - ref).max() < LEVEL


def test_large_photo_at_x1_runs_at_its_own_size(model):
    photo = real_photo(520, 512)
    session = PisaSession(model, tiles=UNTILED)
    session.set_photo(photo)
    assert not session.enlarged(1)
    out = session.render(ENCODE_DECODE.with_(scale=1))
    assert out.shape == photo.shape
    assert psnr(out, photo) > 20  # a restoration of the photo itself, not something else


SLOW_FIXES = [pytest.param(f, marks=pytest.mark.slow) for f in ("wavelet", "none")]  # CI: adain


@pytest.mark.parametrize("color_fix", ["adain", *SLOW_FIXES])
def test_region_render_equals_crop_of_full_render(model, photo_1024, color_fix):
    """What the GUI shows first (the visible region) is what the full render then puts in its place, whenever the
    session says it is exact: here a region covering half the photo, which is rendered whole and cropped."""
    tiles = TileSettings(vae_tile=32, vae_overlap=8)  # 256 px tiles
    params = RenderParams(pix=0.0, sem=0.0, scale=4, color_fix=color_fix)
    session = PisaSession(model, tiles=tiles)
    session.set_photo(photo_1024)
    region = (0, 0, 1024, 400)
    assert session.region_is_exact(params, region)
    part = np.array(session.render(params, region=region))
    crop = session.render(params)[0:400, 0:1024]
    assert np.abs(part - crop).max() < LEVEL


@pytest.mark.parametrize("color_fix", ["adain", pytest.param("none", marks=pytest.mark.slow)])  # CI: adain
def test_a_small_window_previews_the_tone_of_the_full_render(model, photo_1024, color_fix):
    """Before the whole photo is rendered, the visible window's tone comes from a sample of tiles (and the window is
    not called exact until the whole result is), so the full render that replaces it does not jump far: channel
    means within 6 levels (measured up to 4.8). Before, four
    sample tiles missed by up to 17 levels here, and an AdaIN with the window's own statistics by 30."""
    session = PisaSession(model, tiles=TileSettings(vae_tile=32, vae_overlap=8))
    session.set_photo(photo_1024)
    params = RenderParams(pix=0.0, sem=0.0, scale=4, color_fix=color_fix)
    region = (340, 250, 600, 510)
    assert not session.region_is_exact(params, region)  # not called exact: its tone comes from a sample of the photo
    part = np.array(session.render(params, region=region))
    assert part.shape == (260, 260, 3)
    crop = session.render(params)[250:510, 340:600]
    assert session.region_is_exact(params, region)  # now it is the crop of the cached full result
    shift = np.abs(part.mean(axis=(0, 1)) - crop.mean(axis=(0, 1)))
    assert shift.max() < 6 * LEVEL, shift * 255
    assert np.abs(part - crop).mean() < 6 * LEVEL


def test_the_trained_vae_is_a_fit_instrument():
    """Why the fidelity tests use it: a half-level change of the input moves its output by a fraction of a level
    (measured 0.21 at most), where the tiny random VAE moves it by ten levels and more."""
    from diffusers import AutoencoderKL

    from desktop_sr.engine.backends.pisa.synthetic import TINY_VAE

    x = torch.from_numpy(real_photo(128, 96).transpose(2, 0, 1).copy())[None] * 2 - 1
    half = torch.from_numpy(np.random.default_rng(0).choice([-1.0, 1.0], size=x.shape).astype(np.float32)) / 255
    moved = {}
    for name, vae in (
        ("trained", AutoencoderKL.from_pretrained(str(SMALL_VAE))),
        ("random", AutoencoderKL(**TINY_VAE)),
    ):
        vae.eval()
        with torch.no_grad():
            codec = lambda t, v=vae: v.decode(v.encode(t).latent_dist.mode()).sample.clamp(-1, 1)  # noqa: E731
            moved[name] = float((codec(x + half) - codec(x)).abs().max()) * 127.5
    assert moved["trained"] < 1.0
    assert moved["random"] > 5 * moved["trained"]


# -- the GPU's precision against the CPU's float32 (DESKTOP_SR_TEST_PRECISION=gpu; tests/device_target.py) -----------
@pytest.fixture(scope="module")
def reference_model(model: PisaModel) -> PisaModel:
    """The same networks on the CPU in float32: the reference every other precision is held to."""
    if model.device.type == "cpu" and model.dtype == model.vae_dtype == torch.float32:
        pytest.skip("this run is the CPU float32 reference itself (the GPU pass compares against it)")
    return PisaModel(model.base_dir, model.ckpt, device="cpu", dtype="fp32")


def backdrop_photo() -> np.ndarray:
    """The astronaut's studio backdrop and the shuttle model (large smooth areas, where a tone shift shows): an
    80 x 60 photo, a 320 x 240 result."""
    img = Image.open(DATA / "astronaut_512.jpg").convert("RGB").crop((256, 0, 512, 192))
    return np.asarray(img.resize((80, 60), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def half_sem_map() -> StrengthMaps:
    sem = np.ones((60, 80), np.float32)
    sem[:, :40] = 0.0
    return StrengthMaps(sem=sem)


SMALL_TILES = TileSettings(unet_tile=512, vae_tile=16, vae_overlap=8)  # 3 x 2 decoder tiles of 128 px
PRECISION_CASES = {
    "untiled": (UNTILED, RenderParams(), None),
    "tiled": (SMALL_TILES, RenderParams(), None),
    "local-maps": (SMALL_TILES, RenderParams(maps=half_sem_map()), None),
    "region": (SMALL_TILES, RenderParams(), (64, 48, 224, 176)),
}


@precision_pass
@pytest.mark.parametrize("case", list(PRECISION_CASES))
def test_the_target_precision_keeps_the_cpu_fp32_result(model, reference_model, target, case):
    """The goal of the GPU issue: within one level of 255 mean and two at the 99.9th percentile of the CPU's
    float32 result, untiled, tiled, with local strength maps and for a visible region. Before, the GPU default
    (UNet fp16, VAE bf16) measured 44 dB and 1.28 levels mean with local maps; the policy now (UNet fp16, VAE fp32
    with TF32) measured 0.07 levels mean and 0.76 at the 99.9th percentile untiled at 512 x 384."""
    tiles, params, region = PRECISION_CASES[case]
    photo = backdrop_photo()
    results = []
    for m in (model, reference_model):
        session = PisaSession(m, tiles=tiles)
        session.process_size = 0  # at the photo's own size (small photos run enlarged: test_small_photos_...)
        session.set_photo(photo)
        if region is not None:
            session.corners(params)  # as the GUI has them when it renders the visible region first
        results.append(session.render(params, region=region))
    got, want = results
    diff = np.abs(got.astype(np.float64) - want) * 255
    assert np.isfinite(got).all()
    tol = target.tolerance
    assert diff.mean() < tol.mean_levels, f"{case}: mean {diff.mean():.3f} levels"
    assert np.percentile(diff, 99.9) <= tol.p999_levels, f"{case}: p99.9 {np.percentile(diff, 99.9):.3f} levels"
    for c in range(3):  # the tone of each channel, not only the average pixel
        assert abs(got[..., c].mean() - want[..., c].mean()) * 255 < tol.mean_levels
