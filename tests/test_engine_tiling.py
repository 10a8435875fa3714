"""Tiled UNet and VAE passes: any aspect ratio, no seams, regions, progress, cancel and out-of-memory retry."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from device_target import TARGET

from desktop_sr.engine.api import Rect, RenderParams
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import PisaSession
from desktop_sr.engine.control import Control
from desktop_sr.engine.errors import Cancelled, OutOfMemory
from desktop_sr.engine.kernels import tiling
from desktop_sr.engine.kernels.tiling import Attempt, TileSettings, gaussian_weights, retry_on_oom, tile_starts

UNTILED = TileSettings(unet_tile=512, vae_tile=512)


@pytest.fixture(scope="module")
def model(tiny_model):
    return PisaModel(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)


@pytest.fixture(scope="module")
def photo128():
    from pathlib import Path

    from PIL import Image

    img = Image.open(Path(__file__).parent / "data" / "astronaut_128.png").convert("RGB")
    return np.asarray(img, dtype=np.float32)[:96] / 255.0


def gradient(h: int = 64, w: int = 96) -> np.ndarray:
    x = np.linspace(0.1, 0.9, w, dtype=np.float32)
    y = np.linspace(0.2, 0.7, h, dtype=np.float32)[:, None]
    return np.dstack([np.tile(x, (h, 1)), np.tile(y, (1, w)), 0.5 * (np.tile(x, (h, 1)) + y)]).astype(np.float32)


def seam_ratio(diff: np.ndarray, borders: list[int], axis: int) -> float:
    """Largest jump of the mean |difference| profile across tile borders, relative to jumps elsewhere."""
    profile = diff.mean(axis=axis)
    jumps = np.abs(np.diff(profile))
    near = np.zeros_like(jumps, dtype=bool)
    for b in borders:
        near[max(0, b - 2) : b + 2] = True
    return float(jumps[near].max() / (np.percentile(jumps[~near], 95) + 1e-6))


def tile_borders(size_px: int, tile: int, overlap: int, f: int = 8) -> list[int]:
    """Output pixels where a decoder tile begins or ends (tiles are balanced: see ``balanced_tile``)."""
    from desktop_sr.engine.sd21.vae_tiling import balanced_tile

    side = balanced_tile(size_px // f, tile, overlap)
    starts = tile_starts(size_px // f, side, overlap)
    return sorted({s * f for s in starts[1:]} | {(s + side) * f for s in starts[:-1]})


def test_tile_grid_covers_any_shape():
    for size, tile, overlap in [(10, 96, 32), (640, 96, 32), (97, 96, 32), (64, 16, 8)]:
        starts = tile_starts(size, tile, overlap)
        t = min(tile, size)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + t] = True
        assert covered.all() and starts[-1] + t == size


def test_gaussian_weights_follow_the_clamped_tile():
    w = gaussian_weights(8, 96, torch.device("cpu"))
    assert w.shape == (1, 1, 8, 96)
    assert torch.argmax(w[0, 0, 4]).item() in (47, 48)


@pytest.mark.parametrize("name", ["photo", "gradient"])
def test_tiled_vae_matches_untiled_without_seams(model, photo128, name):
    img = photo128 if name == "photo" else gradient()
    params = RenderParams(pix=0.0, sem=0.0, color_fix="none")  # z_L decoded: isolates the VAE tiling
    ref = PisaSession(model, tiles=UNTILED)
    ref.set_photo(img)
    tiles = TileSettings(unet_tile=512, vae_tile=24, vae_overlap=8)
    tiled = PisaSession(model, tiles=tiles)
    tiled.set_photo(img)
    a, b = ref.render(params), tiled.render(params)
    diff = np.abs(a - b).mean(axis=2)
    assert diff.mean() < 0.03
    h, w = diff.shape
    assert seam_ratio(diff, tile_borders(w, 24, 8), axis=0) < 3.0
    assert seam_ratio(diff, tile_borders(h, 24, 8), axis=1) < 3.0


def test_tiled_unet_matches_untiled_without_seams(model, photo128):
    params = RenderParams(color_fix="none")
    ref = PisaSession(model, tiles=UNTILED)
    ref.set_photo(photo128)
    tiled = PisaSession(model, tiles=TileSettings(unet_tile=24, unet_overlap=12, vae_tile=512))
    tiled.set_photo(photo128)
    a, b = ref.render(params), tiled.render(params)
    assert tiled.unet_passes > 1 and ref.unet_passes == 1
    diff = np.abs(a - b).mean(axis=2)
    assert diff.mean() < 0.08
    h, w = diff.shape
    assert seam_ratio(diff, tile_borders(w, 24, 12), axis=0) < 3.0


@pytest.mark.slow  # ~13 s
def test_elongated_latent_64_by_640(model):
    """A 128 x 1280 photo at x4 is a 64 x 640 latent: the reference code crashes on this shape."""
    rng = np.random.default_rng(0)
    img = np.clip(gradient(128, 1280) + rng.normal(0, 0.02, (128, 1280, 3)), 0, 1).astype(np.float32)
    session = PisaSession(model, tiles=TileSettings(unet_tile=96, unet_overlap=32, vae_tile=96, vae_overlap=16))
    session.set_photo(img)
    out = session.render(RenderParams())
    assert out.shape == (512, 5120, 3)
    assert np.isfinite(out).all()


def test_region_equals_the_crop_of_the_full_result(model, photo128):
    session = PisaSession(model, tiles=TileSettings(vae_tile=24, vae_overlap=8))
    session.set_photo(photo128)
    params = RenderParams(color_fix="wavelet")
    region = session.render(params, region=(40, 30, 200, 150))
    full = session.render(params)
    assert region.shape == (120, 160, 3)
    # The wavelet fix sees less border context in a region; the decoded pixels themselves are the same tiles.
    assert np.abs(region - full[30:150, 40:200]).mean() < 0.02


def test_progress_is_reported_per_tile_and_cancel_stops_between_tiles(model, photo128):
    session = PisaSession(model, tiles=TileSettings(unet_tile=16, unet_overlap=8, vae_tile=512))
    session.set_photo(photo128)
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, stage: str) -> None:
        seen.append((done, total, stage))
        if stage.startswith("unet") and done == 2:
            control.cancel()

    control = Control(progress)
    with pytest.raises(Cancelled):
        session.render(RenderParams(), control=control)
    unet_steps = [s for s in seen if s[2].startswith("unet")]
    assert unet_steps[-1][0] == 2 and unet_steps[-1][1] > 2  # stopped right after the tile that cancelled
    assert session.unet_passes == 2
    assert not session.is_cached(RenderParams())  # nothing half-done was cached


def test_out_of_memory_halves_the_tile_and_retries():
    tried: list[Attempt] = []

    def run(attempt: Attempt) -> torch.Tensor:
        if attempt.tile > 24:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.zeros(1)

    retry_on_oom(run, Attempt(96), torch.device("cpu"), tried=tried)
    assert [a.tile for a in tried] == [96, 48, 24]
    with pytest.raises(OutOfMemory, match="smaller scale"):
        retry_on_oom(lambda a: (_ for _ in ()).throw(RuntimeError("out of memory")), Attempt(32), torch.device("cpu"))


def test_out_of_memory_in_a_lockstep_gives_up_the_whole_image_state_before_the_tile(monkeypatch):
    """Halving the tile cannot shrink the lockstep's whole-image state: near the budget every halving failed down to
    16 px tiles. The first retry keeps the tile and takes the statistics of a downsampled copy instead."""
    tried: list[Attempt] = []

    def run(attempt: Attempt) -> torch.Tensor:
        if attempt.state_budget:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.zeros(1)

    retry_on_oom(run, Attempt(128, state_budget=6 * 1024**3), torch.device("cpu"), tried=tried)
    assert tried == [Attempt(128, 6 * 1024**3), Attempt(128, 0)]


def test_a_failed_attempt_is_released_before_the_device_cache_is_emptied(monkeypatch):
    """The failed attempt's tensors sit in a cycle (exception -> traceback -> frame -> the lockstep holding the
    exception) that only the garbage collector breaks; emptying the cache before that frees nothing."""
    alive: list[weakref.ref[torch.Tensor]] = []
    seen_at_empty: list[bool] = []
    monkeypatch.setattr(tiling, "empty_cache", lambda _d: seen_at_empty.append(alive[-1]() is not None))

    def run(attempt: Attempt) -> torch.Tensor:
        holder: dict[str, object] = {"activations": torch.zeros(1 << 20)}
        alive.append(weakref.ref(holder["activations"]))  # type: ignore[arg-type]
        if attempt.tile > 32:
            try:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            except RuntimeError as exc:
                holder["error"] = exc  # what _Lockstep.fail does: a reference cycle through the frame
                raise
        return torch.zeros(1)

    gc.disable()
    try:
        retry_on_oom(run, Attempt(64), torch.device("cpu"))
    finally:
        gc.enable()
    assert seen_at_empty == [False]


@pytest.mark.parametrize("early", [True, False])
def test_a_region_preview_sees_the_whole_image_up_to_the_attention(model, early):
    """A window of a large photo (the GUI's first preview) takes its statistics from a sample of tiles. The decoder's
    mid-block attention comes before any upsampling, so every tile can still wait there cheaply: the attention then
    sees the whole image, and the statistics up to it come from every tile (exact), before the tiles beyond the
    sample leave. Without that room (``attention_bytes_per_px=0``) everything comes from the sample."""
    from desktop_sr.engine.sd21.vae_tiling import gather_stats, plan_tiles, tiled_vae, vae_attention_bytes_per_px

    torch.manual_seed(0)
    z = torch.randn(1, 4, 40, 56) * 4
    vae = model.vae
    with torch.no_grad():
        exact = gather_stats(model.decode, vae.decoder, z)
        recorded: dict = {}
        per_tile_px = 16 * 16 * 64  # a 16-latent-px tile's full-resolution pixels
        state = 1000.0
        n_tiles = len(plan_tiles(40, 56, 16, 8))
        out = tiled_vae(
            model.decode, vae.decoder, z, factor=8, tile=16, overlap=8, state_bytes_per_px=state,
            state_budget=int(3.5 * per_tile_px * state), record=recorded, region=Rect(16, 8, 32, 24),
            attention_bytes_per_px=vae_attention_bytes_per_px(vae, torch.float32) if early else 0.0,
        )  # fmt: skip
    assert n_tiles > 3 and out.shape == (1, 3, 16 * 8, 16 * 8) and torch.isfinite(out).all()
    norms = list(exact)  # in the order the forward calls them
    attention_norm = vae.decoder.mid_block.attentions[0].group_norm
    before = norms[: norms.index(attention_norm) + 1]  # what runs before the attention: conv_in, the first resnet

    def off(gn: torch.nn.GroupNorm) -> float:
        return float((recorded[gn][0] - exact[gn][0]).abs().max() + (recorded[gn][1] / exact[gn][1] - 1).abs().max())

    if early:
        assert max(off(gn) for gn in before) < 1e-3
    else:
        assert max(off(gn) for gn in before) > 1e-2  # the sample alone does not see the whole image


def test_exact_statistics_may_use_most_of_the_free_memory_on_the_cpu():
    """The lockstep keeps every tile's activations: for an SD-width 2560 x 1920 result about 9 GB, more than a fixed
    quarter of a 24 GB machine's RAM, within what it has free with the model loaded (17 GB)."""
    from desktop_sr.engine.hardware.budget import memory_budget, state_budget
    from desktop_sr.engine.sd21.vae_tiling import plan_tiles

    cpu = torch.device("cpu")
    sd_state_per_px = 3 * 128 * 4  # vae_state_bytes_per_px for SD's VAE in fp32
    grid = plan_tiles(240, 320, 128, 16)
    needed = sum(t.rect.area for t in grid) * 64 * sd_state_per_px
    assert needed > 6 * 1024**3  # more than a quarter of 24 GB
    assert state_budget(cpu, available=17 * 1024**3) >= needed
    assert state_budget(cpu, available=1024**3) == memory_budget(cpu)  # never less than before
    assert state_budget(cpu, available=None) >= memory_budget(cpu)


def test_tiles_are_as_small_as_their_count_allows():
    """A 256 latent px side in 128 px tiles used to start at 0, 112 and 128: the last tile repeated most of its
    neighbour. Balanced, the same three tiles are 96 px, overlapping by exactly the overlap, and cover the side."""
    from desktop_sr.engine.sd21.vae_tiling import plan_tiles

    for h, w, tile, overlap, align in [(192, 256, 128, 16, 1), (1536, 2048, 1024, 128, 8), (40, 56, 16, 8, 1)]:
        grid = plan_tiles(h, w, tile, overlap, align)
        xs = sorted({(t.rect.x0, t.rect.x1) for t in grid})
        assert len(xs) == len(tile_starts(w, tile, overlap))  # no more tiles than before
        assert all(a[1] - b[0] >= overlap for a, b in zip(xs, xs[1:], strict=False))  # each overlap is kept
        assert xs[0][0] == 0 and xs[-1][1] == w and all(x1 - x0 <= tile for x0, x1 in xs)
        assert all(x0 % align == 0 for x0, _ in xs)
        cores = sorted({(t.core.x0, t.core.x1) for t in grid})
        assert cores[0][0] == 0 and cores[-1][1] == w  # the cores partition the side
        assert all(a[1] == b[0] for a, b in zip(cores, cores[1:], strict=False))
    assert sorted({(t.rect.x0, t.rect.x1) for t in plan_tiles(192, 256, 128, 16)}) == [(0, 96), (80, 176), (160, 256)]


def test_a_photo_whose_tiles_do_not_all_fit_takes_the_statistics_of_a_downsampled_copy(model):
    """Beyond the state budget every tile runs with the statistics of one forward of the input downsampled to a
    tile: measured closer to the full render than a sample of full-resolution tiles (see ``tiled_vae``)."""
    from desktop_sr.engine.sd21.vae_tiling import downsampled, gather_stats, tiled_vae

    torch.manual_seed(0)
    z = torch.randn(1, 4, 40, 56)
    with torch.no_grad():
        recorded: dict = {}
        out = tiled_vae(
            model.decode, model.vae.decoder, z, factor=8, tile=16, overlap=8, state_bytes_per_px=1000.0,
            state_budget=2 * 16 * 16 * 64 * 1000, record=recorded,
        )  # fmt: skip
        expected = gather_stats(model.decode, model.vae.decoder, downsampled(z, 16))
    assert out.shape == (1, 3, 320, 448) and torch.isfinite(out).all()
    assert downsampled(z, 16).shape[-2:] == (11, 16)
    for gn, (mean, var) in expected.items():
        assert torch.allclose(recorded[gn][0], mean) and torch.allclose(recorded[gn][1], var)
