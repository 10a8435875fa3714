"""The fast paths give the same results as the plain ones.

channels_last VAE (with the lockstep tiler's GroupNorm), both UNet branches as one batch, the CLI's read-ahead, and
the per-stage timing line of ``desktop-sr upscale --verbose``. The precision each device gets:
tests/test_engine_precision.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from device_target import TARGET
from PIL import Image

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import PisaSession
from desktop_sr.engine.kernels.processing import model_input_of
from desktop_sr.engine.sd21.vae_tiling import tiled_vae
from desktop_sr.engine.tile_settings import TileSettings
from desktop_sr.engine.timing import StageTimes

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def model(tiny_model) -> PisaModel:
    return PisaModel(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)


def test_the_cpu_model_runs_fp32_with_a_channels_last_vae(model):
    assert model.dtype == model.vae_dtype == torch.float32
    conv = model.vae.decoder.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("half", ["encoder", "decoder"])
def test_channels_last_gives_the_contiguous_result_through_the_lockstep_tiler(model, half):
    """Several tiles (so every GroupNorm goes through the tiler's replacement) in both layouts: same image."""
    torch.manual_seed(0)
    if half == "decoder":
        x, fn, net, kw = torch.randn(1, 4, 24, 20), model.decode, model.vae.decoder, dict(factor=8, tile=12, overlap=4)
    else:
        x, fn, net = torch.rand(1, 3, 96, 80) * 2 - 1, model.encode, model.vae.encoder
        kw = dict(factor=1 / 8, tile=48, overlap=16, align=8)
    fast = tiled_vae(fn, net, x, **kw)
    model.vae.to(memory_format=torch.contiguous_format)
    model.memory_format = torch.contiguous_format
    try:
        plain = tiled_vae(fn, net, x, **kw)
    finally:
        model.vae.to(memory_format=torch.channels_last)
        model.memory_format = torch.channels_last
    assert fast.shape == plain.shape
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


def test_both_branches_in_one_batch_equal_the_two_passes(model):
    assert model.can_pair
    torch.manual_seed(1)
    z = torch.randn(1, 4, 8, 8)
    cond = model.prompts.get("")
    both = model.eps_pair(z, 1, cond)
    torch.testing.assert_close(both[0:1], model.eps(z, 1, cond, "pix"), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both[1:2], model.eps(z, 1, cond, "full"), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(both[0], both[1])  # the semantic adapter did act on the second sample only


def test_a_paired_render_equals_the_sequential_one_and_fills_both_branches(model, photo):
    params = RenderParams(pix=0.5, sem=1.5)
    results = []
    for pair in (False, True):
        # several UNet tiles: the photo is enlarged (small-photo rule) to a 64 x 96 latent, so 32 px tiles make a dozen
        session = PisaSession(model, tiles=TileSettings(unet_tile=32, unet_overlap=8))
        session.pair_branches = pair
        session.set_photo(photo[:16, :24])
        results.append(np.asarray(session.render(params)))
        assert session.is_cached(params.with_(pix=1.3, sem=0.2))  # both branches cached either way
    # Same image up to float rounding (a batch of two may take other kernels than a batch of one): well under a level.
    np.testing.assert_allclose(results[0], results[1], atol=2e-3)


def test_a_model_input_made_ahead_is_the_sessions_own(model, photo):
    for scale, rgb in ((4, photo[:40, :48]), (4, photo[:16, :24])):  # a normal and an enlarged (small) photo
        session = PisaSession(model)
        session.set_photo(rgb)
        ahead = model_input_of(rgb, scale)
        np.testing.assert_array_equal(ahead, session.model_input(scale))
        other = PisaSession(model)
        other.set_photo(rgb)
        other.prime_model_input(scale, ahead)
        assert other.model_input(scale) is ahead


def test_stage_times_add_up_in_order():
    t = StageTimes()
    t.add("encode", 1.25)
    t.add("unet pix", 0.05)
    t.add("encode", 0.25)
    assert list(t.as_dict()) == ["encode", "unet pix"]
    assert t.line() == "encode 1.5 s · unet pix 50 ms · total 1.6 s"
    t.reset()
    assert t.line() == ""


def test_verbose_upscale_prints_where_the_time_went(tmp_path, tiny_model, capsys):
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(src)
    out = tmp_path / "out.png"
    model_args = [
        "--model",
        str(tiny_model["base"]),
        "--lora",
        str(tiny_model["pkl"]),
        "--device",
        TARGET.device,
        "--quiet",
    ]
    code = main(["--verbose", "upscale", str(src), "-o", str(out), "--pix", "0.5", "--sem", "1.5", *model_args])
    assert code == ExitCode.OK and out.is_file()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "timing:" in ln]
    assert len(lines) == 1, lines
    for stage in ("load model + read photo", "encode", "unet pix", "full", "decode", "colour fix", "write", "total"):
        assert stage in lines[0]  # "unet pix+full" when both branches ran as one batch, else "unet pix", "unet full"
    quiet = main(["upscale", str(src), "-o", str(out), "--overwrite", *model_args])
    assert quiet == ExitCode.OK and "timing:" not in capsys.readouterr().err


def test_a_photo_prepared_ahead_renders_without_encoding_again(model, photo):
    session = PisaSession(model)
    session.set_photo(photo[:16, :24])
    session.prepare(4)
    assert "encode" in session.timings.as_dict()
    session.timings.reset()
    session.render(RenderParams())
    assert "encode" not in session.timings.as_dict() and "decode" in session.timings.as_dict()
