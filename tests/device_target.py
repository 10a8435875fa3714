"""The device and precision the engine tests run in: one place, read from the environment.

``DESKTOP_SR_TEST_DEVICE`` (default ``cpu``): any device ``--device`` accepts (``cuda``, ``cuda:1``, ``xpu``, ``mps``).
``DESKTOP_SR_TEST_PRECISION``:

- ``fp32`` (default): everything in float32, as the CPU runs it.
- ``gpu``: exactly the policy the engine picks for a CUDA card of compute capability 8.0 or later (UNet fp16, VAE
  fp32 with TF32 convolutions). On a CUDA device that is what ``auto`` gives; on the CPU it is emulated
  (fp16 runs there; TF32 by rounding the convolutions' operands).
- ``gpu-sm75``: the policy for a pre-Ampere card (T4, V100, RTX 20xx): UNet fp16, VAE fp32, no TF32.

CI runs the fidelity, composition and strength-map tests a second time with ``DESKTOP_SR_TEST_PRECISION=gpu`` on the
CPU. Tests that compare results byte for byte rely on CPU float32 determinism and say so
(``@pytest.mark.cpu_deterministic``): they are skipped on a GPU, whose kernels may reorder sums between runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

from desktop_sr.engine.hardware.precision import DeviceTraits


class TestPrecision(str, Enum):
    __test__ = False  # not a test class

    FP32 = "fp32"
    GPU = "gpu"
    GPU_SM75 = "gpu-sm75"


@dataclass(frozen=True)
class Tolerance:
    """How far a render in the target precision may be from one in CPU float32, in 8-bit levels (the promise:
    under one level of mean error, at most two at the 99.9th percentile)."""

    mean_levels: float
    p999_levels: float
    #: Mean levels against float32 arithmetic with the tiny *random* models (plumbing tests): a random VAE turns a
    #: rounding into changes of many levels, so only the mean says anything there.
    random_mean_levels: float


#: Per precision, in one place.
TOLERANCES = {
    TestPrecision.FP32: Tolerance(mean_levels=0.05, p999_levels=0.5, random_mean_levels=0.05),
    TestPrecision.GPU: Tolerance(mean_levels=1.0, p999_levels=2.0, random_mean_levels=0.5),
    TestPrecision.GPU_SM75: Tolerance(mean_levels=1.0, p999_levels=2.0, random_mean_levels=0.5),
}


@dataclass(frozen=True)
class Target:
    device: str
    precision: TestPrecision

    @staticmethod
    def from_env() -> Target:
        device = os.environ.get("DESKTOP_SR_TEST_DEVICE", "cpu").strip() or "cpu"
        raw = os.environ.get("DESKTOP_SR_TEST_PRECISION", "fp32").strip().lower() or "fp32"
        try:
            precision = TestPrecision(raw)
        except ValueError:
            names = ", ".join(p.value for p in TestPrecision)
            raise SystemExit(f"DESKTOP_SR_TEST_PRECISION must be one of {names}, not {raw!r}") from None
        return Target(device, precision)

    @property
    def on_cpu(self) -> bool:
        return self.device.split(":")[0] == "cpu"

    @property
    def emulated(self) -> DeviceTraits | None:
        """The device whose precision is emulated here (None: the device's own policy, or plain fp32)."""
        if self.precision is TestPrecision.FP32 or not self.on_cpu:
            return None
        return DeviceTraits.cuda_ampere() if self.precision is TestPrecision.GPU else DeviceTraits.cuda_turing()

    def model_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``PisaModel`` / ``load_pisa_session``: the device, dtype and emulated device."""
        if self.precision is TestPrecision.FP32:
            return {"device": self.device, "dtype": "fp32"}
        if not self.on_cpu:
            return {"device": self.device, "dtype": "auto"}  # the card's own policy
        return {"device": self.device, "dtype": "auto", "emulate": self.emulated}

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.precision]

    def assert_matches_float32_arithmetic(self, got: object, want: object, atol: float = 1e-4) -> None:
        """A render of the tiny random models against the same computation written out in float32: to ``atol``
        in float32; in another precision, within its mean tolerance (the random VAE amplifies any rounding)."""
        import numpy as np

        diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))
        if self.precision is TestPrecision.FP32 and self.on_cpu:
            assert diff.max() < atol, f"max difference {diff.max():.2e} (float32 arithmetic: under {atol:.0e})"
        else:
            mean = diff.mean() * 255
            limit = self.tolerance.random_mean_levels
            assert mean < limit, f"{mean:.3f} levels mean from float32 arithmetic (limit {limit} in {self.precision})"

    @property
    def deterministic(self) -> bool:
        """Whether results repeat bit for bit (the CPU's kernels; a GPU's may reorder sums)."""
        return self.on_cpu


TARGET = Target.from_env()
