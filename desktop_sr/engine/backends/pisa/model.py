"""The PiSA-SR model: SD-2.1-base UNet + VAE from a diffusers folder with the pixel and semantic LoRA.

Inference keeps the pixel LoRA merged into the base weights and the semantic LoRA as a peft adapter, so
``eps_pix`` is a UNet pass with adapters disabled and ``eps_full`` the same pass with them enabled
(W0 + dW_pix + dW_sem). No other copy of the weights is held. When both are needed, :meth:`PisaModel.eps_pair`
runs them as one batch of two: peft's per-sample ``adapter_names`` applies the semantic adapter to the second
sample only (the pixel LoRA, merged into W0, applies to both, as it should).

Precision: fp32 on the CPU; on a GPU the UNet runs in fp16 and SD's VAE, whose decoder overflows fp16, in fp32
(TF32 convolutions where the card has them); see :mod:`~desktop_sr.engine.hardware.precision` for why and the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path

import torch

from ...errors import ModelError
from ...hardware.device import conv_memory_format, device_traits, select_device, select_precision
from ...hardware.precision import DeviceTraits, Precision, emulate_tf32
from ...sd21.group_norm import exact_group_norms
from ...sd21.prompt import PromptEmbeddings
from ...sd21.vae_tiling import bound_attention
from ...sd21.weights import load_read
from .checkpoint import LoraCheckpoint, load_checkpoint
from .lora import apply_base_overrides, attach_lora, merge_branch

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


def _load_network(cls: type, folder: Path, dtype: torch.dtype, what: str) -> torch.nn.Module:
    """A diffusers network in ``dtype`` (cast tensor by tensor, so a fp16 GPU model never holds a fp32 copy), its
    weights read into memory of its own (:mod:`~desktop_sr.engine.sd21.weights`: the in-place LoRA merge must not
    copy-on-write mapped pages); diffusers' ``from_pretrained`` for layouts that path does not take."""
    try:
        model = load_read(cls, folder, dtype)
        if model is None:
            model = cls.from_pretrained(str(folder), torch_dtype=dtype)
        return model
    except (OSError, ValueError, RuntimeError, EnvironmentError) as exc:  # noqa: UP024 - diffusers raises either
        raise ModelError(folder, f"cannot load the {what} ({exc})") from exc


def load_unet(root: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    return _load_network(UNet2DConditionModel, root / "unet", dtype, "UNet")


def load_vae(root: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return _load_network(AutoencoderKL, root / "vae", dtype, "VAE")


def _to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move without a dtype cast when none is needed (diffusers warns on every cast, and the networks are loaded
    in their dtype already)."""
    module = module.to(device=device)
    have = next(module.parameters(), None)
    return module if have is None or have.dtype == dtype else module.to(dtype=dtype)


def uses_sdpa(module: torch.nn.Module) -> bool:
    """Whether every attention layer of a diffusers model runs torch's fused scaled_dot_product_attention."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    procs = getattr(module, "attn_processors", {})
    return bool(procs) and all(isinstance(p, AttnProcessor2_0) for p in procs.values())


def _base_fingerprint(root: Path) -> str:
    h = hashlib.sha256(str(root.resolve()).encode())
    for sub in ("unet", "vae"):
        for f in sorted((root / sub).iterdir()):
            st = f.stat()
            h.update(f"{sub}/{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def vae_force_upcast(root: Path) -> bool:
    """diffusers' ``force_upcast`` of the VAE config (True for SD's VAE, and when the config does not say)."""
    try:
        return bool(json.loads((root / "vae" / "config.json").read_text(encoding="utf-8")).get("force_upcast", True))
    except (OSError, ValueError):
        return True


def _pair_adapter_names(unet: torch.nn.Module, adapters: list[str]) -> list[tuple[torch.nn.Module, str]] | None:
    """(LoRA layer, its semantic adapter) for every layer holding one; None if a layer holds several (then one
    per-sample name cannot select them all and the branches run one at a time)."""
    from peft.tuners.lora import LoraLayer

    pairs = []
    for module in unet.modules():
        if isinstance(module, LoraLayer):
            mine = [a for a in adapters if a in module.lora_A]
            if len(mine) > 1:
                return None
            if mine:
                pairs.append((module, mine[0]))
    return pairs


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
        emulate: DeviceTraits | None = None,
    ) -> None:
        """``emulate``: run in the precision the engine picks for that device instead (on this one), TF32
        convolutions emulated where that device would use them: the GPU test pass and ``bench/device_check.py``."""
        self.base_dir = check_base_folder(base_dir)
        self.device = select_device(device)
        self.precision: Precision = select_precision(
            dtype, self.device, vae_force_upcast=vae_force_upcast(self.base_dir), traits=emulate
        )
        self.dtype, self.vae_dtype = self.precision.unet, self.precision.vae
        #: cuDNN's benchmark mode during VAE passes (see :meth:`vae_precision`; bench/device_check.py turns it off)
        self.cudnn_benchmark = True

        self.ckpt = lora if isinstance(lora, LoraCheckpoint) else load_checkpoint(lora)

        unet = load_unet(self.base_dir, self.dtype)
        apply_base_overrides(unet, self.ckpt)
        merge_branch(unet, self.ckpt, "pix")
        self.sem_adapters = attach_lora(unet, self.ckpt, ("sem",))
        unet.requires_grad_(False).eval()
        self.unet = _to(unet, self.device, self.dtype)
        self._pair_names = _pair_adapter_names(unet, self.sem_adapters)

        vae = load_vae(self.base_dir, self.vae_dtype)
        vae.requires_grad_(False).eval()
        vae = _to(vae, self.device, self.vae_dtype)
        if emulate is not None and self.precision.tf32 and not device_traits(self.device).tf32:
            emulate_tf32(vae)  # the emulated card would run these convolutions on TF32 tensor cores; this one cannot
        bound_attention(vae)
        exact_group_norms(vae)  # torch's CPU GroupNorm drifts on large channels-last maps (sd21/group_norm.py)
        self.memory_format = conv_memory_format(self.device)
        if self.memory_format != torch.contiguous_format:
            vae = vae.to(memory_format=self.memory_format)
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)

        self.prompts = PromptEmbeddings(self.base_dir, self.device, self.dtype, prompt_cache_dir)
        self.model_id = f"{_base_fingerprint(self.base_dir)}-{self.ckpt.fingerprint()}"
        self.name = self.ckpt.name or self.base_dir.name
        log.info(
            "loaded PiSA-SR %s on %s: %s%s, attention %s", self.name, self.device, self.precision.label(),
            " channels_last" if self.memory_format == torch.channels_last else "",
            "SDPA" if uses_sdpa(self.unet) else "not SDPA",
        )  # fmt: skip

    def vae_precision(self) -> contextlib.AbstractContextManager[None]:
        """Around a VAE pass: fp32 convolutions on TF32 tensor cores only where the policy chose it, and cuDNN's
        benchmark mode (fixed tile shapes: it picks its fastest algorithm once per shape). cuDNN's flags are the
        process's, so they are set for the pass, not at load (a second model would change the first's)."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.backends.cudnn.flags(enabled=True, benchmark=self.cudnn_benchmark, allow_tf32=self.precision.tf32)

    @property
    def dtype_name(self) -> str:
        return self.precision.label()

    @property
    def can_pair(self) -> bool:
        """Whether both branches can run as one batch (every semantic LoRA module holds exactly one adapter)."""
        return self._pair_names is not None

    def _timestep(self, t: int, n: int) -> torch.Tensor:
        return torch.full((n,), int(t), device=self.device, dtype=torch.long)

    @torch.inference_mode()
    def eps(self, z: torch.Tensor, t: int, cond: torch.Tensor, branch: str) -> torch.Tensor:
        """One UNet pass: ``branch='pix'`` uses W0 + dW_pix, ``'full'`` adds dW_sem."""
        if branch == "pix":
            self.unet.disable_adapters()
        elif branch == "full":
            self.unet.enable_adapters()
            self.unet.set_adapter(self.sem_adapters)
        else:
            raise ValueError(f"branch must be 'pix' or 'full', not {branch!r}")
        cond = cond.expand(z.shape[0], -1, -1)
        return self.unet(z.to(self.dtype), self._timestep(t, z.shape[0]), encoder_hidden_states=cond).sample

    @torch.inference_mode()
    def eps_pair(self, z: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
        """eps_pix and eps_full of ``z`` (one sample) in one forward of a batch of two: ``[pix, full]``.

        Every semantic LoRA layer gets peft's per-sample ``adapter_names`` (``__base__`` for the first sample, the
        layer's own semantic adapter for the second) through a forward pre-hook, as PeftModel does for its users;
        diffusers' adapter mixin has no such argument. Raises RuntimeError when :attr:`can_pair` is False."""
        if self._pair_names is None:
            raise RuntimeError("this checkpoint's semantic adapters overlap; run the branches one at a time")
        if z.shape[0] != 1:
            raise ValueError("eps_pair takes one latent sample")
        self.unet.enable_adapters()
        self.unet.set_adapter(self.sem_adapters)
        handles = []
        for module, name in self._pair_names:

            def hook(_m: torch.nn.Module, args: tuple, kwargs: dict, name: str = name) -> tuple[tuple, dict]:
                return args, {**kwargs, "adapter_names": ["__base__", name]}

            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        try:
            zz = z.to(self.dtype).expand(2, -1, -1, -1)
            cond = cond.expand(2, -1, -1)
            return self.unet(zz, self._timestep(t, 2), encoder_hidden_states=cond).sample
        finally:
            for h in handles:
                h.remove()

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> latent (deterministic: the distribution's mode), scaled, in the VAE's dtype (the UNet
        casts what it reads; the latent keeps the precision the decoder will see)."""
        x = x.to(self.device, self.vae_dtype).contiguous(memory_format=self.memory_format)
        return self.vae.encode(x).latent_dist.mode() * self.scaling_factor

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image in [-1, 1], in the VAE's dtype."""
        z = (z.to(self.device, self.vae_dtype) / self.scaling_factor).contiguous(memory_format=self.memory_format)
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
