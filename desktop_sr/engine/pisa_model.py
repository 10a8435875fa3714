"""The PiSA-SR model: SD-2.1-base UNet + VAE from a diffusers folder with the pixel and semantic LoRA.

Inference keeps the pixel LoRA merged into the base weights and the semantic LoRA as a peft adapter, so
``eps_pix`` is a UNet pass with adapters disabled and ``eps_full`` the same pass with them enabled
(W0 + dW_pix + dW_sem). No other copy of the weights is held.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from .checkpoint import LoraCheckpoint, load_checkpoint
from .device import dtype_name, select_device, select_dtype
from .errors import ModelError
from .lora import apply_base_overrides, attach_lora, merge_branch
from .prompt import PromptEmbeddings

log = logging.getLogger(__name__)


def check_base_folder(base_dir: str | Path) -> Path:
    """A diffusers SD folder must hold at least ``unet/`` and ``vae/`` with their configs."""
    root = Path(base_dir)
    if not root.exists():
        raise ModelError(root, "base model folder not found")
    if not root.is_dir():
        raise ModelError(root, "the base model must be a folder in diffusers layout (unet/, vae/, text_encoder/, ...)")
    for sub in ("unet", "vae"):
        cfg = root / sub / "config.json"
        if not cfg.is_file():
            raise ModelError(root / sub, "missing or has no config.json: not a diffusers Stable Diffusion folder")
    return root


def load_unet(root: Path) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    try:
        return UNet2DConditionModel.from_pretrained(str(root / "unet"), torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, EnvironmentError) as exc:  # noqa: UP024 - diffusers raises either
        raise ModelError(root / "unet", f"cannot load the UNet ({exc})") from exc


def load_vae(root: Path) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    try:
        return AutoencoderKL.from_pretrained(str(root / "vae"), torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(root / "vae", f"cannot load the VAE ({exc})") from exc


def _to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move without a dtype cast when none is needed (diffusers warns on every cast)."""
    module = module.to(device=device)
    return module if dtype == torch.float32 else module.to(dtype=dtype)


def _base_fingerprint(root: Path) -> str:
    h = hashlib.sha256(str(root.resolve()).encode())
    for sub in ("unet", "vae"):
        for f in sorted((root / sub).iterdir()):
            st = f.stat()
            h.update(f"{sub}/{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class PisaModel:
    """Holds the networks on one device. Not thread-safe: one worker owns it."""

    kind = "pisa-sr"

    def __init__(
        self,
        base_dir: str | Path,
        lora: str | Path | LoraCheckpoint,
        *,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = "auto",
        prompt_cache_dir: Path | None = None,
    ) -> None:
        self.base_dir = check_base_folder(base_dir)
        self.device = select_device(device)
        self.dtype = select_dtype(dtype, self.device)
        self.ckpt = lora if isinstance(lora, LoraCheckpoint) else load_checkpoint(lora)

        unet = load_unet(self.base_dir)
        apply_base_overrides(unet, self.ckpt)
        merge_branch(unet, self.ckpt, "pix")
        self.sem_adapters = attach_lora(unet, self.ckpt, ("sem",))
        unet.requires_grad_(False).eval()
        self.unet = _to(unet, self.device, self.dtype)

        vae = load_vae(self.base_dir)
        vae.requires_grad_(False).eval()
        vae = _to(vae, self.device, self.dtype)
        if self.device.type == "cpu":
            vae = vae.to(memory_format=torch.channels_last)  # measurably faster convolutions on the CPU
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)

        self.prompts = PromptEmbeddings(self.base_dir, self.device, self.dtype, prompt_cache_dir)
        self.model_id = f"{_base_fingerprint(self.base_dir)}-{self.ckpt.fingerprint()}"
        self.name = self.ckpt.name or self.base_dir.name
        log.info("loaded PiSA-SR %s on %s/%s", self.name, self.device, dtype_name(self.dtype))

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @torch.no_grad()
    def eps(self, z: torch.Tensor, t: int, cond: torch.Tensor, branch: str) -> torch.Tensor:
        """One UNet pass: ``branch='pix'`` uses W0 + dW_pix, ``'full'`` adds dW_sem."""
        if branch == "pix":
            self.unet.disable_adapters()
        elif branch == "full":
            self.unet.enable_adapters()
            self.unet.set_adapter(self.sem_adapters)
        else:
            raise ValueError(f"branch must be 'pix' or 'full', not {branch!r}")
        timestep = torch.tensor([int(t)], device=self.device, dtype=torch.long)
        cond = cond.expand(z.shape[0], -1, -1)
        return self.unet(z.to(self.dtype), timestep, encoder_hidden_states=cond).sample

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> latent (deterministic: the distribution's mode), scaled."""
        x = x.to(self.device, self.dtype)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.vae.encode(x).latent_dist.mode() * self.scaling_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image in [-1, 1]."""
        z = (z / self.scaling_factor).to(self.device, self.dtype)
        if self.device.type == "cpu":
            z = z.contiguous(memory_format=torch.channels_last)
        return self.vae.decode(z).sample.clamp(-1, 1)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "base": str(self.base_dir),
            "lora": str(self.ckpt.source),
            "device": str(self.device),
            "dtype": self.dtype_name,
            "timesteps": list(self.ckpt.timesteps),
            "ranks": self.ckpt.ranks,
        }

    def __repr__(self) -> str:
        return f"PisaModel({json.dumps(self.describe())})"
