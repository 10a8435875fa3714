"""How much memory a result needs, and whether the machine has it: a photo too large for the chosen scale gets a
clear message before any work, instead of the operating system killing the app half-way through a long render.

Torch-free, so the CLI and tests can ask without loading a model.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..errors import TooLarge

GB = 1024**3


def available_ram() -> int | None:
    """Bytes a new allocation can get without swapping (Linux MemAvailable; Windows and macOS from the OS), or None
    when the platform does not say (then nothing is refused)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return _windows_available()
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _windows_memory(field: str) -> int | None:
    """A field of Windows' GlobalMemoryStatusEx (``avail_phys``, ``total_phys``), or None elsewhere or on failure."""

    class MemoryStatus(ctypes.Structure):
        _fields_ = [  # noqa: RUF012 - ctypes' own declaration style
            ("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total_phys", ctypes.c_ulonglong),
            ("avail_phys", ctypes.c_ulonglong), ("total_page", ctypes.c_ulonglong),
            ("avail_page", ctypes.c_ulonglong), ("total_virtual", ctypes.c_ulonglong),
            ("avail_virtual", ctypes.c_ulonglong), ("avail_extended", ctypes.c_ulonglong),
        ]  # fmt: skip

    status = MemoryStatus()
    status.length = ctypes.sizeof(MemoryStatus)
    try:
        ok = ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return int(getattr(status, field)) if ok else None


def _windows_available() -> int | None:
    return _windows_memory("avail_phys")


def total_ram() -> int | None:
    """The machine's physical memory in bytes, or None when the platform does not say."""
    if sys.platform == "win32":
        return _windows_memory("total_phys")
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _amount(n: int) -> str:
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / 1024**2:.0f} MB"


def check_output_fits(
    width: int, height: int, scale: int, bytes_per_px: int, available: int | None = None, overhead: int = 0
) -> None:
    """Raise :class:`TooLarge` if a ``scale`` result of a ``width`` x ``height`` photo needs more memory than is free.

    ``bytes_per_px`` is the model's measured cost per output pixel (its full-resolution buffers: the result, the
    corner images, the colour fix); ``overhead`` its working space, which tiling bounds whatever the photo's size.
    The message names the largest scale that fits, so the user knows what to do.
    """
    have = available_ram() if available is None else available
    if have is None:
        return
    need = width * scale * height * scale * bytes_per_px + overhead
    if need <= have:
        return
    fits = [s for s in range(scale - 1, 1, -1) if width * s * height * s * bytes_per_px + overhead <= have]
    advice = (
        f"Choose ×{fits[0]}, or crop the photo first."
        if fits
        else "Crop or downsize the photo first, or close other programs."
    )
    mp = width * scale * height * scale / 1e6
    raise TooLarge(
        f"The result would be {width * scale} × {height * scale} pixels ({mp:.{0 if mp >= 10 else 1}f} MP) and "
        f"needs about {_amount(need)} of memory, but only {_amount(have)} is free. {advice}",
        need,
        have,
    )
