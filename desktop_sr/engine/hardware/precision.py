"""Which number formats a model runs in on which device: one policy, a pure function of what the device is.

The policy takes a :class:`DeviceTraits` (plain data: kind, CUDA compute capability, native bf16, memory), so a test
on the CPU can ask for exactly the precision the engine picks for a card it does not have, and run it there
(``DESKTOP_SR_TEST_PRECISION=gpu``): fp16 and bf16 run on the CPU, and TF32 convolutions are emulated by rounding
their operands (:func:`emulate_tf32`).

Why the VAE runs in fp32 on GPUs: SD's VAE decoder overflows fp16 (diffusers' ``force_upcast``), and bf16 keeps only
8 bits of mantissa. Measured with the trained small VAE against CPU fp32 (tests/test_engine_fidelity.py, the GPU
pass; the issue's audit): UNet fp16 + VAE bf16 gave 50.9 dB untiled, 44.0 dB and 1.28 levels mean with local
strength maps, and a 16-bit export held about 9 bits; UNet fp16 + VAE fp32 gave 68-69 dB, about 1 level at most.
The VAE's weights are 335 MB in fp32; tiling bounds its activations on any card, so fp32 always fits where the
UNet does, and bf16 is used only where the caller asks for it (then the label says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class DeviceKind(str, Enum):
    """The backends the engine runs on: torch's (ROCm builds of torch report AMD GPUs as ``cuda``), and Vulkan
    through ncnn, which runs the bundled model only (:mod:`.vulkan`)."""

    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"
    XPU = "xpu"
    VULKAN = "vulkan"


@dataclass(frozen=True)
class DeviceTraits:
    """What the precision policy depends on, as plain data (no live device needed)."""

    kind: DeviceKind
    #: CUDA compute capability (major, minor); None for AMD (ROCm) and non-CUDA devices.
    capability: tuple[int, int] | None = None
    #: bf16 arithmetic in hardware (not emulated: ``torch.cuda.is_bf16_supported()`` counts emulation by default).
    native_bf16: bool = False
    #: Total device memory in bytes, where known.
    total_memory: int | None = None
    #: A ROCm (HIP) build of torch: AMD GPU behind the ``cuda`` device type.
    hip: bool = False

    @property
    def tf32(self) -> bool:
        """TF32 tensor cores (NVIDIA Ampere and later): fp32 convolutions at close to fp16 speed."""
        return self.kind is DeviceKind.CUDA and not self.hip and (self.capability or (0, 0)) >= (8, 0)

    @staticmethod
    def cuda_ampere(total_memory: int = 24 * 1024**3) -> DeviceTraits:
        """An NVIDIA card of compute capability 8.0 or later (A100, RTX 30xx/40xx, H100): what the GPU test pass
        emulates."""
        return DeviceTraits(DeviceKind.CUDA, (8, 0), native_bf16=True, total_memory=total_memory)

    @staticmethod
    def cuda_turing(total_memory: int = 16 * 1024**3) -> DeviceTraits:
        """A pre-Ampere NVIDIA card (T4, V100, RTX 20xx, GTX 16xx): fp16 tensor cores, no bf16, no TF32."""
        return DeviceTraits(DeviceKind.CUDA, (7, 5), native_bf16=False, total_memory=total_memory)


@dataclass(frozen=True)
class Precision:
    """The dtypes a PiSA-SR model runs in, and whether fp32 convolutions may use TF32 tensor cores."""

    unet: torch.dtype
    vae: torch.dtype
    #: fp32 convolutions of the VAE run on TF32 tensor cores (10-bit mantissa operands, fp32 accumulation and range).
    tf32: bool = False
    #: Why the VAE runs in something other than the policy's choice (shown in the device label), or "".
    note: str = ""

    def label(self) -> str:
        """What the status bar and ``desktop-sr devices`` show, e.g. ``fp16 (VAE fp32, TF32)``."""
        vae = dtype_name(self.vae) + (", TF32" if self.tf32 and self.vae == torch.float32 else "")
        text = dtype_name(self.unet) if vae == dtype_name(self.unet) else f"{dtype_name(self.unet)} (VAE {vae})"
        return f"{text}: {self.note}" if self.note else text


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}.get(dtype, str(dtype))


def parse_dtype(preference: str | torch.dtype | None) -> torch.dtype | None:
    """``auto`` (or None) -> None; ``fp32``/``fp16``/``bf16`` -> the dtype."""
    if isinstance(preference, torch.dtype):
        return preference
    pref = (preference or "auto").lower()
    if pref == "auto":
        return None
    if pref not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {preference!r}")
    return _DTYPES[pref]


#: Whether the VAE's fp32 convolutions may run in TF32 on cards that have it. Chosen by measurement
#: (docs/fidelity.md, "GPU precision"): see :func:`policy`.
VAE_TF32 = True


def policy(
    traits: DeviceTraits, preference: str | torch.dtype | None = "auto", *, vae_force_upcast: bool = True
) -> Precision:
    """The precision the engine uses on a device like ``traits``.

    ``auto``: fp32 on the CPU (its half precision is slow: a bf16 convolution here is ~400x slower); on a GPU the
    UNet in fp16 and SD's VAE (``force_upcast``) in fp32, with TF32 convolutions where the card has them. An explicit
    ``fp16``/``bf16``/``fp32`` sets the UNet's dtype; the VAE follows it unless that is fp16 and the VAE needs the
    range, then fp32. Only an explicit ``bf16`` puts the VAE in bf16 (labelled)."""
    asked = parse_dtype(preference)
    if traits.kind is DeviceKind.CPU and asked is None:
        return Precision(torch.float32, torch.float32)
    unet = asked if asked is not None else torch.float16
    vae = unet
    note = ""
    if unet == torch.float16 and vae_force_upcast:
        vae = torch.float32
    elif unet == torch.bfloat16 and traits.kind is not DeviceKind.CPU:
        if traits.kind is DeviceKind.CUDA and not traits.native_bf16:
            note = "this GPU has no bf16 hardware (slow)"
        else:
            note = "bf16 VAE keeps about 9 bits of a 16-bit export"
    tf32 = vae == torch.float32 and traits.tf32 and VAE_TF32
    return Precision(unet, vae, tf32, note)


# -- TF32 -------------------------------------------------------------------------------------------------------------
def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """``x`` (fp32) rounded to TF32's 10-bit mantissa, to nearest (what a TF32 tensor core reads of an operand)."""
    if x.dtype != torch.float32:
        return x
    bits = x.contiguous().view(torch.int32)
    rounded = (bits + 0x1000) & ~0x1FFF  # round the 13 dropped mantissa bits to nearest, then drop them
    finite = torch.isfinite(x)
    return torch.where(finite, rounded.view(torch.float32), x).view_as(x)


def emulate_tf32(net: torch.nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Make ``net``'s fp32 convolutions compute as a TF32 tensor core does (operands rounded to TF32, fp32
    accumulation): the GPU precision on the CPU, for the tests and ``bench/device_check.py --device cpu``. Rounds
    the convolution weights in place (``net`` must be a model of its own) and each input by a pre-hook; returns the
    hooks' handles."""

    def hook(_m: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (round_tf32(args[0]), *args[1:])

    handles = []
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.weight.dtype == torch.float32:
                m.weight.copy_(round_tf32(m.weight))
                handles.append(m.register_forward_pre_hook(hook))
    return handles


__all__ = [
    "DeviceKind",
    "DeviceTraits",
    "Precision",
    "dtype_name",
    "emulate_tf32",
    "parse_dtype",
    "policy",
    "round_tf32",
]
