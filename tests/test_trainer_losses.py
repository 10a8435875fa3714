"""CSD against a hand computation, LDG/DAS timesteps against RCOD's formulas, LPIPS-VGG, and the config file."""

from __future__ import annotations

import math

import pytest
import torch

from desktop_sr_trainer.config import ConfigError, from_dict, load_config, to_toml
from desktop_sr_trainer.csd import csd_loss
from desktop_sr_trainer.ldg import LatentGrouping, das_timesteps, group_timesteps, latent_cosine
from desktop_sr_trainer.lpips_vgg import LpipsVGG, LpipsWeightsMissing, build_lpips


def sd_alphas_cumprod() -> torch.Tensor:
    """SD-2.1's schedule written out by hand: scaled_linear betas 0.00085..0.012 over 1000 steps."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def test_csd_gradient_matches_the_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    b, c, h, w = 2, 4, 3, 5
    z_h = torch.randn((b, c, h, w), generator=g).requires_grad_(True)
    noise = torch.randn((b, c, h, w), generator=g)
    t = torch.tensor([37, 411])
    cond, uncond = torch.full((b, 7, 8), 0.3), torch.full((b, 7, 8), -0.2)
    mix = torch.randn((c, c), generator=g)

    def teacher(z_t: torch.Tensor, ts: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """A fixed stand-in for the SD UNet: depends on the latent, the timestep and the prompt."""
        return torch.einsum("dc,bchw->bdhw", mix, z_t) * (ts.float() / 1000).view(-1, 1, 1, 1) + emb.mean(
            dim=(1, 2)
        ).view(-1, 1, 1, 1)

    acp = sd_alphas_cumprod()
    terms = csd_loss(z_h, teacher, cond, uncond, acp, t, noise, cfg=7.5)
    terms.loss.backward()

    # by hand, one sample at a time, straight from DESIGN.md section 5
    zd = z_h.detach()
    expected = torch.empty_like(zd)
    for i in range(b):
        a = float(acp[t[i]])
        z_t = math.sqrt(a) * zd[i : i + 1] + math.sqrt(1 - a) * noise[i : i + 1]
        e_u = teacher(z_t, t[i : i + 1], uncond[i : i + 1])
        e_c = teacher(z_t, t[i : i + 1], cond[i : i + 1])
        e_cfg = e_u + 7.5 * (e_c - e_u)
        x0_cfg = (z_t - math.sqrt(1 - a) * e_cfg) / math.sqrt(a)
        x0_u = (z_t - math.sqrt(1 - a) * e_u) / math.sqrt(a)
        grad = (x0_u - x0_cfg) / (zd[i : i + 1] - x0_cfg).abs().mean()
        expected[i] = grad[0]
    # loss = MSE(z_H, stopgrad(z_H - grad)) = mean(grad^2); d loss / d z_H = 2 grad / numel
    assert torch.allclose(terms.grad, expected, atol=1e-5)
    assert float(terms.loss.detach()) == pytest.approx(float((expected**2).mean()), rel=1e-5)
    assert torch.allclose(z_h.grad, 2 * expected / expected.numel(), atol=1e-7)


def test_ldg_timesteps_follow_rcod_eq5_on_constructed_latents():
    """Latents built so that cos(z_L, z_HR) takes chosen values; t = k (n - floor(n (M - Mmin) / (Mmax - Mmin)))."""
    wanted = torch.tensor([0.2, 0.35, 0.45, 0.6, 0.72, 0.9, 1.0], dtype=torch.float64)
    e1 = torch.zeros(4, 8, 8, dtype=torch.float64)
    e1[0] = 1.0
    e2 = torch.zeros_like(e1)
    e2[1] = 1.0
    z_hr = torch.stack([e1 * 3.0] * len(wanted))
    z_l = torch.stack([m * e1 + math.sqrt(1 - m * m) * e2 for m in wanted.tolist()]) * 0.7
    m = latent_cosine(z_l, z_hr).double()
    assert torch.allclose(m, wanted, atol=1e-6)

    grouping = LatentGrouping(from_dict({"ldg": {"enabled": True}}).ldg)
    grouping.calibrate(m)
    assert grouping.m_min == pytest.approx(0.2) and grouping.m_max == pytest.approx(1.0)
    _, t = grouping.timesteps(z_l, z_hr)
    by_hand = [250 * (3 - min(2, math.floor(3 * (v - 0.2) / 0.8))) for v in wanted.tolist()]
    assert t.tolist() == by_hand == [750, 750, 750, 500, 500, 250, 250]
    # with k = 100, n = 4 the same rule gives four groups
    t4 = group_timesteps(wanted, 0.2, 1.0, k=100, n=4)
    assert t4.tolist() == [400, 400, 300, 300, 200, 100, 100]


def test_das_draws_within_rcod_eq7_bounds_and_reaches_both_ends():
    g = torch.Generator().manual_seed(0)
    for t_val, lo, hi in ((250, 20, 500), (500, 250, 750), (750, 500, 980)):
        t = torch.full((4000,), t_val)
        tr = das_timesteps(t, g, k=250, low=20, high=980)
        assert int(tr.min()) == lo and int(tr.max()) == hi


def test_lpips_is_zero_for_identical_images_and_loads_both_weight_files(tmp_path):
    net = LpipsVGG()
    x = torch.rand((2, 3, 32, 32)) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.allclose(net(x, x), torch.zeros(2), atol=1e-6)
    # files laid out like torchvision's vgg16 state dict and lpips' vgg.pth
    src = LpipsVGG()
    torch.nn.init.uniform_(src.lins[0].model[1].weight, 0.5, 1.0)
    vgg = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # the classifier is ignored
    lin = {f"lin{i}.model.1.weight": src.lins[i].model[1].weight.detach().clone() for i in range(5)}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    loaded = build_lpips(str(tmp_path / "vgg16.pth"), str(tmp_path / "vgg.pth"))
    assert loaded.pretrained
    assert torch.allclose(loaded(x, y), src(x, y))
    assert float(loaded(x, y).min()) > 0


def test_lpips_without_weights_is_refused_unless_a_test_opts_in():
    with pytest.raises(LpipsWeightsMissing, match="vgg16-397923af.pth.*vgg.pth") as err:
        build_lpips("weights/vgg16-397923af.pth", "")
    assert "loss.lpips_lin_weights is not set" in str(err.value) and "lpips_vgg_weights is" not in str(err.value)
    with pytest.warns(RuntimeWarning, match="RANDOM weights"):
        assert not build_lpips("", "", allow_random=True).pretrained


def test_config_defaults_are_pisa_sr_and_errors_name_the_key(tmp_path):
    cfg = from_dict({})
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.grad_clip) == (5e-5, 4, 1.0)
    assert (cfg.loss.mse, cfg.loss.lpips, cfg.loss.csd, cfg.csd.cfg) == (1.0, 2.0, 1.0, 7.5)
    assert (cfg.csd.t_min, cfg.csd.t_max, cfg.model.lora_alpha, cfg.data.crop) == (20, 500, 8.0, 512)
    assert cfg.trained_timesteps() == (1,)
    assert from_dict({"ldg": {"enabled": True}}).trained_timesteps() == (250, 500, 750)
    with pytest.raises(ConfigError, match="train.stage1_step"):
        from_dict({"train": {"stage1_step": 10}})
    with pytest.raises(ConfigError, match="train.lr must be a number"):
        from_dict({"train": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="data.crop"):
        from_dict({"data": {"crop": 100}})
    # a written config reads back identically; relative paths resolve against the file's folder
    path = tmp_path / "c.toml"
    path.write_text(to_toml(from_dict({"model": {"base": "sd"}, "data": {"folders": ["photos"]}})), encoding="utf-8")
    back = load_config(path)
    assert back.model.base == str(tmp_path / "sd") and back.data.folders == [str(tmp_path / "photos")]
    assert back.degradation == cfg.degradation and back.loss == cfg.loss
    assert back.train.output_dir == str(tmp_path / "runs" / "pisa-sr")


def test_the_example_config_is_valid_and_spells_out_the_defaults():
    from pathlib import Path

    example = load_config(Path(__file__).resolve().parents[1] / "examples" / "train_config.toml")
    defaults = from_dict({})
    assert example.degradation == defaults.degradation and example.csd == defaults.csd and example.ldg.k == 250
    assert (example.train.lr, example.train.batch_size, example.train.stage1_steps) == (5e-5, 4, 4000)
    assert example.loss.lpips_vgg_weights.endswith("vgg16-397923af.pth")


def test_the_readme_config_loads(tmp_path):
    """The config printed in the README is what a user copies first: it must load as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks, "the README lost its example training config"
    path = tmp_path / "config.toml"
    path.write_text(blocks[0], encoding="utf-8")
    cfg = load_config(path)
    assert cfg.ldg.enabled and cfg.export.name == "collection-pisa-sr"
    assert cfg.data.folders == [str(tmp_path / "photos" / "collection-a"), str(tmp_path / "photos" / "collection-b")]
