"""What the bundled trainer needs from the engine: an empty checkpoint to train into and a way to read one back.

The trainer must produce adapters that look exactly like released ones (same module lists, adapter names, rank,
alpha), so it builds them from the engine's own :func:`official_module_lists` and attaches them with the engine's
:func:`attach_lora`; after training :func:`checkpoint_from_unet` reads the peft tensors back into a
:class:`LoraCheckpoint` that :func:`save_app` / :func:`save_official` write and the app loads. Keeping this here
means the trainer holds no second copy of the naming or layout rules.
"""

from __future__ import annotations

import torch

from .checkpoint import BRANCHES, GROUPS, OFFICIAL_LORA_ALPHA, LoraCheckpoint, official_module_lists


def empty_checkpoint(
    unet: torch.nn.Module,
    *,
    rank_pix: int = 4,
    rank_sem: int = 4,
    alpha: float = OFFICIAL_LORA_ALPHA,
    timesteps: tuple[int, ...] = (1,),
    name: str = "",
) -> LoraCheckpoint:
    """A checkpoint with the official module selection and no tensors, for ``attach_lora(..., load_weights=False)``.

    peft then initialises the adapters itself ("gaussian": A ~ N(0, 1/r), B = 0), which is what the official
    training did, so an untrained model starts exactly at the base UNet. Call on a UNet without adapters.
    """
    modules = official_module_lists(unet)
    return LoraCheckpoint(
        modules={b: {g: list(modules[g]) for g in GROUPS} for b in BRANCHES},
        ranks={"pix": int(rank_pix), "sem": int(rank_sem)},
        alphas={b: float(alpha) for b in BRANCHES},
        state_dict={},
        timesteps=tuple(int(t) for t in timesteps),
        name=name,
    )


def lora_state_from_unet(unet: torch.nn.Module, branches: tuple[str, ...] = BRANCHES) -> dict[str, torch.Tensor]:
    """The peft LoRA tensors of ``branches`` as float32 CPU copies, under the official key names.

    peft names parameters ``<module>.lora_A.default_<group>_<branch>.weight``, which is already the official
    layout, so no renaming is needed; copies are taken so training can continue while a copy is written.
    """
    out: dict[str, torch.Tensor] = {}
    for name, param in unet.named_parameters():
        if ".lora_" in name and any(name.endswith(f"_{b}.weight") for b in branches):
            out[name] = param.detach().to("cpu", torch.float32).clone()
    return out


def checkpoint_from_unet(
    unet: torch.nn.Module, template: LoraCheckpoint, *, timesteps: tuple[int, ...] | None = None, name: str = ""
) -> LoraCheckpoint:
    """Read trained adapters back out of ``unet`` into a validated checkpoint shaped like ``template``."""
    ckpt = LoraCheckpoint(
        modules={b: {g: list(template.modules[b][g]) for g in GROUPS} for b in BRANCHES},
        ranks=dict(template.ranks),
        alphas=dict(template.alphas),
        state_dict=lora_state_from_unet(unet),
        timesteps=tuple(timesteps if timesteps is not None else template.timesteps),
        name=name or template.name,
    )
    ckpt.validate()
    return ckpt
