"""The two-stage training loop: data -> PiSA-SR forward -> stage loss -> AdamW step, with logs, grids, resume.

Steps are optimizer steps: each one accumulates gradients over ``grad_accum`` micro-batches of ``batch_size``
photos (4 x 4 = the published 16). Steps ``[0, stage1_steps)`` train the pixel LoRA, ``[stage1_steps, total)`` the
semantic LoRA; each stage has its own AdamW, created when the stage starts (the semantic LoRA's optimizer must not
inherit the pixel LoRA's moments). The learning rate, the stage, the data position and every random draw are
functions of the seed and the step or sample index, and checkpoints are only taken between optimizer steps, so a
run killed anywhere (even between two micro-batches) and resumed trains exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.hardware.device import device_traits, empty_cache, is_out_of_memory, select_device

from .checkpointing import TrainState, capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from .config import Config, to_toml
from .csd import CsdTerms, csd_loss
from .data import Batch, CaptionCount, PairDataset, batches, fixed_batch, mix_seed
from .export import export_adapters
from .ldg import LatentGrouping
from .losses import LossTerms, pixel_loss, semantic_loss
from .lpips_vgg import LpipsVGG, LpipsWeightsMissing, build_lpips
from .model import TrainModel
from .samples import save_grid
from .text import CaptionEncoder

log = logging.getLogger(__name__)
SAMPLE_INDEX_BASE = 10**12  # validation samples live far from the training stream's indices
OOM_ADVICE = (
    "lower train.batch_size (raise train.grad_accum to keep the effective batch), lower data.crop, keep "
    'train.gradient_checkpointing = true and use train.mixed_precision = "fp16" or "bf16"'
)


class TrainingError(RuntimeError):
    """A problem the user can fix (missing model, out of memory, bad data); the message says how."""


def resolve_mixed_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full float32 (always on the CPU: its half precision is slow)."""
    if setting == "no" or device.type == "cpu":
        return None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16":
        return torch.bfloat16
    if device.type == "cuda":  # native bf16 only (torch.cuda.is_bf16_supported() counts emulation on a T4)
        return torch.bfloat16 if device_traits(device).native_bf16 else torch.float16
    return torch.float16


class Trainer:
    """Owns the model, data, optimizer and run folder of one training run."""

    def __init__(self, cfg: Config, *, progress: bool = True, allow_random_lpips: bool = False) -> None:
        """``allow_random_lpips`` is for tests only: stage 2 may then run LPIPS with random weights (with a warning)
        instead of refusing to start without the two weight files."""
        self.cfg = cfg
        self.progress = progress
        self.allow_random_lpips = allow_random_lpips
        self.out = Path(cfg.train.output_dir)
        self.device = select_device(cfg.train.device)
        self.amp_dtype = resolve_mixed_precision(cfg.train.mixed_precision, self.device)
        torch.manual_seed(cfg.train.seed)
        try:
            self.model = TrainModel(cfg, self.device, self.amp_dtype or torch.float32)
            self.text = CaptionEncoder(Path(cfg.model.base), self.device, torch.float32)
        except ModelError as exc:
            raise TrainingError(
                f"base model: {exc}. Set model.base to a Stable Diffusion 2.1-base folder in diffusers layout "
                "(unet/, vae/, text_encoder/, tokenizer/, scheduler/), e.g. a download of "
                "stabilityai/stable-diffusion-2-1-base."
            ) from exc
        self.dataset = PairDataset(cfg.data, cfg.degradation, cfg.train.seed)
        self.ldg = LatentGrouping(cfg.ldg) if cfg.ldg.enabled else None
        self.lpips: LpipsVGG | None = None
        given = cfg.loss.lpips_vgg_weights and cfg.loss.lpips_lin_weights
        if self.needs_lpips and (given or allow_random_lpips):
            self.require_lpips()  # now, so a wrong file fails before any training; missing ones fail in run()
        self.empty_emb = self.text([""])
        self.negative_emb = self.text([cfg.csd.negative_prompt])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.elapsed = 0.0
        self.optimizer: torch.optim.Optimizer | None = None
        self.params: list[torch.nn.Parameter] = []
        self.opt_stage = 0

    # -- LPIPS -------------------------------------------------------------------------------------------------------
    @property
    def needs_lpips(self) -> bool:
        return self.cfg.train.stage2_steps > 0 and self.cfg.loss.lpips > 0

    def require_lpips(self) -> None:
        """Load LPIPS-VGG for stage 2, or stop with the names of the two weight files and where they come from."""
        if self.lpips is not None or not self.needs_lpips:
            return
        loss = self.cfg.loss
        try:
            net = build_lpips(loss.lpips_vgg_weights, loss.lpips_lin_weights, allow_random=self.allow_random_lpips)
        except LpipsWeightsMissing as exc:
            raise TrainingError(str(exc)) from None
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise TrainingError(f"cannot load the LPIPS weights: {exc}") from exc
        self.lpips = net.to(self.device)

    # -- stages and optimizer ----------------------------------------------------------------------------------------
    def stage_for(self, step: int) -> int:
        return 1 if step < self.cfg.train.stage1_steps else 2

    def ensure_stage(self, stage: int) -> None:
        if self.opt_stage == stage:
            return
        t = self.cfg.train
        self.params = self.model.set_stage(stage)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=t.lr, betas=(t.adam_betas[0], t.adam_betas[1]), eps=t.adam_eps, weight_decay=t.weight_decay
        )
        self.opt_stage = stage

    # -- checkpoints -----------------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.out / "checkpoints"

    def save(self) -> Path:
        assert self.optimizer is not None
        state = TrainState(
            step=self.step, stage=self.opt_stage, optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            ldg=self.ldg.state() if self.ldg else None, rng=capture_rng(), elapsed=self.elapsed,
            config=self.cfg.to_dict(),
        )  # fmt: skip
        return save_checkpoint(self.checkpoint_root, self.model.lora_state(), state, self.cfg.train.keep_checkpoints)

    def resume(self) -> Path | None:
        """Load the newest complete checkpoint, if any; returns its folder."""
        path = latest_checkpoint(self.checkpoint_root)
        if path is None:
            return None
        lora, state = load_checkpoint(path)
        self.model.load_lora_state(lora)
        self.step = state.step
        self.elapsed = state.elapsed
        stage = self.stage_for(self.step)
        self.ensure_stage(stage)
        if state.stage == stage:  # a checkpoint taken exactly at the stage boundary starts stage 2 afresh
            assert self.optimizer is not None
            self.optimizer.load_state_dict(state.optimizer)
        if state.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(state.scaler)
        if self.ldg is not None and state.ldg:
            self.ldg.load_state(state.ldg)
        restore_rng(state.rng)
        saved = state.config.get("train", {})
        before = int(saved.get("batch_size", 0)) * int(saved.get("grad_accum", 0))
        now = self.cfg.train.batch_size * self.cfg.train.grad_accum
        if before and before != now:
            log.warning(
                "%s was trained with %d photos per step, this run uses %d: the steps, the learning rate schedule "
                "and the data position continue by step count, so the effective batch changes from here on",
                path, before, now,
            )  # fmt: skip
        return path

    # -- one step ----------------------------------------------------------------------------------------------------
    def _autocast(self) -> torch.autocast:
        dtype = self.amp_dtype or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None)

    def unet_prompts(self, batch: Batch) -> list[str]:
        """The SR UNet's prompt: the caption, dropped to empty with probability null_text_ratio (per sample, seeded)."""
        out = []
        for caption, index in zip(batch.captions, batch.indices, strict=True):
            gen = torch.Generator().manual_seed(mix_seed(self.cfg.train.seed, index, 0x7E47))
            drop = float(torch.rand((), generator=gen)) < self.cfg.data.null_text_ratio
            out.append("" if drop else caption)
        return out

    def encode_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Latents, per-sample UNet timesteps (LDG or fixed) and prompt embeddings of one micro-batch."""
        b = batch.to(self.device)
        x_l, x_h = b.lq * 2 - 1, b.hr * 2 - 1
        with self._autocast():
            z_l = self.model.encode(x_l)
            out = {"x_l": x_l, "x_h": x_h, "z_l": z_l}
            if self.ldg is not None:
                out["m"], out["t"] = self.ldg.timesteps(z_l, self.model.encode(x_h))
            else:
                out["t"] = torch.full((z_l.shape[0],), self.cfg.model.unet_timestep, dtype=torch.long)
        out["cond"] = self.text(self.unet_prompts(batch))
        out["caption"] = self.text(batch.captions)
        return out

    def losses(self, enc: dict[str, torch.Tensor], step: int, micro: int) -> tuple[LossTerms, CsdTerms | None]:
        stage = self.model.stage
        with self._autocast():
            z_h = self.model.generate(enc["z_l"], enc["t"], enc["cond"])
            y = self.model.decode(z_h)
            if stage == 1:
                return pixel_loss(y, enc["x_h"], self.cfg.loss), None
            csd = None
            if self.cfg.loss.csd > 0:
                gen = torch.Generator().manual_seed(mix_seed(self.cfg.train.seed, step, micro, 0xC5D))
                b = z_h.shape[0]
                if self.ldg is not None:
                    t_r = self.ldg.das(enc["t"], gen)
                else:
                    t_r = torch.randint(self.cfg.csd.t_min, self.cfg.csd.t_max, (b,), generator=gen)
                noise = torch.randn(z_h.shape, generator=gen, dtype=torch.float32).to(self.device)
                csd = csd_loss(
                    z_h, self.model.teacher_eps, enc["caption"], self.negative_emb.expand(b, -1, -1),
                    self.model.alphas_cumprod, t_r.to(self.device), noise, self.cfg.csd.cfg,
                )  # fmt: skip
            return semantic_loss(y, enc["x_h"], csd, self.lpips, self.cfg.loss), csd

    def train_step(self, micro_batches: list[Batch]) -> dict[str, Any]:
        """One optimizer step over ``micro_batches`` (gradient accumulation); returns what the log records."""
        stage = self.stage_for(self.step)
        if stage == 2:
            self.require_lpips()
        self.ensure_stage(stage)
        assert self.optimizer is not None
        lr = self.cfg.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        parts: dict[str, float] = {}
        total = 0.0
        timesteps: list[int] = []
        csd_t: list[int] = []
        try:
            for micro, batch in enumerate(micro_batches):
                enc = self.encode_batch(batch)
                terms, csd = self.losses(enc, self.step, micro)
                self.scaler.scale(terms.total / len(micro_batches)).backward()
                total += float(terms.total.detach()) / len(micro_batches)
                for k, v in terms.parts.items():
                    parts[k] = parts.get(k, 0.0) + v / len(micro_batches)
                timesteps += enc["t"].tolist()
                if csd is not None:
                    csd_t += csd.timesteps.tolist()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        except (RuntimeError, MemoryError) as exc:
            if is_out_of_memory(exc) or isinstance(exc, MemoryError):
                self.optimizer.zero_grad(set_to_none=True)
                empty_cache(self.device)
                raise TrainingError(f"out of memory on {self.device} at step {self.step + 1}: {OOM_ADVICE}") from exc
            raise
        seconds = time.perf_counter() - started
        self.elapsed += seconds
        self.step += 1
        record: dict[str, Any] = {"step": self.step, "stage": stage, "loss": total, **parts,
                                  "grad_norm": float(grad_norm), "lr": self.optimizer.param_groups[0]["lr"],
                                  "seconds": round(seconds, 4), "t": timesteps}  # fmt: skip
        if csd_t:
            record["csd_t"] = csd_t
        return record

    # -- samples ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self) -> Path:
        """LQ / pixel / full / HR for fixed validation samples, at ``samples/step-NNNNNNN.png``."""
        n = max(1, self.cfg.train.sample_count)
        batch = fixed_batch(self.dataset, [SAMPLE_INDEX_BASE + i for i in range(n)])
        enc = self.encode_batch(batch)
        outs = {}
        was_training = self.model.unet.training
        self.model.unet.eval()
        try:
            for branch in ("pix", "full"):
                with self.model.branch(branch), self._autocast():
                    outs[branch] = self.model.decode(self.model.generate(enc["z_l"], enc["t"], self.empty_emb.expand(
                        enc["z_l"].shape[0], -1, -1)))  # fmt: skip
        finally:
            self.model.unet.train(was_training)
        to01 = lambda x: (x.float() + 1) / 2  # noqa: E731
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        return save_grid(path, batch.lq, to01(outs["pix"]), to01(outs["full"]), batch.hr)

    # -- LDG calibration -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate_ldg(self) -> None:
        """M_min / M_max over the first samples of the training stream (RCOD: the range over the training data)."""
        assert self.ldg is not None
        count = max(2, self.cfg.ldg.calibration_samples)
        values = []
        for start in range(0, count, self.cfg.train.batch_size):
            idx = list(range(start, min(count, start + self.cfg.train.batch_size)))
            b = fixed_batch(self.dataset, idx).to(self.device)
            with self._autocast():
                from .ldg import latent_cosine

                values.append(latent_cosine(self.model.encode(b.lq * 2 - 1), self.model.encode(b.hr * 2 - 1)).cpu())
        self.ldg.calibrate(torch.cat(values))
        log.info("LDG calibrated on %d samples: M in [%.4f, %.4f]", count, self.ldg.m_min, self.ldg.m_max)

    # -- the run -----------------------------------------------------------------------------------------------------
    def log_event(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"time": round(time.time(), 3), **record}
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _repair_log(self) -> None:
        """Drop a half-written last line left by a kill, so every line of log.jsonl stays valid JSON."""
        path = self.out / "log.jsonl"
        if not path.is_file():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])

    def report_captions(self) -> CaptionCount:
        """Say how many photos have a caption; below half, warn that CSD then loses its semantic condition."""
        count = self.dataset.caption_count()
        log.info("%d of %d training photos have a caption (%d from their own .txt, %d from data.default_caption)",
                 count.captioned, count.photos, count.own, count.default)  # fmt: skip
        uses_csd = self.cfg.train.stage2_steps > 0 and self.cfg.loss.csd > 0
        if uses_csd and count.captioned * 2 < count.photos:
            log.warning(
                "only %d of %d training photos have a caption: for the others CSD runs without a semantic condition "
                "(the official training tags every crop, so its condition is never empty; with an empty one CSD only "
                "pushes away from the negative prompt). Add captions: a .txt beside each photo with a few words or "
                "tags (beach.jpg + beach.txt), or one caption for all the others with data.default_caption in the "
                "config.", count.captioned, count.photos,
            )  # fmt: skip
        return count

    def run(self, *, fresh: bool = False, export: bool = True) -> list[Path]:
        """Train to the configured step count (resuming unless ``fresh``), then export. Returns exported files."""
        cfg = self.cfg
        self.require_lpips()  # refuse before stage 1, not hours later when stage 2 begins
        self.out.mkdir(parents=True, exist_ok=True)
        self._repair_log()
        (self.out / "config.toml").write_text(to_toml(cfg), encoding="utf-8")
        resumed = None if fresh else self.resume()
        if self.ldg is not None and not self.ldg.calibrated:
            self.calibrate_ldg()
        total = cfg.total_steps
        captions = self.report_captions()
        self.log_event({"event": "resume" if resumed else "start", "step": self.step, "total": total,
                        "device": str(self.device), "checkpoint": str(resumed) if resumed else None,
                        "effective_batch": cfg.train.batch_size * cfg.train.grad_accum,
                        "captions": {"photos": captions.photos, "own": captions.own, "default": captions.default},
                        **({"ldg": self.ldg.state()} if self.ldg else {})})  # fmt: skip
        per_step = cfg.train.batch_size * cfg.train.grad_accum
        data = batches(self.dataset, cfg.train.batch_size, self.step * per_step, cfg.data.num_workers)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=self.step, desc="training", unit="step", dynamic_ncols=True)
        try:
            while self.step < total:
                record = self.train_step([next(data) for _ in range(cfg.train.grad_accum)])
                if self.step % cfg.train.log_every == 0 or self.step == total:
                    self.log_event({"event": "step", **record})
                if bar is not None:
                    bar.update(1)
                    shown = {k: f"{record[k]:.4g}" for k in ("loss", "mse", "lpips", "csd") if k in record}
                    bar.set_postfix(stage=record["stage"], **shown)
                if self.step % cfg.train.sample_every == 0:
                    self.sample_grid()
                if self.step % cfg.train.checkpoint_every == 0 and self.step < total:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
            del data
        if self.optimizer is None:  # nothing left to train (e.g. a finished run started again)
            self.ensure_stage(self.stage_for(max(0, total - 1)))
        self.save()
        self.sample_grid()
        paths: list[Path] = []
        if export:
            paths = self.export()
        self.log_event({"event": "done", "step": self.step, "elapsed": round(self.elapsed, 2),
                        "export": [str(p) for p in paths]})  # fmt: skip
        return paths

    def export(self) -> list[Path]:
        folder = Path(self.cfg.export.folder) if self.cfg.export.folder else self.out / "export"
        ckpt = self.model.export_checkpoint()
        return export_adapters(ckpt, folder, self.cfg.export.name, self.cfg.export.official_pkl)
