"""The training loop on a tiny random SD: stage isolation, overfitting, export into the engine, LDG, kill + resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from device_target import TARGET
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.checkpoint import load_checkpoint as load_lora
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import load_pisa_session
from desktop_sr_trainer.checkpointing import latest_checkpoint, load_checkpoint
from desktop_sr_trainer.cli import main as cli_main
from desktop_sr_trainer.config import load_config
from desktop_sr_trainer.data import PairDataset, fixed_batch
from desktop_sr_trainer.ldg import group_timesteps, latent_cosine
from desktop_sr_trainer.loop import Trainer, TrainingError
from desktop_sr_trainer.model import TrainModel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small photo-like images (two with captions, one in a subfolder) and one unreadable file."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        yy, xx = np.mgrid[0:72, 0:88].astype(np.float32)
        img = np.stack([np.sin(xx / (2 + i)) * 0.4 + 0.5, np.cos(yy / (3 + i)) * 0.4 + 0.5, rng.random((72, 88))], -1)
        path = (folder / "sub" if i == 5 else folder) / f"photo{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        if i < 2:
            path.with_suffix(".txt").write_text("striped fabric, close-up\n", encoding="utf-8")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG file")
    return folder


def write_config(path: Path, base: Path, photos: Path, out: Path, **sections: dict[str, object]) -> Path:
    """A tiny-but-complete config: 32 px crops, batch 2 without accumulation, other settings overridable per test."""
    cfg: dict[str, dict[str, object]] = {
        "model": {"base": str(base)},
        "data": {"folders": [str(photos)], "crop": 32, "num_workers": 0},
        "train": {"output_dir": str(out), "stage1_steps": 2, "stage2_steps": 2, "batch_size": 2, "grad_accum": 1,
                  "seed": 7, "sample_every": 1000, "sample_count": 2, "checkpoint_every": 1000, "device": "cpu"},
        "ldg": {"calibration_samples": 6},
    }  # fmt: skip
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    lines = []
    for name, values in cfg.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_trainer(tmp_path: Path, tiny_model: dict[str, Path], photos: Path, **sections: dict[str, object]) -> Trainer:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(tmp_path / "cfg.toml", tiny_model["base"], photos, tmp_path / "run", **sections))
    with pytest.warns(RuntimeWarning, match="RANDOM weights"):
        return Trainer(cfg, progress=False, allow_random_lpips=True)


def test_dataset_crops_captions_and_skips_unreadable_files(photos):
    cfg = load_config(write_config(photos.parent / "d.toml", Path("sd"), photos, photos.parent / "r"))
    ds = PairDataset(cfg.data, cfg.degradation, seed=1)
    assert len(ds) == 7  # recursive, includes the broken file until it is tried
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        samples = [ds[i] for i in range(7)]
    assert {Path(s.path).name for s in samples} >= {f"photo{i}.png" for i in range(6)}
    assert all(s.hr.shape == (3, 32, 32) and s.lq.shape == (3, 32, 32) for s in samples)
    captions = {Path(s.path).name: s.caption for s in samples}
    assert captions["photo0.png"] == "striped fabric, close-up" and captions["photo3.png"] == ""
    again = PairDataset(cfg.data, cfg.degradation, seed=1)[3]
    assert torch.equal(again.hr, samples[3].hr) and torch.equal(again.lq, samples[3].lq)


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], branch: str) -> int:
    return sum(not torch.equal(before[k], after[k]) for k in before if k.endswith(f"_{branch}.weight"))


def test_stage1_updates_only_pixel_and_stage2_only_semantic_lora(tmp_path, tiny_model, photos):
    trainer = make_trainer(tmp_path, tiny_model, photos)
    batch = fixed_batch(trainer.dataset, [0, 1])
    before = trainer.model.lora_state()
    trainer.train_step([batch])  # step 0: stage 1
    mid = trainer.model.lora_state()
    assert _changed(before, mid, "pix") > 0 and _changed(before, mid, "sem") == 0
    trainer.step = trainer.cfg.train.stage1_steps  # jump to the semantic stage
    record = trainer.train_step([batch])
    after = trainer.model.lora_state()
    assert record["stage"] == 2 and {"mse", "lpips", "csd"} <= set(record)
    assert all(20 <= t < 500 for t in record["csd_t"])
    assert _changed(mid, after, "sem") > 0 and _changed(mid, after, "pix") == 0


def test_a_few_dozen_steps_on_a_fixed_batch_lower_the_loss(tmp_path, tiny_model, photos):
    trainer = make_trainer(tmp_path, tiny_model, photos, train={"lr": 2e-3, "stage1_steps": 40})
    batch = fixed_batch(trainer.dataset, [0, 1])
    losses = [trainer.train_step([batch])["loss"] for _ in range(30)]
    # the tiny random VAE cannot reconstruct, so most of the loss is out of the LoRA's reach: a 15 % drop is learning
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])


def test_exported_adapters_open_in_the_engine_and_change_the_result(tmp_path, tiny_model, photos):
    untrained = make_trainer(tmp_path / "a", tiny_model, photos).export()
    trainer = make_trainer(tmp_path / "b", tiny_model, photos, train={"lr": 2e-3})
    batch = fixed_batch(trainer.dataset, [0, 1])
    for _ in range(3):
        trainer.train_step([batch])
    trainer.step = trainer.cfg.train.stage1_steps
    for _ in range(2):
        trainer.train_step([batch])
    paths = trainer.export()
    assert {p.suffix for p in paths} == {".safetensors", ".json", ".pkl"}
    manifest = json.loads(paths[1].read_text())
    assert manifest["timesteps"] == [1] and manifest["alphas"] == {"pix": 8.0, "sem": 8.0}

    photo = np.asarray(Image.open(photos / "photo2.png").convert("RGB"), dtype=np.float32)[:16, :16] / 255.0
    outs = {}
    for name, path in (("untrained", untrained[0]), ("trained", paths[0]), ("pkl", paths[2])):
        session = load_pisa_session(tiny_model["base"], path, device=TARGET.device)
        session.set_photo(photo)
        outs[name] = session.render(RenderParams(color_fix="none"))
        outs[name + "_pix"] = session.render(RenderParams(sem=0.0, color_fix="none"))
    assert np.abs(outs["trained"] - outs["untrained"]).max() > 1e-3
    assert np.abs(outs["trained"] - outs["trained_pix"]).max() > 1e-4  # the semantic LoRA does something
    assert np.array_equal(outs["trained"], outs["pkl"])  # both formats hold the same adapters


def test_ldg_assigns_group_timesteps_and_exports_the_realism_levels(tmp_path, tiny_model, photos):
    trainer = make_trainer(tmp_path, tiny_model, photos, ldg={"enabled": True})
    trainer.calibrate_ldg()
    assert trainer.ldg is not None and trainer.ldg.m_min < trainer.ldg.m_max
    batch = fixed_batch(trainer.dataset, [0, 1, 2, 3])
    enc = trainer.encode_batch(batch)
    z_hr = trainer.model.encode(batch.hr * 2 - 1)
    m = latent_cosine(enc["z_l"], z_hr)
    assert enc["t"].tolist() == group_timesteps(m, trainer.ldg.m_min, trainer.ldg.m_max).tolist()
    trainer.step = trainer.cfg.train.stage1_steps
    record = trainer.train_step([fixed_batch(trainer.dataset, [0, 1])])
    for t, tr in zip(record["t"], record["csd_t"], strict=True):
        assert t in (250, 500, 750) and max(20, t - 250) <= tr <= min(980, t + 250)
    manifest = json.loads(trainer.export()[1].read_text())
    assert manifest["timesteps"] == [250, 500, 750]


def test_missing_base_model_is_a_clear_error(tmp_path, photos):
    cfg = load_config(write_config(tmp_path / "c.toml", tmp_path / "nowhere", photos, tmp_path / "run"))
    with pytest.raises(TrainingError, match="model.base"):
        Trainer(cfg, progress=False)
    assert cli_main([str(tmp_path / "c.toml"), "--no-progress"]) == 1
    assert cli_main([str(tmp_path / "missing.toml")]) == 2


def _steps(log: Path) -> list[dict]:
    """Complete JSON lines of a log that may be mid-write."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def test_kill_and_resume_continues_from_the_checkpoint_with_the_same_optimizer_state(tmp_path, tiny_model, photos):
    out = tmp_path / "run"
    cfg_path = write_config(tmp_path / "cfg.toml", tiny_model["base"], photos, out,
                            train={"stage1_steps": 400, "stage2_steps": 0, "checkpoint_every": 4})  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_sr_trainer", str(cfg_path), "--no-progress"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        log_path = out / "log.jsonl"
        # kill two steps after the step-4 checkpoint: the resume must go back and retrace steps 5 and 6
        while not (log_path.is_file() and any(r.get("step") == 6 and r["event"] == "step" for r in _steps(log_path))):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "trainer exited"
            assert time.monotonic() < deadline, "the trainer did not reach step 6 within 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt is not None
    _, saved = load_checkpoint(ckpt)
    killed_log = {r["step"]: r for r in _steps(out / "log.jsonl") if r["event"] == "step"}

    cfg = load_config(cfg_path)
    cfg.train.stage1_steps = saved.step + 3  # a short continuation is enough to compare
    trainer = Trainer(cfg, progress=False)  # no semantic stage: no LPIPS, no warning
    assert trainer.resume() == ckpt and trainer.step == saved.step
    assert trainer.optimizer is not None
    state = trainer.optimizer.state_dict()
    assert state["param_groups"] == saved.optimizer["param_groups"]
    for key, value in saved.optimizer["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(state["state"][key][name]), torch.as_tensor(value[name]))
    trainer.run(export=False)
    log = _steps(out / "log.jsonl")
    resume_at = max(i for i, r in enumerate(log) if r["event"] == "resume")
    assert log[resume_at]["step"] == saved.step
    resumed = [r for r in log[resume_at:] if r["event"] == "step"]
    assert [r["step"] for r in resumed] == [saved.step + 1, saved.step + 2, saved.step + 3]
    retraced = [r for r in resumed if r["step"] in killed_log]
    assert retraced, "the killed run should have logged steps past its checkpoint"
    for r in retraced:  # where the killed run got further, the resumed run retraces it exactly
        assert r["loss"] == pytest.approx(killed_log[r["step"]]["loss"], rel=1e-4)


# -- the published recipe: refusals, captions, accumulation, export, consistency with the app ----------------------
def test_stage2_refuses_to_start_without_the_lpips_weights(tmp_path, tiny_model, photos, capsys):
    cfg_path = write_config(tmp_path / "c.toml", tiny_model["base"], photos, tmp_path / "run")
    trainer = Trainer(load_config(cfg_path), progress=False)  # constructing is fine: --export-only needs no LPIPS
    with pytest.raises(TrainingError) as err:
        trainer.run(export=False)
    message = str(err.value)
    for needed in ("loss.lpips_vgg_weights", "vgg16-397923af.pth", "download.pytorch.org", "loss.lpips_lin_weights",
                   "lpips/weights/v0.1/vgg.pth", "pip download lpips"):  # fmt: skip
        assert needed in message
    assert trainer.step == 0 and not (tmp_path / "run" / "checkpoints").exists()  # refused before stage 1
    trainer.step = trainer.cfg.train.stage1_steps  # and stage 2 itself will not start either
    with pytest.raises(TrainingError, match="vgg16-397923af.pth"):
        trainer.train_step([fixed_batch(trainer.dataset, [0, 1])])
    assert cli_main([str(cfg_path), "--no-progress"]) == 1
    err_text = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err_text and "Traceback" not in err_text
    # a weight file that is named but missing is as clear, and stops before any training
    missing = {"lpips_vgg_weights": "nowhere/vgg16.pth", "lpips_lin_weights": "nowhere/vgg.pth"}
    bad = write_config(tmp_path / "bad.toml", tiny_model["base"], photos, tmp_path / "run2", loss=missing)
    with pytest.raises(TrainingError, match="LPIPS weight file not found"):
        Trainer(load_config(bad), progress=False)


def test_captions_are_counted_at_start_and_a_shortage_is_explained(tmp_path, tiny_model, photos, caplog):
    trainer = make_trainer(tmp_path / "a", tiny_model, photos, train={"stage1_steps": 0, "stage2_steps": 1})
    with caplog.at_level(logging.INFO, logger="desktop_sr_trainer.loop"):
        trainer.run(export=False)
    text = caplog.text
    assert "2 of 7 training photos have a caption" in text  # 2 .txt files; the unreadable file counts as a photo
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "caption" in r.msg)
    assert "CSD runs without a semantic condition" in warning
    assert ".txt beside each photo" in warning and "data.default_caption" in warning
    start = next(r for r in _steps(tmp_path / "a" / "run" / "log.jsonl") if r["event"] == "start")
    assert start["captions"] == {"photos": 7, "own": 2, "default": 0} and start["effective_batch"] == 2

    captioned = make_trainer(tmp_path / "b", tiny_model, photos, train={"stage1_steps": 0, "stage2_steps": 1},
                             data={"default_caption": "  a close-up photograph  "})  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="desktop_sr_trainer.loop"):
        count = captioned.report_captions()
    assert (count.own, count.default) == (2, 5) and "7 of 7 training photos" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        samples = {Path(s.path).name: s.caption for s in (captioned.dataset[i] for i in range(7))}
    assert samples["photo3.png"] == "a close-up photograph" and samples["photo0.png"] == "striped fabric, close-up"


def test_gradient_accumulation_averages_like_one_larger_batch(tmp_path, tiny_model, photos):
    accumulated = make_trainer(tmp_path / "a", tiny_model, photos, train={"batch_size": 1, "grad_accum": 2})
    one_batch = make_trainer(tmp_path / "b", tiny_model, photos, train={"batch_size": 2, "grad_accum": 1})
    ra = accumulated.train_step([fixed_batch(accumulated.dataset, [0]), fixed_batch(accumulated.dataset, [1])])
    rb = one_batch.train_step([fixed_batch(one_batch.dataset, [0, 1])])
    assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
    assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-4)  # a mean, not a sum of the micro-batches
    a, b = accumulated.model.lora_state(), one_batch.model.lora_state()
    assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)


class _Killed(Exception):
    """Stands for a kill between two micro-batches of one optimizer step."""


def test_resume_with_gradient_accumulation_matches_an_uninterrupted_run(tmp_path, tiny_model, photos):
    settings = {"train": {"batch_size": 1, "grad_accum": 2, "stage1_steps": 1, "stage2_steps": 2, "sample_count": 1,
                          "checkpoint_every": 1, "lr_schedule": "linear", "lr_warmup_steps": 1}}  # fmt: skip
    straight = make_trainer(tmp_path / "a", tiny_model, photos, **settings)
    straight.run(export=False)

    killed = make_trainer(tmp_path / "b", tiny_model, photos, **settings)
    calls = {"n": 0}
    real_losses = killed.losses

    def losses_then_kill(*args, **kwargs):  # noqa: ANN202
        calls["n"] += 1
        if calls["n"] == 6:  # step 3, second micro-batch: mid-accumulation, one step into stage 2's optimizer
            raise _Killed
        return real_losses(*args, **kwargs)

    killed.losses = losses_then_kill  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        killed.run(export=False)
    assert latest_checkpoint(tmp_path / "b" / "run" / "checkpoints").name == "step-0000002"

    resumed = make_trainer(tmp_path / "b", tiny_model, photos, **settings)
    resumed.run(export=False)
    final_a, final_b = straight.model.lora_state(), resumed.model.lora_state()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    _, state_a = load_checkpoint(latest_checkpoint(tmp_path / "a" / "run" / "checkpoints"))
    _, state_b = load_checkpoint(latest_checkpoint(tmp_path / "b" / "run" / "checkpoints"))
    assert (state_a.step, state_a.stage) == (state_b.step, state_b.stage) == (3, 2)
    for key, value in state_a.optimizer["state"].items():
        assert float(state_b.optimizer["state"][key]["step"]) == float(value["step"]) == 2  # stage 2's own count
        assert torch.equal(state_b.optimizer["state"][key]["exp_avg_sq"], value["exp_avg_sq"])
    log_a = [r for r in _steps(tmp_path / "a" / "run" / "log.jsonl") if r["event"] == "step"]
    log_b = [r for r in _steps(tmp_path / "b" / "run" / "log.jsonl") if r["event"] == "step"]
    assert [r["step"] for r in log_b] == [1, 2, 3]  # the interrupted step 3 was never logged, then redone
    for ra, rb in zip(log_a, log_b, strict=True):
        assert rb["loss"] == ra["loss"] and rb["lr"] == ra["lr"] == straight.cfg.lr_at(ra["step"] - 1)
        assert len(ra["t"]) == 2  # batch_size x grad_accum samples per optimizer step
    assert [r["lr"] for r in log_a] == pytest.approx([5e-5, 5e-5, 2.5e-5])


def test_an_ldg_model_with_its_own_alpha_round_trips_through_the_pkl(tmp_path, tiny_model, photos):
    trainer = make_trainer(tmp_path, tiny_model, photos, ldg={"enabled": True}, model={"lora_alpha": 4.0})
    trainer.calibrate_ldg()
    trainer.train_step([fixed_batch(trainer.dataset, [0, 1])])
    st, _, pkl = trainer.export()
    raw = torch.load(pkl, map_location="cpu", weights_only=True)
    assert raw["lora_alpha"] == 4.0 and raw["timesteps"] == [250, 500, 750]
    from_pkl, from_st = load_lora(pkl), load_lora(st)
    assert from_pkl.timesteps == (250, 500, 750) and from_pkl.scale("pix") == from_pkl.scale("sem") == 1.0
    assert from_pkl.fingerprint() == from_st.fingerprint()  # the same model, whichever file the app is given
    session = load_pisa_session(tiny_model["base"], pkl, device=TARGET.device)
    assert tuple(session.info.trained_timesteps) == (250, 500, 750)  # the realism levels the app offers


def test_the_trainers_one_step_prediction_is_what_the_app_computes(tmp_path, tiny_model, photos):
    """Same t, z_L, prompt embedding and adapters: the trainer's z_L - eps (peft adapters, both branches live) equals
    the engine's (pixel LoRA merged into the weights, semantic LoRA as an adapter), for both branches."""
    cfg = load_config(write_config(tmp_path / "c.toml", tiny_model["base"], photos, tmp_path / "run",
                                   model={"lora_alpha": 6.0}))  # fmt: skip
    model = TrainModel(cfg, torch.device("cpu"), torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # "trained" adapters: peft starts with B = 0, which would make both sides trivially equal
        for name, param in model.unet.named_parameters():
            if ".lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    engine = PisaModel(tiny_model["base"], model.export_checkpoint(), **TARGET.model_kwargs())
    model.set_stage(2)
    x_l = torch.rand((2, 3, 32, 32), generator=gen) * 2 - 1
    cond = torch.randn((1, 77, model.unet.config.cross_attention_dim), generator=gen)
    z_l = model.encode(x_l)
    assert torch.allclose(z_l, engine.encode(x_l), atol=1e-5)
    results = {}
    for t in (1, 500):
        for branch in ("pix", "full"):
            with torch.no_grad(), model.branch(branch):
                z_h = model.generate(z_l, torch.full((2,), t), cond.expand(2, -1, -1))
                y = model.decode(z_h)
            expected = z_l - engine.eps(z_l, t, cond, branch)
            assert torch.allclose(z_h, expected, rtol=1e-4, atol=1e-5), (t, branch)
            assert torch.allclose(y, engine.decode(expected), atol=1e-4), (t, branch)
            results[t, branch] = z_h
    assert not torch.allclose(results[1, "pix"], results[1, "full"], atol=1e-3)  # the semantic LoRA acts
    assert not torch.allclose(results[1, "full"], results[500, "full"], atol=1e-3)  # and t reaches the UNet
