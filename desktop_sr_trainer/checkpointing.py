"""Resumable training checkpoints: LoRA tensors, optimizer, grad scaler, RNG states and the run's position.

A checkpoint is a folder ``checkpoints/step-0000500/`` holding ``lora.safetensors`` (every LoRA tensor, both
branches) and ``state.pt`` (the rest). It is written under a temporary name and renamed into place, so a kill at
any moment leaves either the previous checkpoints or a complete new one, never half of one; resume picks the newest
complete folder. Data need not be saved: samples are addressed by index (see :mod:`desktop_sr_trainer.data`).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

_NAME = re.compile(r"^step-(\d{7,})$")
LORA_FILE = "lora.safetensors"
STATE_FILE = "state.pt"


@dataclass
class TrainState:
    step: int  # optimizer steps completed
    stage: int  # the stage the optimizer state belongs to
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None = None
    ldg: dict[str, float] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0  # seconds of training so far (for the ETA after a resume)
    config: dict[str, Any] = field(default_factory=dict)


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    # every accelerator present keeps its own generator; the device the run trains on was chosen elsewhere
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if _mps_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and _mps_available():
        torch.mps.set_rng_state(state["mps"])


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:07d}"


def save_checkpoint(root: Path, lora: dict[str, torch.Tensor], state: TrainState, keep: int) -> Path:
    """Write one checkpoint atomically and prune all but the newest ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(root, state.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in lora.items()}, str(tmp / LORA_FILE))
    torch.save(state.__dict__, tmp / STATE_FILE)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same step saved again (e.g. the final save right after a periodic one)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / LORA_FILE).is_file() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], TrainState]:
    lora = load_file(str(path / LORA_FILE))
    # our own file; it holds numpy RNG state and plain Python objects, so the full unpickler is needed
    raw = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    return lora, TrainState(**raw)
