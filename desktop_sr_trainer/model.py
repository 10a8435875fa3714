"""The PiSA-SR networks for training, built from the engine's loaders and LoRA layout.

One UNet serves three roles, switched by peft adapter state rather than by copies of the weights (a second SD
UNet would cost another 1.7-3.5 GB): the generator with the pixel LoRA (stage 1) or pixel + semantic LoRA
(stage 2), and, with adapters disabled, the frozen base SD that CSD uses as its teacher. The generator computes
exactly what the app computes at inference (DESIGN.md section 2): z_H = z_L - eps(z_L, t, c), y = D(z_H).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from desktop_sr.engine.backends.pisa.checkpoint import BRANCHES, GROUPS, LoraCheckpoint, adapter_name
from desktop_sr.engine.backends.pisa.lora import attach_lora
from desktop_sr.engine.backends.pisa.model import check_base_folder, load_unet, load_vae, vae_force_upcast
from desktop_sr.engine.backends.pisa.training_support import checkpoint_from_unet, empty_checkpoint

from .config import Config


def _load_alphas_cumprod(base: Path) -> torch.Tensor:
    """The noise schedule of the base model's scheduler (SD-2.1: scaled_linear 0.00085..0.012, 1000 steps)."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_pretrained(str(base / "scheduler"))
    return sched.alphas_cumprod.to(torch.float32)


class TrainModel:
    """UNet + VAE on one device with both LoRA branches attached; only the current stage's branch trains."""

    def __init__(self, cfg: Config, device: torch.device, weight_dtype: torch.dtype) -> None:
        self.cfg = cfg
        self.device = device
        self.base = check_base_folder(cfg.model.base)
        unet = load_unet(self.base)
        self.template: LoraCheckpoint = empty_checkpoint(
            unet, rank_pix=cfg.model.rank_pix, rank_sem=cfg.model.rank_sem, alpha=cfg.model.lora_alpha,
            timesteps=cfg.trained_timesteps(), name=cfg.export.name,
        )  # fmt: skip
        unet.requires_grad_(False)
        attach_lora(unet, self.template, BRANCHES, load_weights=False)
        # LoRA tensors stay float32 (Adam on half-precision weights loses small updates); base weights may be cast
        for name, param in unet.named_parameters():
            if ".lora_" not in name and weight_dtype != torch.float32:
                param.data = param.data.to(weight_dtype)
        self.unet = unet.to(device)
        vae = load_vae(self.base)
        vae.requires_grad_(False).eval()
        vae = vae.to(device=device)
        # SD's VAE overflows fp16 (force_upcast), as the engine honours: it stays fp32 and runs outside the fp16
        # autocast (see encode/decode), or a NaN decode trains the adapters on a black image.
        self.vae_dtype = weight_dtype
        if weight_dtype == torch.float16 and vae_force_upcast(self.base):
            self.vae_dtype = torch.float32
        self.vae = vae if self.vae_dtype == torch.float32 else vae.to(dtype=self.vae_dtype)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.alphas_cumprod = _load_alphas_cumprod(self.base).to(device)
        if cfg.train.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            self.vae.enable_gradient_checkpointing()
        self.adapters = {b: [adapter_name(g, b) for g in GROUPS if self.template.modules[b][g]] for b in BRANCHES}
        self.stage = 0
        self._trainable: tuple[str, ...] = ()

    # -- adapters ------------------------------------------------------------------------------------------------
    def lora_params(self, branch: str) -> list[torch.nn.Parameter]:
        return [p for n, p in self.unet.named_parameters() if ".lora_" in n and n.endswith(f"_{branch}.weight")]

    def _apply_trainable(self) -> None:
        """peft flips requires_grad whenever adapters are (de)activated; put back exactly the stage's choice."""
        for branch in BRANCHES:
            for p in self.lora_params(branch):
                p.requires_grad_(branch in self._trainable)

    def _activate(self, branches: tuple[str, ...]) -> None:
        names = [a for b in branches for a in self.adapters[b]]
        self.unet.enable_adapters()
        self.unet.set_adapter(names)
        self._apply_trainable()

    def set_stage(self, stage: int) -> list[torch.nn.Parameter]:
        """Stage 1 trains the pixel LoRA alone; stage 2 the semantic LoRA on top of the frozen pixel LoRA."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, not {stage}")
        self.stage = stage
        self._trainable = ("pix",) if stage == 1 else ("sem",)
        self.unet.train()
        self._activate(("pix",) if stage == 1 else ("pix", "sem"))
        return self.lora_params(self._trainable[0])

    @contextlib.contextmanager
    def branch(self, which: str) -> Iterator[None]:
        """Temporarily run ``'pix'`` (W0 + dW_pix), ``'full'`` (+ dW_sem) or ``'base'`` (W0, the CSD teacher)."""
        active = list(self.unet.active_adapters()) if hasattr(self.unet, "active_adapters") else []
        try:
            if which == "base":
                self.unet.disable_adapters()
            else:
                self._activate(("pix",) if which == "pix" else ("pix", "sem"))
            yield
        finally:
            self.unet.enable_adapters()
            if active:
                self.unet.set_adapter(active)
            self._apply_trainable()

    # -- the PiSA-SR forward -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> scaled latent (distribution mode, as the app does)."""
        x = x.to(self.device, self.vae_dtype)
        with self._vae_precision():
            return (self.vae.encode(x).latent_dist.mode() * self.scaling_factor).float()

    def generate(self, z_l: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """z_H = z_L - eps(z_L, t, c) with the currently active adapters (differentiable)."""
        eps = self.unet(z_l, t.to(self.device), encoder_hidden_states=cond).sample
        return z_l - eps.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image in [-1, 1], differentiable through the frozen decoder (clamped like the reference)."""
        with self._vae_precision():
            return self.vae.decode((z / self.scaling_factor).to(self.vae_dtype)).sample.float().clamp(-1, 1)

    def _vae_precision(self) -> torch.autocast:
        """The VAE runs in its own dtype: an fp16 autocast around it would cast its convolutions back to fp16."""
        return torch.autocast(self.device.type, enabled=False)

    @torch.no_grad()
    def teacher_eps(self, z_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The frozen base SD (adapters off): the CSD teacher."""
        with self.branch("base"):
            return self.unet(z_t, t.to(self.device), encoder_hidden_states=emb).sample.float()

    def export_checkpoint(self) -> LoraCheckpoint:
        return checkpoint_from_unet(self.unet, self.template, timesteps=self.cfg.trained_timesteps())

    def lora_state(self) -> dict[str, torch.Tensor]:
        params = self.unet.named_parameters()
        return {n: p.detach().to("cpu", torch.float32).clone() for n, p in params if ".lora_" in n}

    def load_lora_state(self, state: dict[str, torch.Tensor]) -> None:
        params = {n: p for n, p in self.unet.named_parameters() if ".lora_" in n}
        missing = sorted(set(params) - set(state))
        if missing:
            raise KeyError(f"checkpoint lacks LoRA tensor {missing[0]}")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n].to(p.device, p.dtype))
