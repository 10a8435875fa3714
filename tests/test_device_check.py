"""bench/device_check.py runs here: ``--device cpu --quick`` on tiny models (issue 24).

The command a GPU machine runs, on the CPU with the GPU precision emulated: its JSON has every section with finite
numbers, and the engine's GPU policy keeps the fidelity promise against CPU fp32 (the trained small VAE, a real
photo) untiled, tiled, with a local strength map and for a visible region. Times are printed, never asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = {"untiled", "untiled crop", "local map", "tiled", "region"}
POLICIES = {"fp32", "gpu", "gpu-sm75", "vae-bf16", "vae-fp16-noupcast"}


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The JSON of one quick run (its models built in a temporary folder), with what it printed."""
    out = tmp_path_factory.mktemp("device_check")
    cmd = [sys.executable, str(ROOT / "bench" / "device_check.py"), "--device", "cpu", "--quick",
           "--json", str(out / "check.json"), "--work", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads((out / "check.json").read_text(encoding="utf-8"))
    data["printed"] = proc.stdout
    return data


def numbers(row: dict, *keys: str) -> list[float]:
    return [row[k] for k in keys]


def test_every_section_is_there_with_finite_numbers(check):
    assert check["meta"]["device"] == "cpu" and check["meta"]["quick"] is True
    rows = check["precision"]["rows"]
    assert {(r["policy"], r["case"]) for r in rows} == {(p, c) for p in POLICIES for c in CASES}
    for r in rows:
        values = numbers(r, "max_levels", "mean_levels", "p999_levels", "psnr_db")
        assert all(isinstance(v, float) and math.isfinite(v) for v in values), r
        assert r["nonfinite"] >= 0 and r["z_dtype"] in ("fp32", "fp16", "bf16") and r["label"]

    speed = check["speed"]
    cases = {(r["size"], r["case"]) for r in speed["rows"]}
    assert {"first render", "slider change", "realism change", "visible region"} <= {c for _, c in cases}
    assert len({s for s, _ in cases}) == 2  # the small size and the large, tiled one
    for r in speed["rows"]:
        assert math.isfinite(r["seconds"]) and r["seconds"] > 0 and math.isfinite(r["peak_mb"])
    measured = [v for v in speed["variants"] if v["ratio"] is not None]
    assert {v["variant"] for v in measured} >= {"fp32 contiguous", "fp16 channels_last", "bf16 channels_last", "fp16"}
    for v in measured:
        assert all(math.isfinite(x) and x > 0 for x in numbers(v, "baseline_s", "variant_s", "ratio"))
    assert all(v["note"] for v in speed["variants"] if v["ratio"] is None)  # cuDNN, torch.compile: why not

    assert check["cards"] is None and "needs a CUDA device" in check["printed"]
    for title in ("1. precision", "2. speed", "3. simulated small cards"):
        assert title in check["printed"]


def test_emulated_gpu_precision_keeps_the_fidelity_goal(check):
    """The GPU policy (UNet fp16, VAE fp32 with TF32 convolutions) against CPU fp32: within 1 level on average and
    2 levels at the 99.9th percentile in every case, nothing non-finite."""
    gpu = [r for r in check["precision"]["rows"] if r["policy"] == "gpu"]
    assert {r["case"] for r in gpu} == CASES
    for r in gpu:
        assert r["mean_levels"] < 1.0, r
        assert r["p999_levels"] <= 2.0, r
        assert r["nonfinite"] == 0, r
    assert check["precision"]["goal"]["met"] is True


def test_each_policy_caches_one_dtype_per_tensor_kind(check):
    """Tiled or not, with maps or not: a session's z_L and eps keep the dtype their network produced."""
    for policy in POLICIES:
        rows = [r for r in check["precision"]["rows"] if r["policy"] == policy]
        assert len({r["z_dtype"] for r in rows}) == 1, rows
        assert len({r["eps_dtype"] for r in rows}) == 1, rows
    gpu = next(r for r in check["precision"]["rows"] if r["policy"] == "gpu")
    assert (gpu["z_dtype"], gpu["eps_dtype"]) == ("fp32", "fp16")
