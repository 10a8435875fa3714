"""Device and dtype selection. Never hard-code a device: pick the best available one or honour the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return the device to run on: ``auto`` prefers CUDA, then Apple MPS, then the CPU."""
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():  # the current CUDA device (honours CUDA_VISIBLE_DEVICES)
            return torch.device(f"cuda:{torch.cuda.current_device()}")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available (is a CUDA build of torch installed?)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was requested but this machine has no usable Apple GPU")
    return device


def select_dtype(preference: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto`` means fp16 on CUDA/MPS and fp32 on the CPU (CPUs rarely have fast half precision convolutions)."""
    if isinstance(preference, torch.dtype):
        return preference
    pref = (preference or "auto").lower()
    if pref == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if pref not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {preference!r}")
    return _DTYPES[pref]


@dataclass(frozen=True)
class Precision:
    """The dtypes a PiSA-SR model runs in: the UNet's, and the VAE's (which may need more range than fp16 has)."""

    unet: torch.dtype
    vae: torch.dtype


def cuda_bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively (CUDA compute capability 8.0 and later)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported())


def select_precision(
    preference: str | torch.dtype | None,
    device: torch.device,
    *,
    vae_force_upcast: bool = True,
    bf16_supported: Callable[[torch.device], bool] = cuda_bf16_supported,
) -> Precision:
    """The UNet's dtype from :func:`select_dtype`; the VAE's the same unless that is fp16 and the VAE needs more
    range (diffusers' ``force_upcast``, set for SD's VAE: its decoder overflows fp16 into NaN, a black image). The
    VAE then runs in bf16 where the GPU supports it (fp32's range at half the memory), else in fp32."""
    unet = select_dtype(preference, device)
    vae = unet
    if unet == torch.float16 and vae_force_upcast:
        vae = torch.bfloat16 if bf16_supported(device) else torch.float32
    return Precision(unet=unet, vae=vae)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (so a stage's time is its work's), a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}.get(dtype, str(dtype))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of every backend (CUDA, MPS and the CPU allocator)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def memory_budget(device: torch.device, ram_share: float = 0.25) -> int:
    """Bytes a render may use: most of the free GPU memory, or a share of the machine's RAM on the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return int(total * ram_share)


def state_budget(device: torch.device, available: int | None = None) -> int:
    """Bytes the tiled VAE may keep alive between GroupNorms (every tile's activations, see :mod:`.vae_tiling`).

    Exact whole-image statistics need all of them at once, so this may exceed the tile budget: on the CPU, 60 % of
    the memory available now (the rest covers one tile's working memory and headroom), never less than
    :func:`memory_budget`. An SD-width 2560 x 1920 result keeps about 9 GB: a 24 GB machine with the model loaded has
    17 GB available, so its statistics are exact, where a fixed quarter of RAM (6 GB) would not hold them. On a GPU,
    the same as :func:`memory_budget`: most of its free memory."""
    budget = memory_budget(device)
    if device.type != "cpu":
        return budget
    if available is None:
        from .memory import available_ram

        available = available_ram()
    return max(budget, int(0.6 * available)) if available else budget
