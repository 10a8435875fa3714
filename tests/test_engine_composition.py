"""The PiSA-SR composition against a plain computation with hand-merged weights on the stock diffusers UNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from device_target import TARGET

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.checkpoint import GROUPS, load_official
from desktop_sr.engine.backends.pisa.model import load_unet, load_vae
from desktop_sr.engine.backends.pisa.session import load_pisa_session

#: Run again in the GPU's precision by tests/test_precision_pass.py (tests/device_target.py).
pytestmark = pytest.mark.precision_pass


def _hand_merge(unet: torch.nn.Module, ckpt, branch: str) -> None:
    """W += 2.0 * (B @ A) for Linear; for Conv the composition of the k x k conv A and the 1 x 1 conv B."""
    for group in GROUPS:
        tag = f"default_{group}_{branch}"
        for name in ckpt.modules[branch][group]:
            mod = unet.get_submodule(name)
            a = ckpt.state_dict[f"{name}.lora_A.{tag}.weight"]
            b = ckpt.state_dict[f"{name}.lora_B.{tag}.weight"]
            if a.ndim == 2:
                delta = b @ a
            else:  # compose by convolving A's kernels with B's 1x1 kernels
                delta = F.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3)
            with torch.no_grad():
                mod.weight += 2.0 * delta


@pytest.fixture(scope="module")
def reference(tiny_model, photo):
    """eps_pix, eps_full, z_L and the VAE computed without any engine code but the bicubic 'before' image."""
    from transformers import CLIPTextModel, CLIPTokenizer

    base = tiny_model["base"]
    ckpt = load_official(tiny_model["pkl"])
    session = load_pisa_session(base, tiny_model["pkl"], **TARGET.model_kwargs())
    session.process_size = 0  # the composition at the photo's own size (small photos: test_engine_fidelity.py)
    session.set_photo(photo)
    x = torch.from_numpy(session.bicubic(4).transpose(2, 0, 1)).unsqueeze(0) * 2 - 1  # 192 x 256: a multiple of 8
    vae = load_vae(base).eval()
    tok = CLIPTokenizer.from_pretrained(str(base / "tokenizer"))
    enc = CLIPTextModel.from_pretrained(str(base / "text_encoder")).eval()
    with torch.no_grad():
        ids = tok([""], max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids
        cond = enc(ids)[0]
        z = vae.encode(x).latent_dist.mode() * 0.18215
        eps = {}
        unet = load_unet(base).eval()
        _hand_merge(unet, ckpt, "pix")
        eps["pix"] = unet(z, torch.tensor([1]), encoder_hidden_states=cond).sample
        _hand_merge(unet, ckpt, "sem")
        eps["full"] = unet(z, torch.tensor([1]), encoder_hidden_states=cond).sample

    def decode(zh: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            y = vae.decode(zh / 0.18215).sample.clamp(-1, 1)
        return ((y[0] + 1) / 2).permute(1, 2, 0).numpy()

    return session, z, eps, decode


@pytest.mark.parametrize("pix,sem", [(1.0, 1.0), (0.5, 1.5), (0.0, 0.0), (1.3, 0.0)])
def test_render_matches_hand_computation(reference, target, pix, sem):
    session, z, eps, decode = reference
    expected = decode(z - (pix * eps["pix"] + sem * (eps["full"] - eps["pix"])))
    got = session.render(RenderParams(pix=pix, sem=sem, color_fix="none"))
    assert got.shape == expected.shape == (192, 256, 3)
    target.assert_matches_float32_arithmetic(got, expected)


def test_zero_strengths_decode_the_input_latent_without_a_unet_pass(reference):
    session, z, _, decode = reference
    before = session.unet_passes
    got = session.render(RenderParams(pix=0.0, sem=0.0, color_fix="none", realism=321))
    assert session.unet_passes == before  # no residual, so no network pass at all
    TARGET.assert_matches_float32_arithmetic(got, decode(z))


def test_lora_really_changes_the_result(reference):
    session, z, eps, _ = reference
    assert float((eps["full"] - eps["pix"]).abs().mean()) > 1e-3
    a = session.render(RenderParams(pix=1.0, sem=0.0, color_fix="none"))
    b = session.render(RenderParams(pix=1.0, sem=1.0, color_fix="none"))
    assert np.abs(a - b).mean() > 1e-3
