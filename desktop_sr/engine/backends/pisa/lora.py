"""Attaching PiSA-SR LoRA adapters to a diffusers UNet with peft, and merging one branch into the base weights.

The trainer uses :func:`attach_lora` (both branches as trainable peft adapters); inference merges the pixel
branch into the base weights once (so the pixel pass costs a plain UNet pass) and keeps the semantic branch as
a peft adapter that is switched off for the pixel pass and on for the full pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from peft import LoraConfig

from ...errors import ModelError
from .checkpoint import GROUPS, LoraCheckpoint, adapter_name


def lora_config(ckpt: LoraCheckpoint, branch: str, group: str) -> LoraConfig:
    return LoraConfig(
        r=ckpt.ranks[branch],
        lora_alpha=ckpt.alphas[branch],
        init_lora_weights="gaussian",
        target_modules=list(ckpt.modules[branch][group]),
    )


def adapter_names(ckpt: LoraCheckpoint, branch: str) -> list[str]:
    return [adapter_name(g, branch) for g in GROUPS if ckpt.modules[branch][g]]


def attach_lora(
    unet: torch.nn.Module, ckpt: LoraCheckpoint, branches: Iterable[str] = ("pix", "sem"), *, load_weights: bool = True
) -> list[str]:
    """Add the adapters of ``branches`` to ``unet`` (peft) and, if asked, copy the checkpoint's tensors in.

    Raises :class:`ModelError` naming the checkpoint when a module name does not exist in this UNet or a tensor's
    shape does not fit, which is what happens when adapters are paired with the wrong base model.
    """
    names: list[str] = []
    existing = {n for n, _ in unet.named_modules()}
    for branch in branches:
        for group in GROUPS:
            modules = ckpt.modules[branch][group]
            if not modules:
                continue
            missing = [m for m in modules if m not in existing]
            if missing:
                raise ModelError(
                    ckpt.source,
                    f"{len(missing)} {group}/{branch} LoRA modules do not exist in this UNet (e.g. {missing[0]!r}); "
                    "is this the right base model?",
                )
            name = adapter_name(group, branch)
            try:
                with warnings.catch_warnings():  # peft warns that several adapters share a model: that is the design
                    warnings.simplefilter("ignore", UserWarning)
                    unet.add_adapter(lora_config(ckpt, branch, group), adapter_name=name)
            except (ValueError, TypeError, RuntimeError) as exc:
                raise ModelError(ckpt.source, f"cannot attach adapter {name}: {exc}") from exc
            names.append(name)
    if load_weights:
        _load_lora_tensors(unet, ckpt, names)
    return names


def _load_lora_tensors(unet: torch.nn.Module, ckpt: LoraCheckpoint, names: list[str]) -> None:
    params = {n: p for n, p in unet.named_parameters() if ".lora_" in n and any(f".{a}." in n for a in names)}
    wanted = {k: v for k, v in ckpt.state_dict.items() if ".lora_" in k and any(f".{a}." in k for a in names)}
    missing = sorted(set(params) - set(wanted))
    unexpected = sorted(set(wanted) - set(params))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise ModelError(ckpt.source, f"LoRA tensors do not match the UNet ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected; {detail})")  # fmt: skip
    with torch.no_grad():
        for name, param in params.items():
            src = wanted[name]
            if src.shape != param.shape:
                raise ModelError(
                    ckpt.source, f"{name} has shape {tuple(src.shape)}, the UNet needs {tuple(param.shape)}"
                )
            param.copy_(src.to(param.dtype))


def apply_base_overrides(unet: torch.nn.Module, ckpt: LoraCheckpoint) -> None:
    """Copy non-LoRA tensors (e.g. a fine-tuned ``conv_in``) over the base UNet weights."""
    overrides = ckpt.base_overrides()
    if not overrides:
        return
    state = unet.state_dict()
    with torch.no_grad():
        for key, value in overrides.items():
            if key not in state:
                raise ModelError(ckpt.source, f"tensor {key!r} does not exist in this UNet")
            if state[key].shape != value.shape:
                raise ModelError(
                    ckpt.source, f"{key} has shape {tuple(value.shape)}, the UNet needs {tuple(state[key].shape)}"
                )
            state[key].copy_(value.to(state[key].dtype))


def add_lora_delta(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> None:
    """``weight += scale * B @ A`` in place, for a Linear LoRA pair or a conv pair (A: Conv2d(in, r, k), weight
    (r, in, k, k); B: Conv2d(r, out, 1), weight (out, r, 1, 1)), as one ``addmm_`` on the weight seen as a matrix.
    No dense delta is allocated: for the SD-2.1 UNet that is 3.4 GB of fresh pages, each one faulted in, which made
    the merge take several seconds on the CPU. Raises ValueError when the pair does not fit the weight."""
    if a.ndim not in (2, 4) or b.ndim != a.ndim:
        raise ValueError(f"unsupported LoRA tensor rank {a.ndim}")
    shape = (b.shape[0], *a.shape[1:])
    if tuple(weight.shape) != shape:
        raise ValueError(f"LoRA gives {shape}, the UNet has {tuple(weight.shape)}")
    b2 = b.reshape(b.shape[0], b.shape[1]).to(torch.float32)
    a2 = a.reshape(a.shape[0], -1).to(torch.float32)
    if weight.dtype == torch.float32 and weight.is_contiguous():
        weight.view(weight.shape[0], -1).addmm_(b2, a2, alpha=scale)
    else:  # half precision (the product is formed in fp32 first) or a layout whose matrix view is not contiguous
        weight.add_((scale * (b2 @ a2)).reshape(shape).to(weight.dtype))


def merge_branch(unet: torch.nn.Module, ckpt: LoraCheckpoint, branch: str) -> int:
    """Add one branch's LoRA deltas into the base weights in place (no peft layers involved). Returns the count."""
    scale = ckpt.scale(branch)
    count = 0
    with torch.no_grad():
        for group in GROUPS:
            tag = adapter_name(group, branch)
            for module_name in ckpt.modules[branch][group]:
                try:
                    module = unet.get_submodule(module_name)
                except AttributeError as exc:
                    raise ModelError(ckpt.source, f"module {module_name!r} does not exist in this UNet") from exc
                a = ckpt.state_dict[f"{module_name}.lora_A.{tag}.weight"]
                b = ckpt.state_dict[f"{module_name}.lora_B.{tag}.weight"]
                try:
                    add_lora_delta(module.weight, a, b, scale)
                except ValueError as exc:
                    raise ModelError(ckpt.source, f"{module_name}: {exc}") from exc
                count += 1
    return count
