"""Export trained adapters in the app's format (``.safetensors`` + JSON manifest) and the official ``.pkl``.

The engine's writers are used as they are, so an export opens in the app (and in the reference code, for the
``.pkl``) with no conversion step. The manifest records the trained timesteps: with RCOD grouping those are the
realism levels k, 2k, ..., nk that the app then offers; without it, the one input timestep (PiSA-SR's t = 1).
"""

from __future__ import annotations

from pathlib import Path

from desktop_sr.engine.backends.pisa.checkpoint import LoraCheckpoint, load_checkpoint, save_app, save_official


def export_adapters(ckpt: LoraCheckpoint, folder: Path, name: str, official_pkl: bool = True) -> list[Path]:
    """Write ``folder/name.safetensors`` + ``name.json`` (and ``name.pkl``), check they load back, return paths."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.name = name
    paths = [save_app(ckpt, folder / f"{name}.safetensors")]
    paths.append(paths[0].with_suffix(".json"))
    if official_pkl:
        paths.append(save_official(ckpt, folder / f"{name}.pkl"))
    back = load_checkpoint(paths[0])  # fail here, not in the user's app, if anything is off
    if back.fingerprint() != ckpt.fingerprint():
        raise RuntimeError(f"{paths[0]}: the exported adapters do not read back identically")
    return paths
