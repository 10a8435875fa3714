"""Device selection and the device's housekeeping (synchronise, free the cache, recognise out-of-memory).

Never hard-code a device: pick the best available one or honour the caller. ``auto`` prefers CUDA (NVIDIA, and AMD
through ROCm builds of torch, which report ``cuda``), then Intel XPU, then Apple MPS, then the CPU. What each device
is, and why one is unusable, is :mod:`.devices`; which number formats run on it, :mod:`.precision`.

Vulkan devices (``vulkan:N``, :mod:`.vulkan`) are not torch's: they run the bundled model only, through ncnn.
:func:`resolve_device` says where a model goes, given whether it can run there (``auto`` takes a hardware Vulkan GPU
for the bundled model when torch has no GPU); :func:`select_device` is torch's part and refuses a Vulkan name.
"""

from __future__ import annotations

import contextlib

import torch

from .devices import AUTO_ORDER, cuda_kernels_for
from .precision import DeviceKind, DeviceTraits, Precision, dtype_name, parse_dtype, policy
from .vulkan import first_hardware, is_vulkan_name, vulkan_facts

__all__ = [
    "Precision",
    "conv_memory_format",
    "device_traits",
    "dtype_name",
    "empty_cache",
    "is_out_of_memory",
    "resolve_device",
    "select_device",
    "select_dtype",
    "select_precision",
    "synchronize",
]


def _xpu_available() -> bool:
    xpu = getattr(torch, "xpu", None)
    try:
        return bool(xpu is not None and xpu.is_available())
    except (RuntimeError, AssertionError):
        return False


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return the device to run on: ``auto`` prefers CUDA/ROCm, then Intel XPU, then Apple MPS, then the CPU."""
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or "auto").lower()
    if is_vulkan_name(pref):
        raise ValueError(f"{preference} is a Vulkan device: it runs the bundled model only (torch cannot use it)")
    if pref == "auto":
        for kind in AUTO_ORDER:  # the order `desktop-sr devices` shows and marks
            if kind == DeviceKind.VULKAN:
                continue  # not torch's
            found = _first_usable(kind)
            if found is not None:
                return found
        return torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {preference!r}: use auto, cpu, cuda[:N], xpu[:N] or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "CUDA was requested but this torch sees no CUDA (or ROCm) GPU; `desktop-sr devices` says why"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"there is no {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if not _has_kernels(index):
            cap = torch.cuda.get_device_capability(index)
            raise ValueError(
                f"{torch.cuda.get_device_name(index)} (compute capability {cap[0]}.{cap[1]}) has no kernels in this "
                f"torch build ({', '.join(torch.cuda.get_arch_list())}); `desktop-sr devices` says what to install"
            )
    if device.type == "xpu" and not _xpu_available():
        raise ValueError("an Intel XPU was requested but this torch sees none; `desktop-sr devices` says why")
    if device.type == "mps" and not _mps_available():
        raise ValueError("MPS was requested but this machine has no usable Apple GPU")
    return device


def resolve_device(preference: str | torch.device | None = "auto", *, vulkan: bool = False) -> str:
    """Where a model runs for ``preference``: ``cuda:0``, ``vulkan:0``, ``cpu``... ``vulkan`` says whether the model
    can run through Vulkan (the bundled model): then ``auto`` takes a discrete or integrated Vulkan GPU when torch
    has no GPU (never a software one), and ``vulkan`` without a number the one ``auto`` would take. A Vulkan name
    for a model that needs torch is the CPU (the loader says so in the session's notice). Probes Vulkan: call it off
    the GUI thread."""
    if isinstance(preference, torch.device):
        return str(preference)
    pref = (preference or "auto").strip().lower()
    if is_vulkan_name(pref):
        if not vulkan:
            return "cpu"
        if pref != "vulkan":
            return pref
        facts = vulkan_facts()
        gpu = first_hardware(facts) or next(iter(facts.devices), None)
        return gpu.name_for_device if gpu is not None else "vulkan:0"
    found = select_device(pref)
    if pref == "auto" and found.type == "cpu" and vulkan:
        gpu = first_hardware(vulkan_facts())
        if gpu is not None:
            return gpu.name_for_device
    return str(found)


def _first_usable(kind: str) -> torch.device | None:
    """The device ``auto`` takes of a kind, or None: for CUDA the current device first (it honours
    CUDA_VISIBLE_DEVICES), skipping cards this torch build has no kernels for."""
    if kind == "cuda":
        if not torch.cuda.is_available():
            return None
        current = torch.cuda.current_device()
        order = [current, *(i for i in range(torch.cuda.device_count()) if i != current)]
        return next((torch.device(f"cuda:{i}") for i in order if _has_kernels(i)), None)
    if kind == "xpu":
        return torch.device(f"xpu:{torch.xpu.current_device()}") if _xpu_available() else None
    if kind == "mps":
        return torch.device("mps") if _mps_available() else None
    return torch.device("cpu")


def _has_kernels(index: int) -> bool:
    """Whether this torch build has kernels for CUDA device ``index`` (else its first op fails: "no kernel image")."""
    if getattr(torch.version, "hip", None) is not None:
        return True  # ROCm builds name gfx targets; torch reports a missing one itself
    return cuda_kernels_for(torch.cuda.get_device_capability(index), torch.cuda.get_arch_list())


def device_traits(device: torch.device) -> DeviceTraits:
    """What the precision policy needs to know of a live device."""
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        hip = getattr(torch.version, "hip", None) is not None
        cap = None if hip else (int(props.major), int(props.minor))
        # Native bf16 only: torch.cuda.is_bf16_supported() counts emulation by default (a T4 would say yes).
        native = (cap or (0, 0)) >= (8, 0) or (hip and _hip_bf16(device))
        return DeviceTraits(DeviceKind.CUDA, cap, native_bf16=native, total_memory=int(props.total_memory), hip=hip)
    if device.type == "xpu":
        total = None
        with contextlib.suppress(RuntimeError, AttributeError):
            total = int(torch.xpu.get_device_properties(device).total_memory)
        return DeviceTraits(DeviceKind.XPU, native_bf16=True, total_memory=total)
    if device.type == "mps":
        return DeviceTraits(DeviceKind.MPS, native_bf16=False)
    return DeviceTraits(DeviceKind.CPU)


def _hip_bf16(device: torch.device) -> bool:
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch before 2.3 has no including_emulation
        return False


def select_dtype(preference: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto`` means fp16 on GPUs and fp32 on the CPU (CPUs rarely have fast half precision convolutions)."""
    asked = parse_dtype(preference)
    if asked is not None:
        return asked
    return torch.float32 if device.type == "cpu" else torch.float16


def select_precision(
    preference: str | torch.dtype | None,
    device: torch.device,
    *,
    vae_force_upcast: bool = True,
    traits: DeviceTraits | None = None,
) -> Precision:
    """The policy's precision (:func:`.precision.policy`) for ``device``; ``traits`` describes another device to
    emulate (the GPU test pass on the CPU)."""
    return policy(traits or device_traits(device), preference, vae_force_upcast=vae_force_upcast)


def conv_memory_format(device: torch.device) -> torch.memory_format:
    """channels_last where it pays: measured on the CPU (the VAE decoder's convolutions at 512 px take about half
    the time, see docs/performance.md); the layout cuDNN's tensor-core convolutions and Intel's XPU kernels prefer.
    Not on MPS, where many kernels take only the contiguous layout and copy."""
    return torch.channels_last if device.type in ("cpu", "cuda", "xpu") else torch.contiguous_format


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (so a stage's time is its work's), a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xpu":
        torch.xpu.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of every backend (CUDA/ROCm, XPU, MPS and the CPU allocator)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "xpu":
        torch.xpu.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
