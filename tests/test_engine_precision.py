"""The precision each device gets, and that it keeps the fidelity the app promises.

No GPU here: the policy is a pure function of what a device is (:class:`DeviceTraits`), so each card's choice is
asserted directly, and the GPU's precision itself runs on the CPU (fp16 UNet, fp32 VAE with TF32 convolutions
emulated) in the GPU test pass (``DESKTOP_SR_TEST_PRECISION=gpu``, tests/device_target.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from desktop_sr.engine.hardware import device as device_mod
from desktop_sr.engine.hardware.device import device_traits
from desktop_sr.engine.hardware.precision import DeviceKind, DeviceTraits, Precision, policy, round_tf32

AMPERE, TURING = DeviceTraits.cuda_ampere(), DeviceTraits.cuda_turing()
MPS, XPU, CPU = (
    DeviceTraits(DeviceKind.MPS),
    DeviceTraits(DeviceKind.XPU, native_bf16=True),
    DeviceTraits(DeviceKind.CPU),
)
ROCM = DeviceTraits(DeviceKind.CUDA, None, native_bf16=True, hip=True)
F16, F32, BF16 = torch.float16, torch.float32, torch.bfloat16


@pytest.mark.parametrize(
    ("traits", "pref", "upcast", "expected"),
    [
        (CPU, "auto", True, Precision(F32, F32)),
        # SD's VAE overflows fp16 and bf16 costs the fidelity: fp32, on TF32 tensor cores where the card has them
        (AMPERE, "auto", True, Precision(F16, F32, tf32=True)),
        (TURING, "auto", True, Precision(F16, F32)),  # no bf16 hardware, no TF32: never an emulated bf16 VAE
        (ROCM, "auto", True, Precision(F16, F32)),
        (MPS, "auto", True, Precision(F16, F32)),
        (XPU, "auto", True, Precision(F16, F32)),
        (AMPERE, "fp16", False, Precision(F16, F16)),  # a VAE that does not need the upcast
        (AMPERE, "fp32", True, Precision(F32, F32, tf32=True)),
        (CPU, "fp16", True, Precision(F16, F32)),
    ],
)
def test_each_device_gets_the_precision_its_networks_need(traits, pref, upcast, expected):
    assert policy(traits, pref, vae_force_upcast=upcast) == expected


def test_a_bf16_vae_only_when_asked_and_then_the_label_says_what_it_costs():
    ampere = policy(AMPERE, "bf16")
    assert (ampere.unet, ampere.vae) == (BF16, BF16) and "9 bits" in ampere.label()
    turing = policy(TURING, "bf16")
    assert "no bf16 hardware" in turing.label()
    assert policy(AMPERE, "auto").label() == "fp16 (VAE fp32, TF32)"
    assert policy(CPU, "auto").label() == "fp32"


@pytest.mark.parametrize(("major", "bf16"), [(7, False), (8, True), (9, True)])
def test_native_bf16_is_read_from_the_compute_capability_not_the_emulation(monkeypatch, major, bf16):
    """``torch.cuda.is_bf16_supported()`` says yes on a T4 (it counts emulation): the traits must not."""
    props = SimpleNamespace(major=major, minor=5, total_memory=16 * 1024**3, name="card")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _d: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.version, "hip", None)
    traits = device_traits(torch.device("cuda:0"))
    assert traits.native_bf16 is bf16 and traits.capability == (major, 5)
    assert traits.tf32 is (major >= 8)


def test_the_trainer_never_autocasts_to_an_emulated_bf16(monkeypatch):
    from desktop_sr_trainer.loop import resolve_mixed_precision

    props = SimpleNamespace(major=7, minor=5, total_memory=16 * 1024**3, name="Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _d: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.version, "hip", None)
    assert resolve_mixed_precision("auto", torch.device("cuda:0")) == torch.float16
    props.major = 8
    assert resolve_mixed_precision("auto", torch.device("cuda:0")) == torch.bfloat16


def test_tf32_rounding_keeps_ten_mantissa_bits_to_nearest():
    x = torch.randn(10_000) * 100
    r = round_tf32(x)
    rel = ((r - x).abs() / x.abs()).max().item()
    assert 2**-12 < rel <= 2**-11  # nearest, not truncation (which reaches 2**-10)
    assert torch.equal(round_tf32(r), r)
    special = torch.tensor([float("inf"), float("-inf"), 0.0])
    assert torch.equal(round_tf32(special), special)


def test_an_unknown_device_name_gets_a_message_not_a_traceback():
    with pytest.raises(ValueError, match="devices"):
        device_mod.select_device("cuda:0") if not torch.cuda.is_available() else device_mod.select_device("cuda:99")


def test_auto_skips_a_cuda_card_this_torch_has_no_kernels_for(monkeypatch):
    """A card newer than every architecture in the build fails at its first op ("no kernel image"): auto must go on
    to the next device, and naming it must say why instead."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (12, 0) if i == 0 else (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: ["RTX 5090", "RTX 3090"][i])
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90"])
    monkeypatch.setattr(torch.version, "hip", None)
    assert device_mod.select_device("auto") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="RTX 5090.*no kernels"):
        device_mod.select_device("cuda:0")


# -- what the engine keeps, and how much memory it plans for --------------------------------------------------------
def test_cached_tensors_keep_one_dtype_whatever_the_photos_size(tiny_model, photo):
    """A photo large enough to tile used to keep z_L in the VAE's dtype and a small one in the UNet's: the cache held
    different precisions depending on the size. Now z_L is the VAE's output and eps the UNet's, tiled or not."""
    from desktop_sr.engine.api import RenderParams
    from desktop_sr.engine.backends.pisa.session import load_pisa_session
    from desktop_sr.engine.tile_settings import TileSettings

    kept = []
    for tiles in (TileSettings(unet_tile=512, vae_tile=512), TileSettings(unet_tile=8, unet_overlap=2, vae_tile=8)):
        session = load_pisa_session(
            tiny_model["base"], tiny_model["pkl"], device="cpu", tiles=tiles, emulate=DeviceTraits.cuda_ampere()
        )
        session.process_size = 0
        session.set_photo(photo[:16, :24])
        session.render(RenderParams(pix=0.5, sem=1.0))
        kept.append({key[3]: value.dtype for key, value in session.cache._items.items() if key[3] in ("z", "eps")})
    assert kept[0] == kept[1] == {"z": F32, "eps": F16}


def test_a_small_card_plans_no_more_than_it_has():
    """By the old cost model an 8 GB card (6 GB free after the model) planned about 6.9 GB for a 2048 x 1536 result:
    the lockstep's state got 80 % of the free memory and the decoder tile was sized from the same 80 %."""
    from desktop_sr.engine.hardware.budget import GPU_SHARE, state_budget
    from desktop_sr.engine.sd21.vae_tiling import plan_tiles
    from desktop_sr.engine.tile_settings import TileSettings

    cuda = torch.device("cuda")
    exact = {}
    for card, free in ((8, 6 * 1024**3), (12, 10 * 1024**3), (24, 21 * 1024**3)):  # free after the model
        tiles = TileSettings.for_budget(int(free * GPU_SHARE), 4)  # as the session sizes them (fp32 VAE)
        working = tiles.vae_working_bytes(4)
        state = state_budget(cuda, available=free, tiles=tiles, itemsize=4)
        assert state + working <= free * GPU_SHARE  # one tile computing while the lockstep keeps every tile's state
        grid = plan_tiles(1536 // 8, 2048 // 8, tiles.vae_tile, 12)  # a 2048 x 1536 result's lockstep state
        needed = sum(t.rect.area * 64 for t in grid) * 3 * 128 * 4
        exact[card] = needed <= state
    # small cards take the statistics of a downsampled copy (no state kept) instead of running out of memory
    assert exact == {8: False, 12: False, 24: True}


def test_chunked_attention_equals_the_whole_score_matrix(monkeypatch):
    """The VAE's 512-channel single head has no fused kernel on MPS: the scores are built in chunks of queries."""
    from desktop_sr.engine.sd21 import vae_tiling

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 300, 64) for _ in range(3))
    whole = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    monkeypatch.setattr(vae_tiling, "SCORE_CHUNK_BYTES", 300 * 4 * 7)  # 7 query rows at a time
    assert torch.allclose(vae_tiling.bounded_attention(q, k, v), whole, atol=1e-6)


def test_mps_keeps_the_contiguous_layout_for_every_model():
    from desktop_sr.engine.hardware.device import conv_memory_format

    assert conv_memory_format(torch.device("mps")) == torch.contiguous_format
    assert conv_memory_format(torch.device("cuda")) == torch.channels_last


def test_the_trainers_vae_stays_float32_under_an_fp16_autocast(tiny_model, tmp_path):
    """SD's VAE overflows fp16 (force_upcast): the trainer's VAE must neither be cast to fp16 nor run its
    convolutions in fp16 under the training step's autocast."""
    from desktop_sr_trainer.config import Config
    from desktop_sr_trainer.model import TrainModel

    cfg = Config()
    cfg.model.base = str(tiny_model["base"])
    model = TrainModel(cfg, torch.device("cpu"), torch.float16)
    assert model.vae_dtype == F32 and next(model.vae.parameters()).dtype == F32
    seen: list[torch.dtype] = []
    hook = model.vae.decoder.conv_in.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.float16):
        y = model.decode(torch.randn(1, 4, 8, 8))
    hook.remove()
    assert seen == [F32] and torch.isfinite(y).all()
