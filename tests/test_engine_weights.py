"""The engine's own weight reader gives exactly diffusers' networks, falls back where it must, and says what is
wrong with a damaged file; the in-place LoRA merge equals the dense formula."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from desktop_sr.engine.backends.pisa.lora import add_lora_delta
from desktop_sr.engine.backends.pisa.model import load_unet, load_vae
from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.sd21.weights import WEIGHTS_NAME, load_read, read_safetensors


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(("cls", "sub"), [(UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")])
def test_read_weights_equal_diffusers(tiny_model, cls, sub) -> None:
    folder = tiny_model["base"] / sub
    mine = load_read(cls, folder, torch.float32)
    assert mine is not None  # the fast path took it: nothing mapped, nothing on the meta device
    _same_weights(mine, cls.from_pretrained(str(folder)))
    assert not any(p.is_meta for p in mine.parameters())


def test_read_weights_in_half_precision(tiny_model) -> None:
    mine = load_read(AutoencoderKL, tiny_model["base"] / "vae", torch.float16)
    assert mine is not None and {p.dtype for p in mine.parameters()} == {torch.float16}


def test_unfamiliar_names_fall_back_to_diffusers(tiny_model, tmp_path: Path) -> None:
    """Old checkpoints use names diffusers converts while loading; the fast path leaves them to diffusers."""
    folder = tmp_path / "vae"
    shutil.copytree(tiny_model["base"] / "vae", folder)
    state = load_file(folder / WEIGHTS_NAME)
    state["extra.weight"] = torch.zeros(1)
    save_file(state, folder / WEIGHTS_NAME)
    assert read_safetensors(folder / WEIGHTS_NAME, expect=set(state) - {"extra.weight"}) is None
    assert load_read(AutoencoderKL, folder, torch.float32) is None


def test_truncated_weights_are_a_model_error(tiny_model, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    shutil.copytree(tiny_model["base"], root)
    weights = root / "unet" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="cannot load the UNet"):
        load_unet(root)
    (root / "vae" / WEIGHTS_NAME).write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelError, match="cannot load the VAE"):
        load_vae(root)


@pytest.mark.parametrize(
    ("weight_shape", "a_shape", "b_shape"),
    [((24, 16), (4, 16), (24, 4)), ((24, 16, 3, 3), (4, 16, 3, 3), (24, 4, 1, 1))],
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "fp16"])
def test_in_place_merge_equals_the_dense_delta(weight_shape, a_shape, b_shape, layout) -> None:
    g = torch.Generator().manual_seed(0)
    w0, a, b = (torch.randn(s, generator=g) for s in (weight_shape, a_shape, b_shape))
    if a.ndim == 2:
        dense = 0.7 * (b @ a)
    else:
        dense = 0.7 * torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
    weight = w0.clone()
    if layout == "channels_last" and weight.ndim == 4:
        weight = weight.to(memory_format=torch.channels_last)
    if layout == "fp16":
        weight = weight.half()
    add_lora_delta(weight, a, b, 0.7)
    tol = 1e-2 if layout == "fp16" else 1e-5
    torch.testing.assert_close(weight.float(), (w0 + dense).to(weight.dtype).float(), atol=tol, rtol=tol)
    with pytest.raises(ValueError, match="LoRA gives"):
        add_lora_delta(torch.zeros(5, 5), a[:, :5] if a.ndim == 2 else a, b, 1.0)
