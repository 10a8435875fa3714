"""Checkpoint formats: .pkl and .safetensors give identical results; bad files give one clear error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from device_target import TARGET

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.checkpoint import load_app, load_checkpoint, load_official, save_official
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import PisaSession, load_pisa_session
from desktop_sr.engine.errors import ModelError


def test_official_scale_is_two(tiny_model):
    raw = torch.load(tiny_model["pkl"], map_location="cpu", weights_only=True)
    assert "lora_alpha" not in raw and "timesteps" not in raw  # exactly a released file's keys
    ckpt = load_official(tiny_model["pkl"])
    assert ckpt.ranks == {"pix": 4, "sem": 4}
    assert ckpt.scale("pix") == ckpt.scale("sem") == 2.0
    assert ckpt.timesteps == (1,)


def test_pkl_extra_keys_carry_alpha_and_timesteps(tmp_path, tiny_model):
    ckpt = load_official(tiny_model["pkl"])
    ckpt.alphas, ckpt.timesteps = {"pix": 4.0, "sem": 12.0}, (250, 500, 750)
    back = load_official(save_official(ckpt, tmp_path / "own.pkl"))
    assert (back.scale("pix"), back.scale("sem"), back.timesteps) == (1.0, 3.0, (250, 500, 750))
    raw = torch.load(tmp_path / "own.pkl", map_location="cpu", weights_only=True)
    raw["timesteps"] = [0]
    torch.save(raw, tmp_path / "bad.pkl")
    with pytest.raises(ModelError, match="implausible"):
        load_official(tmp_path / "bad.pkl")


@pytest.mark.cpu_deterministic
def test_pkl_and_safetensors_give_identical_output(tiny_model, photo):
    outs = []
    for key in ("pkl", "safetensors"):
        session = load_pisa_session(tiny_model["base"], tiny_model[key], device=TARGET.device)
        session.set_photo(photo)
        outs.append(session.render(RenderParams(pix=0.6, sem=1.4)))
    assert np.array_equal(outs[0], outs[1])
    a, b = load_official(tiny_model["pkl"]), load_app(tiny_model["safetensors"])
    assert a.fingerprint() == b.fingerprint()


def test_manifest_records_what_the_app_needs(tiny_model):
    manifest = json.loads(tiny_model["safetensors"].with_suffix(".json").read_text())
    assert manifest["ranks"] == {"pix": 4, "sem": 4}
    assert manifest["alphas"] == {"pix": 8.0, "sem": 8.0}
    assert manifest["timesteps"] == [1]
    assert set(manifest["modules"]) == {"pix", "sem"}


@pytest.mark.parametrize(
    "content,reason",
    [(b"", "empty"), (b"this is not a pickle at all" * 10, "not a readable"), (None, "not a readable")],
)
def test_corrupt_pkl_raises_a_clear_error(tmp_path, tiny_model, content, reason):
    bad = tmp_path / "bad.pkl"
    if content is None:  # truncated real checkpoint
        data = tiny_model["pkl"].read_bytes()
        content = data[: len(data) // 2]
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=reason) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)


def test_corrupt_safetensors_raises_a_clear_error(tmp_path, tiny_model):
    dst = tmp_path / "bad.safetensors"
    data = tiny_model["safetensors"].read_bytes()
    dst.write_bytes(data[: len(data) // 3])
    shutil.copy(tiny_model["safetensors"].with_suffix(".json"), dst.with_suffix(".json"))
    with pytest.raises(ModelError, match="corrupt") as info:
        load_checkpoint(dst)
    assert info.value.path == dst


def test_missing_manifest(tmp_path, tiny_model):
    dst = tmp_path / "lonely.safetensors"
    shutil.copy(tiny_model["safetensors"], dst)
    with pytest.raises(ModelError, match="manifest"):
        load_checkpoint(dst)


def test_mismatched_module_names_are_rejected(tmp_path, tiny_model):
    ckpt = load_official(tiny_model["pkl"])
    index = next(i for i, m in enumerate(ckpt.modules["sem"]["encoder"]) if "down_blocks" in m)
    old = ckpt.modules["sem"]["encoder"][index]
    new = old.replace("down_blocks", "down_blockz")  # as if the adapters were made for another UNet
    ckpt.modules["sem"]["encoder"][index] = new
    for ab in "AB":
        ckpt.state_dict[f"{new}.lora_{ab}.default_encoder_sem.weight"] = ckpt.state_dict.pop(
            f"{old}.lora_{ab}.default_encoder_sem.weight"
        )
    path = save_official(ckpt, tmp_path / "renamed.pkl")
    with pytest.raises(ModelError, match="do not exist in this UNet") as info:
        PisaModel(tiny_model["base"], path, device=TARGET.device)
    assert info.value.path == path


def test_missing_tensor_is_rejected(tmp_path, tiny_model):
    ckpt = load_official(tiny_model["pkl"])
    key = next(k for k in ckpt.state_dict if "lora_B.default_decoder_pix" in k)
    del ckpt.state_dict[key]
    path = save_official(ckpt, tmp_path / "partial.pkl")
    with pytest.raises(ModelError, match="missing tensor"):
        load_checkpoint(path)


def test_wrong_shape_is_rejected(tmp_path, tiny_model):
    ckpt = load_official(tiny_model["pkl"])
    key = next(k for k in ckpt.state_dict if "lora_A.default_others_sem" in k and ckpt.state_dict[k].ndim == 2)
    a = ckpt.state_dict[key]
    ckpt.state_dict[key] = torch.zeros(a.shape[0], a.shape[1] + 3)
    path = save_official(ckpt, tmp_path / "shape.pkl")
    with pytest.raises(ModelError, match="shape"):
        PisaModel(tiny_model["base"], path, device=TARGET.device)


def test_base_folder_errors(tmp_path, tiny_model):
    with pytest.raises(ModelError, match="not found"):
        PisaModel(tmp_path / "nowhere", tiny_model["pkl"], device=TARGET.device)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="unet") as info:
        PisaModel(tmp_path / "empty", tiny_model["pkl"], device=TARGET.device)
    assert "diffusers" in str(info.value)
    with pytest.raises(ModelError, match="folder"):
        PisaModel(tiny_model["pkl"], tiny_model["pkl"], device=TARGET.device)
    with pytest.raises(ModelError, match="not found"):
        PisaModel(tiny_model["base"], tmp_path / "missing.pkl", device=TARGET.device)


def test_corrupt_unet_weights(tmp_path, tiny_model):
    base = tmp_path / "sd"
    shutil.copytree(tiny_model["base"], base)
    weights = next((base / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError) as info:
        PisaModel(base, tiny_model["pkl"], device=TARGET.device)
    assert "unet" in str(info.value.path)


def test_trained_timesteps_reach_the_ui(tmp_path, tiny_model):
    from desktop_sr.engine.backends.pisa.checkpoint import save_app

    ckpt = load_official(tiny_model["pkl"])
    ckpt.timesteps = (250, 500, 750)
    path = save_app(ckpt, tmp_path / "rcod.safetensors")
    session = PisaSession(PisaModel(tiny_model["base"], path, device=TARGET.device))
    assert session.info.trained_timesteps == (250, 500, 750)
    official = PisaSession(PisaModel(tiny_model["base"], tiny_model["pkl"], device=TARGET.device))
    assert official.info.trained_timesteps == (1,)  # records none: t = 1, other levels are experimental


def test_cli_warns_that_other_levels_are_experimental_for_t1_weights():
    from desktop_sr.cli.common import ignored_options
    from desktop_sr.engine.api import ModelInfo, RenderParams

    official = ModelInfo("pisa_sr", "pisa-sr", "cpu", "fp32", trained_timesteps=(1,))
    notes = ignored_options(official, RenderParams(realism=500))
    assert len(notes) == 1 and "experimental" in notes[0] and "t = 1 only" in notes[0]
    assert ignored_options(official, RenderParams()) == []
    grouped = ModelInfo("mine", "pisa-sr", "cpu", "fp32", trained_timesteps=(250, 500, 750))
    assert ignored_options(grouped, RenderParams(realism=500)) == []
    assert "trained for 250, 500, 750 only" in ignored_options(grouped, RenderParams(realism=600))[0]
