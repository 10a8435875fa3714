"""Which Vulkan devices this machine has, as ncnn sees them, and why there are none when there are none.

Why Vulkan: torch reaches NVIDIA (CUDA), AMD only through ROCm on Linux, Intel Arc through XPU builds and Apple
through MPS; an AMD or Intel laptop with the plain install gets the CPU. Vulkan drivers come with every GPU driver, so
the bundled model (whose ncnn weights the app already ships) runs on any GPU through ncnn's Vulkan runtime
(:mod:`desktop_sr.engine.backends.bundled.vulkan`). This module only lists the devices: the inventory
(:mod:`.devices`) and the choice of ``--device vulkan:N`` or ``auto`` read it.

Software rasterisers (mesa's llvmpipe/lavapipe, SwiftShader) are Vulkan devices that run on the CPU, far slower
than torch there: they are listed (a test or a curious user may pick one) but marked software, and ``auto`` never
takes one. ncnn reports them as its "CPU" device type; the names catch a driver that reports another type.

``ncnn`` is imported only by :func:`vulkan_facts` (on a worker thread: the GUI's device list, a model load), never
at import time: creating a Vulkan instance loads the driver, which the app's start-up must not wait for.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "NCNN_DIST",
    "VulkanFacts",
    "VulkanGpu",
    "VulkanType",
    "captured_stderr",
    "first_hardware",
    "is_vulkan_name",
    "loader_found",
    "ncnn_installed",
    "no_loader_reason",
    "vulkan_facts",
]

#: The PyPI package whose wheels hold ncnn's Vulkan runtime (MoltenVK included on macOS).
NCNN_DIST = "ncnn"
_SOFTWARE_NAMES = ("llvmpipe", "lavapipe", "swiftshader")
_MB = 1024**2


class VulkanType(str, Enum):
    """Vulkan's physical device types, in ncnn's numbering (``GpuInfo.type()``), worded for a user."""

    DISCRETE = "discrete GPU"
    INTEGRATED = "integrated GPU"
    VIRTUAL = "virtual GPU"
    CPU = "software (CPU)"

    @staticmethod
    def from_ncnn(number: int) -> VulkanType:
        order = (VulkanType.DISCRETE, VulkanType.INTEGRATED, VulkanType.VIRTUAL, VulkanType.CPU)
        return order[number] if 0 <= number < len(order) else VulkanType.VIRTUAL


@dataclass(frozen=True)
class VulkanGpu:
    """One Vulkan physical device, numbered as ncnn (and ``--device vulkan:N``) numbers them."""

    index: int
    name: str
    type: VulkanType
    #: The device-local memory the driver lets this process use (Vulkan's heap budget), where it says.
    memory_bytes: int | None = None

    @property
    def software(self) -> bool:
        """A rasteriser on the CPU: usable when asked for by name, never chosen by ``auto``."""
        return self.type is VulkanType.CPU or any(s in self.name.lower() for s in _SOFTWARE_NAMES)

    @property
    def name_for_device(self) -> str:
        return f"vulkan:{self.index}"


@dataclass(frozen=True)
class VulkanFacts:
    """What Vulkan offers here: its devices, or (none found) why not, in words that say what to install."""

    devices: tuple[VulkanGpu, ...] = ()
    problem: str = ""


def is_vulkan_name(device: object) -> bool:
    """``vulkan`` or ``vulkan:N`` (a ``--device`` value or a setting), in any case."""
    text = str(device or "").strip().lower()
    kind, _, index = text.partition(":")
    return kind == "vulkan" and (not index or index.isdigit())


def ncnn_installed() -> bool:
    """Found, not imported (its import is cheap, but the answer must not depend on having tried)."""
    try:
        return importlib.util.find_spec(NCNN_DIST) is not None
    except (ImportError, ValueError):
        return False


def loader_found() -> bool:
    """Whether the Vulkan loader library is installed, without loading any driver. On macOS ncnn's wheel brings
    MoltenVK, its own Vulkan, so there is nothing to look for."""
    if sys.platform == "darwin":
        return True
    names = ("vulkan-1",) if sys.platform == "win32" else ("libvulkan.so.1", "libvulkan.so")
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return ctypes.util.find_library("vulkan") is not None


def no_loader_reason() -> str:
    """What to install when there is no Vulkan loader, for this operating system."""
    if sys.platform == "win32":
        return (
            "no Vulkan loader (vulkan-1.dll) is installed: install or update your GPU's driver from AMD, Intel or "
            "NVIDIA (each brings Vulkan)"
        )
    return (
        "no Vulkan loader (libvulkan.so.1) is installed: install it with your GPU's Vulkan driver, e.g. "
        "sudo apt install libvulkan1 mesa-vulkan-drivers (Debian, Ubuntu: AMD and Intel GPUs; NVIDIA's own driver "
        "brings its Vulkan driver), or your distribution's vulkan-loader and mesa-vulkan-drivers packages"
    )


_lock = threading.Lock()
_cached: VulkanFacts | None = None
#: One capture at a time: two threads swapping the process's stderr at once could restore each other's temporary file.
_stderr_lock = threading.RLock()


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to the process's stderr meanwhile (ncnn logs each device it opens, and its
    errors, there); the lines are in the yielded list afterwards. The redirection is process-wide: kept to the
    moments ncnn creates an instance or a device, which is also when its messages explain a failure."""
    with _stderr_lock, _redirected_stderr() as lines:
        yield lines


@contextlib.contextmanager
def _redirected_stderr() -> Iterator[list[str]]:
    lines: list[str] = []
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real stderr (a windowed app): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        with contextlib.suppress(OSError, ValueError):
            sys.__stderr__.flush()  # type: ignore[union-attr]
        os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _probe() -> VulkanFacts:
    if not ncnn_installed():
        return VulkanFacts(
            problem=f"the {NCNN_DIST} package (ncnn's Vulkan runtime) is not installed: pip install {NCNN_DIST} "
            "(wheels exist for Python 3.10 to 3.12 on x86-64 Linux, Windows and macOS)"
        )
    if not loader_found():
        return VulkanFacts(problem=no_loader_reason())
    with captured_stderr() as log:
        try:
            import ncnn

            count = int(ncnn.get_gpu_count())
            gpus = []
            for i in range(count):
                info = ncnn.get_gpu_info(i)
                budget = None
                with contextlib.suppress(Exception):  # an old ncnn without the call: memory unknown
                    budget = int(ncnn.get_gpu_device(i).get_heap_budget()) * _MB or None
                gpus.append(VulkanGpu(i, str(info.device_name()), VulkanType.from_ncnn(int(info.type())), budget))
        except Exception as exc:  # noqa: BLE001 - a broken driver must read as "no device", never crash a listing
            return VulkanFacts(problem=f"ncnn could not start Vulkan ({type(exc).__name__}: {exc})")
    if not gpus:
        said = next((line for line in log if "failed" in line.lower()), "")
        detail = f" ({said})" if said else ""
        return VulkanFacts(
            problem=f"the Vulkan loader is installed but found no device{detail}: install your GPU's Vulkan driver "
            "(Linux: mesa-vulkan-drivers for AMD and Intel, NVIDIA's driver for NVIDIA; Windows: the GPU maker's "
            "driver)"
        )
    return VulkanFacts(tuple(gpus))


def vulkan_facts(*, refresh: bool = False) -> VulkanFacts:
    """This machine's Vulkan devices (imports ncnn and creates its Vulkan instance once per process: call it off
    the GUI thread). ``refresh`` probes again (the tests change what the probes see)."""
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = _probe()
        return _cached


def first_hardware(facts: VulkanFacts) -> VulkanGpu | None:
    """The device ``auto`` takes: the first discrete GPU, else the first integrated or virtual one; never software."""
    hardware = [g for g in facts.devices if not g.software]
    order = (VulkanType.DISCRETE, VulkanType.INTEGRATED, VulkanType.VIRTUAL)
    return min(hardware, key=lambda g: (order.index(g.type), g.index), default=None)
