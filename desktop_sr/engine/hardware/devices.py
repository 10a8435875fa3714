"""What compute devices this machine has, which of them this torch can run on, and why not the others.

A user whose GPU sits unused needs to be told why, in words that say what to install: the README's
``torch==2.13.0`` is a CPU build on Windows, a CUDA build of torch has no kernels for cards older (or newer) than the
architectures it was compiled for, AMD GPUs need a ROCm build (which reports them as ``cuda``) and Intel Arc an XPU
build (``torch.xpu``). ``desktop-sr devices``, the GUI's Device menu and the ``--device`` check all read
:func:`inventory`.

Vulkan devices (:mod:`.vulkan`, through ncnn) are listed too, each with its type and memory: they run the bundled
model on any GPU. A software one (llvmpipe, lavapipe, SwiftShader: the CPU emulating a GPU) is usable by name but
marked ``software`` and never chosen by ``auto``; without Vulkan one entry says why and what to install.

The probing is split so every rule can be tested with fake inputs: :func:`torch_facts` and :func:`physical_gpus`
gather plain data (what this torch sees; what the operating system reports without torch: ``/proc/driver/nvidia``,
``nvidia-smi -L``, ``/sys/class/drm``), and :func:`build_inventory` turns them into :class:`DeviceEntry` values with
no I/O. Importing this module does not import torch (the GUI imports it on its own thread and probes from a worker);
only :func:`torch_facts` and :func:`build_inventory` do.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from .memory import total_ram
from .vulkan import VulkanFacts, VulkanGpu, VulkanType, vulkan_facts

if TYPE_CHECKING:
    from .precision import DeviceKind, DeviceTraits

__all__ = [
    "CUDA_INDEX",
    "GET_STARTED",
    "ROCM_INDEX",
    "XPU_INDEX",
    "DeviceEntry",
    "DeviceUnavailable",
    "HostFacts",
    "PhysicalGpu",
    "TorchFacts",
    "TorchGpu",
    "Vendor",
    "build_inventory",
    "choose",
    "cuda_kernels_for",
    "explain",
    "host_facts",
    "inventory",
    "physical_gpus",
    "torch_facts",
]

#: Where each GPU build of torch comes from. One place to update when PyTorch moves on; the reasons always point at
#: :data:`GET_STARTED` too, which picks the build for the user's driver.
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
ROCM_INDEX = "https://download.pytorch.org/whl/rocm6.4"
XPU_INDEX = "https://download.pytorch.org/whl/xpu"
GET_STARTED = "https://pytorch.org/get-started/locally/"

#: The order ``auto`` tries (the same as :func:`desktop_sr.engine.hardware.device.select_device`): CUDA (NVIDIA, and AMD
#: through ROCm), Intel XPU, Apple MPS, a hardware Vulkan GPU (the bundled model only), the CPU. Plain strings:
#: ``DeviceKind`` is a ``str`` enum, and comparing against strings keeps :func:`choose` free of torch (the GUI calls
#: it on its own thread).
AUTO_ORDER = ("cuda", "xpu", "mps", "vulkan", "cpu")
_KINDS = frozenset(AUTO_ORDER)
_GB = 1024**3
#: What a Vulkan device runs, for the precision column: the bundled model only, fp32 (``--dtype fp16``: fp16 storage).
VULKAN_PRECISION = "fp32 (bundled model only)"
_SMI_TIMEOUT_S = 3.0


class Vendor(str, Enum):
    """GPU makers, as the PCI vendor ids in ``/sys/class/drm/card*/device/vendor`` name them."""

    NVIDIA = "NVIDIA"
    AMD = "AMD"
    INTEL = "Intel"


_PCI_VENDORS = {0x10DE: Vendor.NVIDIA, 0x1002: Vendor.AMD, 0x8086: Vendor.INTEL}
#: PCI device ids of Intel GPUs torch's XPU builds run on: Arc A (Alchemist) and B (Battlemage), Core Ultra's Arc
#: graphics (Meteor, Lunar, Arrow Lake) and the Data Center GPU Max. Other Intel graphics are older integrated GPUs.
_INTEL_XPU_IDS = ((0x5690, 0x56FF), (0xE200, 0xE2FF), (0x7D40, 0x7DFF), (0x6420, 0x64FF), (0x0BD0, 0x0BDF))


@dataclass(frozen=True)
class DeviceEntry:
    """One compute device as a user sees it: what to pass to ``--device``, what it is, and whether it runs."""

    #: What ``--device`` accepts: ``cpu``, ``cuda:0``, ``xpu:0``, ``mps``.
    name: str
    #: What it is, e.g. "NVIDIA GeForce RTX 3060", "AMD Radeon RX 7900 XTX (ROCm)", "CPU: 8 logical cores".
    label: str
    kind: DeviceKind
    memory_bytes: int | None
    usable: bool
    #: The precision the engine would use there (:func:`.precision.policy`), e.g. "fp16 (VAE fp32)";
    #: "" where this torch cannot describe the device.
    precision: str = ""
    #: For an unusable device: why, and what to install.
    reason: str = ""
    #: A Vulkan device that is the CPU emulating a GPU (llvmpipe, lavapipe, SwiftShader): ``auto`` never takes it.
    software: bool = False
    #: A Vulkan device's type as Vulkan reports it ("discrete GPU", "integrated GPU", "virtual GPU", "software
    #: (CPU)"); "" for torch's devices.
    vulkan_type: str = ""

    @property
    def index(self) -> int | None:
        _, _, index = self.name.partition(":")
        return int(index) if index.isdigit() else None

    @property
    def title(self) -> str:
        """How a sentence names it: "CUDA GPU 0", "Intel XPU 0", "the Apple GPU (MPS)", "the CPU"."""
        words = {"cuda": "CUDA GPU", "xpu": "Intel XPU", "mps": "the Apple GPU (MPS)", "cpu": "the CPU",
                 "vulkan": "Vulkan device"}[self.kind]  # fmt: skip
        return words if self.index is None else f"{words} {self.index}"

    def memory_text(self) -> str:
        return "" if self.memory_bytes is None else f"{self.memory_bytes / _GB:.1f} GB"

    def describe(self) -> str:
        """One phrase for a tooltip: "CUDA GPU 0 (NVIDIA GeForce RTX 3060, 12.0 GB, fp16 (VAE fp32, TF32))"."""
        memory = self.memory_text() + (" RAM" if self.memory_bytes is not None and self.kind == "cpu" else "")
        details = [d for d in (self.label, memory, self.precision) if d]
        return f"{self.title} ({', '.join(details)})" if details else self.title

    def as_dict(self) -> dict[str, object]:
        """Plain JSON data (``desktop-sr devices --json``)."""
        return {
            "name": self.name,
            "label": self.label,
            "kind": str(getattr(self.kind, "value", self.kind)),
            "memory_bytes": self.memory_bytes,
            "usable": self.usable,
            "precision": self.precision,
            "reason": self.reason,
            "software": self.software,
            "vulkan_type": self.vulkan_type,
        }


class DeviceUnavailable(ValueError):
    """A device was named that this machine does not have, or this torch cannot run on. A ``ValueError``: the
    engine's own device errors are too, so the CLI and the GUI's relay report it as a plain message."""


# -- facts: plain data gathered by the probes, or written by a test -------------------------------------------------
@dataclass(frozen=True)
class TorchGpu:
    """One device this torch enumerates (``cuda:i``, NVIDIA or ROCm, or ``xpu:i``)."""

    index: int
    name: str
    traits: DeviceTraits
    memory_bytes: int | None = None
    #: ROCm's architecture name (``gfx1100``), from the device properties' ``gcnArchName``; "" elsewhere.
    gcn_arch: str = ""


@dataclass(frozen=True)
class TorchFacts:
    """What the installed torch is and sees: everything :func:`build_inventory` needs from it."""

    version: str
    #: ``torch.version.cuda`` (None: not a CUDA build) and ``torch.version.hip`` (set: a ROCm build).
    cuda: str | None = None
    hip: str | None = None
    #: The architectures this build has kernels for (``torch.cuda.get_arch_list()``: ``sm_86``, ``compute_90``,
    #: or ROCm's ``gfx1100``); empty when torch does not say.
    arch_list: tuple[str, ...] = ()
    cuda_devices: tuple[TorchGpu, ...] = ()
    #: A CUDA build that sees no GPU: the warning torch gave, if any (e.g. "the NVIDIA driver ... is too old").
    cuda_problem: str = ""
    xpu_built: bool = False
    xpu_devices: tuple[TorchGpu, ...] = ()
    mps_built: bool = False
    mps_available: bool = False
    mps_memory: int | None = None
    #: ``HSA_OVERRIDE_GFX_VERSION`` is set: ROCm runs the card as another architecture, so its own name says nothing.
    hsa_override: bool = False

    @property
    def build(self) -> str:
        """What kind of build this is, for a sentence: "a CPU build (torch 2.13.0+cpu)"."""
        if self.hip:
            what = f"a ROCm build (torch {self.version}, HIP {self.hip})"
        elif self.cuda:
            what = f"a CUDA build (torch {self.version}, CUDA {self.cuda})"
        elif self.xpu_built:
            what = f"an Intel XPU build (torch {self.version})"
        else:
            what = f"a CPU build (torch {self.version})"
        return what


@dataclass(frozen=True)
class PhysicalGpu:
    """A GPU the operating system reports, whatever torch makes of it."""

    vendor: Vendor
    label: str
    #: NVIDIA: its own driver is loaded (``/proc/driver/nvidia`` or ``nvidia-smi`` answer), not nouveau or none.
    driver: bool = True
    #: The PCI device id where known (tells an Intel Arc from an older integrated GPU).
    pci_device: int | None = None


@dataclass(frozen=True)
class HostFacts:
    """The CPU side: its name, its logical cores and its memory."""

    cpu_name: str
    cores: int | None
    ram_bytes: int | None


# -- the rules --------------------------------------------------------------------------------------------------------
def cuda_kernels_for(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a CUDA build compiled for ``arch_list`` can run on a card of compute ``capability``.

    A cubin ``sm_XY`` runs on cards of the same major version and a minor version >= Y (``sm_XYa``: that exact chip;
    ``sm_XYf``: its family, as a plain cubin); PTX ``compute_XY`` is compiled by the driver for any card >= X.Y. An
    empty list (a build that does not say) counts as yes: torch then finds out itself."""
    if not arch_list:
        return True
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch.strip().lower())
        if match is None:
            continue
        kind, major, minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if kind == "compute":
            if (major, minor) <= capability:
                return True
        elif suffix == "a":
            if (major, minor) == capability:
                return True
        elif major == capability[0] and minor <= capability[1]:
            return True
    return False


def _cuda_archs(arch_list: Sequence[str]) -> list[tuple[int, int]]:
    found = []
    for arch in arch_list:
        match = re.fullmatch(r"(?:sm|compute)_(\d+)(\d)[af]?", arch.strip().lower())
        if match is not None:
            found.append((int(match[1]), int(match[2])))
    return sorted(found)


def _no_kernels_reason(capability: tuple[int, int], arch_list: Sequence[str]) -> str:
    cap = f"{capability[0]}.{capability[1]}"
    archs = _cuda_archs(arch_list)
    has = f" (it has {', '.join(arch_list)})"
    if archs and capability < archs[0]:
        return (
            f"this torch build has no kernels for compute capability {cap}{has}: the card is older than any this "
            f"torch supports; an older torch release built for it is needed (see {GET_STARTED})"
        )
    return (
        f"this torch build has no kernels for compute capability {cap}{has}; install a torch build for a newer CUDA, "
        f"e.g. pip install torch --index-url {CUDA_INDEX} (the CUDA version for your driver: {GET_STARTED})"
    )


def _amd_label(name: str) -> str:
    name = name.strip() or "GPU"
    return f"{name} (ROCm)" if "AMD" in name.upper() else f"AMD {name} (ROCm)"


def _precision_label(traits: DeviceTraits) -> str:
    from .precision import policy

    return policy(traits).label()


def build_inventory(
    facts: TorchFacts, host: HostFacts, physical: Sequence[PhysicalGpu] = (), vulkan: VulkanFacts | None = None
) -> tuple[DeviceEntry, ...]:
    """Every device, usable or not, in the order ``auto`` tries them; no I/O (the tests hand in fake facts).
    ``vulkan``: what :func:`.vulkan.vulkan_facts` found (None: not looked at, nothing listed)."""
    from .precision import DeviceKind, DeviceTraits

    entries: list[DeviceEntry] = []
    for gpu in facts.cuda_devices:
        reason = ""
        if facts.hip:
            label = _amd_label(gpu.name)
            arch = gpu.gcn_arch.split(":")[0]
            if arch and facts.arch_list and not facts.hsa_override and arch not in facts.arch_list:
                reason = (
                    f"this ROCm build of torch has no kernels for {arch} (it has {', '.join(facts.arch_list)}); "
                    f"install a ROCm build that supports it ({GET_STARTED}), or, for a card close to a supported "
                    "one, set HSA_OVERRIDE_GFX_VERSION"
                )
        else:
            label = gpu.name
            cap = gpu.traits.capability
            if cap is not None and not cuda_kernels_for(cap, facts.arch_list):
                reason = _no_kernels_reason(cap, facts.arch_list)
        precision = _precision_label(gpu.traits)
        entries.append(
            DeviceEntry(f"cuda:{gpu.index}", label, DeviceKind.CUDA, gpu.memory_bytes, not reason, precision, reason)
        )
    entries += _unseen_cuda(facts, physical, DeviceKind.CUDA)
    for gpu in facts.xpu_devices:
        precision = _precision_label(gpu.traits)
        entries.append(DeviceEntry(f"xpu:{gpu.index}", gpu.name, DeviceKind.XPU, gpu.memory_bytes, True, precision))
    entries += _unseen_intel(facts, physical, DeviceKind.XPU)
    if facts.mps_available:
        precision = _precision_label(DeviceTraits(DeviceKind.MPS))
        entries.append(
            DeviceEntry("mps", "Apple GPU (unified memory)", DeviceKind.MPS, facts.mps_memory, True, precision)
        )
    elif facts.mps_built:  # only macOS builds have it
        why = "this Mac cannot run torch's MPS backend (it needs macOS 12.3 or later and an Apple Silicon or AMD GPU)"
        entries.append(DeviceEntry("mps", "Apple GPU", DeviceKind.MPS, None, False, "", why))
    if vulkan is not None:
        entries += _vulkan_entries(vulkan, DeviceKind.VULKAN)
    cores = f"{host.cores} logical cores" if host.cores else ""
    cpu_label = ", ".join(p for p in (host.cpu_name, cores) if p) or "CPU"
    precision = _precision_label(DeviceTraits(DeviceKind.CPU))
    entries.append(DeviceEntry("cpu", cpu_label, DeviceKind.CPU, host.ram_bytes, True, precision))
    return tuple(entries)


def _vulkan_entries(vulkan: VulkanFacts, kind: DeviceKind) -> list[DeviceEntry]:
    """One entry per Vulkan device (its type in the label: "AMD Radeon 780M (integrated GPU)"), or one unusable
    ``vulkan`` entry saying why there is none and what to install."""
    if vulkan.problem or not vulkan.devices:
        why = vulkan.problem or "no Vulkan device found"
        return [DeviceEntry("vulkan", "Vulkan (the bundled model on any GPU)", kind, None, False, "", why)]
    entries = []
    for gpu in sorted(vulkan.devices, key=_vulkan_preference):  # the order auto tries: discrete GPUs first
        what = "software Vulkan, on the CPU" if gpu.software else gpu.type.value
        entries.append(DeviceEntry(gpu.name_for_device, f"{gpu.name} ({what})", kind, gpu.memory_bytes, True,
                                   VULKAN_PRECISION, software=gpu.software, vulkan_type=gpu.type.value))  # fmt: skip
    return entries


def _vulkan_preference(gpu: VulkanGpu) -> tuple[bool, int, int]:
    """Discrete GPUs, then integrated, then virtual, then software; by number within each."""
    return gpu.software, list(VulkanType).index(gpu.type), gpu.index


def _unseen_cuda(facts: TorchFacts, physical: Sequence[PhysicalGpu], cuda: DeviceKind) -> list[DeviceEntry]:
    """NVIDIA and AMD GPUs the operating system reports and this torch does not see at all."""
    entries = []
    nvidia_seen = bool(facts.cuda_devices) and not facts.hip
    amd_seen = bool(facts.cuda_devices) and bool(facts.hip)
    nvidia = [g for g in physical if g.vendor is Vendor.NVIDIA]
    for i, gpu in enumerate([] if nvidia_seen else nvidia):
        if not gpu.driver and not facts.cuda:
            why = (
                f"an NVIDIA GPU is here but neither NVIDIA's driver (nouveau or none is loaded) nor a CUDA build of "
                f"torch is installed (this torch is {facts.build}): install NVIDIA's driver, then "
                f"pip install torch --index-url {CUDA_INDEX} ({GET_STARTED})"
            )
        elif not gpu.driver:
            why = (
                "an NVIDIA GPU is here but NVIDIA's driver is not loaded (nouveau or none): install NVIDIA's driver "
                "and restart"
            )
        elif facts.cuda:
            problem = f" ({facts.cuda_problem})" if facts.cuda_problem else ""
            why = (
                f"an NVIDIA GPU is here but this torch, {facts.build}, cannot use it{problem}: the driver may be "
                f"older than CUDA {facts.cuda} needs (update it, or install a torch build for an older CUDA: "
                f"{GET_STARTED}), or CUDA_VISIBLE_DEVICES hides it"
            )
        else:
            why = (
                f"an NVIDIA GPU is here but this torch is {facts.build}: "
                f"pip install torch --index-url {CUDA_INDEX} (the CUDA version for your driver: {GET_STARTED})"
            )
        entries.append(DeviceEntry(f"cuda:{i}", gpu.label, cuda, None, False, "", why))
    amd = [g for g in physical if g.vendor is Vendor.AMD]
    for i, gpu in enumerate([] if amd_seen else amd):
        if facts.hip:
            why = (
                f"an AMD GPU is here but this ROCm torch (HIP {facts.hip}) sees none: check that ROCm supports this "
                "GPU and that your user is in the render and video groups"
            )
        else:
            why = (
                f"an AMD GPU is here but this torch is {facts.build}; AMD GPUs need ROCm (Linux, a Radeon or Instinct "
                f"GPU ROCm supports) and a ROCm build of torch: pip install torch --index-url {ROCM_INDEX} "
                f"({GET_STARTED})"
            )
        entries.append(DeviceEntry(f"cuda:{i}", gpu.label, cuda, None, False, "", why))
    return entries


def _is_xpu_capable(gpu: PhysicalGpu) -> bool:
    return gpu.pci_device is not None and any(lo <= gpu.pci_device <= hi for lo, hi in _INTEL_XPU_IDS)


def _unseen_intel(facts: TorchFacts, physical: Sequence[PhysicalGpu], xpu: DeviceKind) -> list[DeviceEntry]:
    """Intel GPUs the operating system reports and this torch does not see (Arc needs an XPU build)."""
    if facts.xpu_devices:
        return []
    entries = []
    for i, gpu in enumerate(g for g in physical if g.vendor is Vendor.INTEL):
        if not _is_xpu_capable(gpu):
            why = (
                "an older Intel integrated GPU: torch's XPU builds run on Intel Arc, Core Ultra and Data Center GPUs "
                "only"
            )
        elif facts.xpu_built:
            why = (
                "an Intel GPU is here but this XPU build of torch sees none: install Intel's GPU driver "
                f"({GET_STARTED})"
            )
        else:
            why = (
                f"an Intel GPU is here but this torch is {facts.build}, without XPU support: "
                f"pip install torch --index-url {XPU_INDEX} ({GET_STARTED})"
            )
        entries.append(DeviceEntry(f"xpu:{i}", gpu.label, xpu, None, False, "", why))
    return entries


def choose(entries: Sequence[DeviceEntry], preference: str | None = "auto", *, vulkan: bool = True) -> DeviceEntry:
    """The device ``preference`` means here: ``auto`` is the first usable one in :data:`AUTO_ORDER` (never a
    software Vulkan device; no Vulkan device at all with ``vulkan=False``, for a model that needs torch); ``cuda``
    (no index) the first usable CUDA device (``vulkan`` the first hardware one); ``cuda:1`` exactly that one. Raises
    :class:`DeviceUnavailable` with one line saying why and what this machine has instead. Torch-free (works on the
    GUI thread)."""
    pref = (preference or "auto").strip().lower()
    usable = [e for e in entries if e.usable]
    if pref == "auto":
        for kind in AUTO_ORDER:
            if kind == "vulkan" and not vulkan:
                continue
            for entry in usable:
                if entry.kind == kind and not entry.software:
                    return entry
        raise DeviceUnavailable("no usable device (not even the CPU was listed)")
    kind, _, index = pref.partition(":")
    if kind not in _KINDS or (index and not index.isdigit()):
        raise DeviceUnavailable(f"unknown device {preference!r}: use auto, cpu, cuda[:N], xpu[:N], mps or vulkan[:N]")
    if kind in ("cpu", "mps") and index in ("", "0"):
        pref = kind
    matches = [e for e in entries if e.kind == kind and (not index or e.name == pref)]
    if not matches:  # "vulkan:0" where Vulkan itself is missing: its one entry says why
        matches = [e for e in entries if e.kind == kind and e.index is None and not e.usable]
    for entry in sorted(matches, key=lambda e: e.software):
        if entry.usable:
            return entry
    names = ", ".join(["auto", *(e.name for e in usable)])
    if matches:
        raise DeviceUnavailable(
            f"{pref} ({matches[0].label}) cannot be used: {matches[0].reason}. Usable here: {names}"
        )
    raise DeviceUnavailable(f"there is no {pref} here. Usable here: {names} (desktop-sr devices says why)")


def find(entries: Sequence[DeviceEntry], device: str) -> DeviceEntry | None:
    """The entry of a device the engine reports (``cuda:0``, or ``cuda`` for the current one), or None."""
    try:
        return choose(entries, device)
    except DeviceUnavailable:
        return None


def explain(entries: Sequence[DeviceEntry], preference: str | None, device: str | None = None) -> str:
    """Why the engine runs where it runs, for the GUI's status tooltip: "Automatic: CUDA GPU 0 (NVIDIA ...)", or
    "Automatic: the CPU (...). No usable GPU: <why>". ``device`` is where the model loaded (``ModelInfo.device``);
    without it, where ``preference`` would go."""
    pref = (preference or "auto").strip().lower()
    entry = find(entries, device) if device else find(entries, pref)
    if entry is None:
        return f"{device or pref}: not in this machine's device list (desktop-sr devices)"
    head = f"Automatic: {entry.describe()}" if pref == "auto" else f"Chosen in the Device menu: {entry.describe()}"
    if entry.kind != "cpu":
        return head
    gpus = [e for e in entries if e.kind != "cpu"]
    by_reason: dict[str, list[str]] = {}  # two cards with one cause: the cause once
    for e in gpus:
        if not e.usable:
            by_reason.setdefault(e.reason, []).append(e.label)
    if by_reason:
        return (
            head + ". No usable GPU: " + "; ".join(f"{', '.join(labels)}: {why}" for why, labels in by_reason.items())
        )
    if not gpus:
        return head + ". No GPU found"
    return head


# -- the probes -------------------------------------------------------------------------------------------------------
def torch_facts() -> TorchFacts:
    """What the installed torch is and sees. Initialises CUDA/XPU where present (call it off the GUI thread); a card
    torch warns about (no kernels, driver too old) is recorded, never raised on."""
    import torch

    from .device import device_traits
    from .precision import DeviceKind, DeviceTraits

    version = torch.__version__
    cuda, hip = getattr(torch.version, "cuda", None), getattr(torch.version, "hip", None)
    cuda_devices: list[TorchGpu] = []
    arch_list: tuple[str, ...] = ()
    cuda_problem = ""
    try:
        if torch.cuda.is_available():
            arch_list = tuple(torch.cuda.get_arch_list())
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                try:
                    traits = device_traits(torch.device(f"cuda:{i}"))
                except (RuntimeError, AssertionError):
                    cap = None if hip else (int(props.major), int(props.minor))
                    traits = DeviceTraits(DeviceKind.CUDA, cap, total_memory=int(props.total_memory), hip=bool(hip))
                gcn_arch = str(getattr(props, "gcnArchName", "") or "")
                cuda_devices.append(TorchGpu(i, str(props.name), traits, int(props.total_memory), gcn_arch))
        elif cuda or hip:
            torch.cuda.init()  # a GPU build that sees none: its initialisation says why (driver too old, none...)
    except (RuntimeError, AssertionError) as exc:
        cuda_problem = (str(exc).strip().splitlines() or [""])[0]
    xpu = getattr(torch, "xpu", None)
    xpu_built = False
    xpu_devices: list[TorchGpu] = []
    with contextlib.suppress(RuntimeError, AssertionError, AttributeError):
        xpu_built = bool(xpu is not None and xpu._is_compiled())
        if xpu is not None and xpu.is_available():
            for i in range(xpu.device_count()):
                props = xpu.get_device_properties(i)
                memory = getattr(props, "total_memory", None)
                traits = device_traits(torch.device(f"xpu:{i}"))
                xpu_devices.append(TorchGpu(i, str(props.name), traits, None if memory is None else int(memory)))
    mps = getattr(torch.backends, "mps", None)
    mps_built = bool(mps is not None and mps.is_built())
    mps_available = bool(mps is not None and mps.is_available())
    mps_memory = None
    if mps_available:
        with contextlib.suppress(RuntimeError, AttributeError):
            mps_memory = int(torch.mps.recommended_max_memory())
    return TorchFacts(version, cuda, hip, arch_list, tuple(cuda_devices), cuda_problem, xpu_built,
                      tuple(xpu_devices), mps_built, mps_available, mps_memory,
                      bool(os.environ.get("HSA_OVERRIDE_GFX_VERSION")))  # fmt: skip


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _nvidia_from_proc(proc_root: Path) -> list[PhysicalGpu]:
    """``/proc/driver/nvidia/gpus/<bus id>/information`` (Linux, NVIDIA's driver): "Model: NVIDIA GeForce ..."."""
    found = []
    with contextlib.suppress(OSError):
        for info in sorted(proc_root.glob("*/information")):
            match = re.search(r"^Model:\s*(.+)$", _read(info), re.MULTILINE)
            found.append(PhysicalGpu(Vendor.NVIDIA, match[1].strip() if match else "NVIDIA GPU"))
    return found


def _nvidia_from_smi(output: str) -> list[PhysicalGpu]:
    """``nvidia-smi -L``: "GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-...)" per GPU (MIG lines are skipped)."""
    found = []
    for line in output.splitlines():
        match = re.match(r"GPU \d+: (.+?)(?: \(UUID: [^)]*\))?\s*$", line.strip())
        if match:
            found.append(PhysicalGpu(Vendor.NVIDIA, match[1].strip()))
    return found


def _hex(path: Path) -> int | None:
    try:
        return int(_read(path).strip(), 16)
    except ValueError:
        return None


def _from_sysfs(drm_root: Path) -> list[PhysicalGpu]:
    """``/sys/class/drm/cardN/device/vendor`` (Linux, any driver): NVIDIA, AMD and Intel GPUs by PCI vendor id."""
    found, seen = [], set()
    with contextlib.suppress(OSError):
        cards = sorted((p for p in drm_root.iterdir() if re.fullmatch(r"card\d+", p.name)),
                       key=lambda p: int(p.name[4:]))  # fmt: skip
        for card in cards:
            device = card / "device"
            vendor = _PCI_VENDORS.get(_hex(device / "vendor") or -1)
            if vendor is None:
                continue
            with contextlib.suppress(OSError):
                key = device.resolve()
                if key in seen:
                    continue
                seen.add(key)
            pci = _hex(device / "device")
            pci_text = f" (PCI {_hex_id(device / 'vendor')}:{pci:04x})" if pci is not None else ""
            arc = vendor is Vendor.INTEL and _is_xpu_capable(PhysicalGpu(vendor, "", pci_device=pci))
            found.append(PhysicalGpu(vendor, f"{vendor.value}{' Arc' if arc else ''} GPU{pci_text}", False, pci))
    return found


def _hex_id(path: Path) -> str:
    value = _hex(path)
    return "" if value is None else f"{value:04x}"


def run_nvidia_smi() -> str:
    """``nvidia-smi -L``'s output, or "" where there is none (no driver, not on PATH, hung: a 3 s limit)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window flashing up from the GUI on Windows
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=False,
                              creationflags=flags)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def physical_gpus(
    drm_root: Path = Path("/sys/class/drm"),
    nvidia_proc: Path = Path("/proc/driver/nvidia/gpus"),
    nvidia_smi: Callable[[], str] | str | None = run_nvidia_smi,
) -> list[PhysicalGpu]:
    """The GPUs the operating system reports, without torch. NVIDIA's own driver names its cards (``/proc``, or
    ``nvidia-smi -L``, which also works on Windows); ``/sys/class/drm`` finds AMD and Intel GPUs on Linux, and
    NVIDIA cards without NVIDIA's driver. ``nvidia_smi`` is the command's output, a function returning it (run only
    if ``/proc`` says nothing), or None to skip it."""
    nvidia = _nvidia_from_proc(nvidia_proc)
    if not nvidia and nvidia_smi is not None:
        nvidia = _nvidia_from_smi(nvidia_smi() if callable(nvidia_smi) else nvidia_smi)
    sysfs = _from_sysfs(drm_root)
    if not nvidia:
        nvidia = [g for g in sysfs if g.vendor is Vendor.NVIDIA]
    return nvidia + [g for g in sysfs if g.vendor is not Vendor.NVIDIA]


def _cpu_name() -> str:
    cpuinfo = _read(Path("/proc/cpuinfo"))
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    if match:
        return " ".join(match[1].split())
    return platform.processor() or platform.machine()


def host_facts() -> HostFacts:
    """The CPU's name, the logical cores this process may use, and the machine's memory."""
    try:
        cores: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Windows or macOS
        cores = os.cpu_count()
    return HostFacts(_cpu_name(), cores, total_ram())


def inventory(facts: TorchFacts | None = None) -> tuple[DeviceEntry, ...]:
    """This machine's devices (probes torch, ``/proc``, ``/sys``, ``nvidia-smi`` and Vulkan: call it off the GUI
    thread);
    ``facts``: what :func:`torch_facts` already said.

    ``nvidia-smi`` runs only when this torch sees no NVIDIA GPU (it is what says one is there anyway)."""
    facts = facts or torch_facts()
    sees_nvidia = bool(facts.cuda_devices) and not facts.hip
    physical = physical_gpus(nvidia_smi=None if sees_nvidia else run_nvidia_smi)
    return build_inventory(facts, host_facts(), physical, vulkan_facts())
