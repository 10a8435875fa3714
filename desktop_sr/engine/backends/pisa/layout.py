"""What a PiSA-SR model is on disk, checked without torch: a Stable Diffusion 2.1-base folder in diffusers layout
plus one adapter file (official ``.pkl``, or the app's ``.safetensors`` with its ``.json`` manifest beside it).

Only the files the engine loads are selected for copying and hashing. A full clone of the SD-2.1-base repository
also holds a 5 GB ``.ckpt`` at the top, fp16 and ``.bin`` duplicates and flax weights; copying those would double
the disk space for nothing. diffusers and transformers load the plain ``.safetensors`` weights when present, else
the plain ``.bin``, so that is what is kept (see :func:`select_base_files`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ModelError

#: The sub-folders the engine needs: UNet and VAE for inference, tokenizer and text encoder for the prompt
#: embedding (computed once, then cached), the scheduler for the noise schedule.
REQUIRED_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
#: Sub-folders whose weights must be present, with the config file each must have.
WEIGHTED = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json"}
CONFIGS = {"scheduler": "scheduler_config.json"}
TOP_LEVEL_FILES = ("model_index.json",)
TORCH_WEIGHTS = (".safetensors", ".bin")
#: Weights of other frameworks, never loaded by the engine and never copied.
FOREIGN_WEIGHTS = (".msgpack", ".h5", ".onnx", ".ot", ".ckpt", ".pb", ".tflite", ".mlmodel")
ADAPTER_SUFFIXES = (".pkl", ".safetensors")


def _visible_files(folder: Path) -> list[Path]:
    """Files under ``folder``, skipping hidden entries (``.git``, huggingface_hub's ``.cache``, editor files)."""
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(files) if not f.startswith(".")]
    return found


def _is_variant(name: str) -> bool:
    """``diffusion_pytorch_model.fp16.safetensors`` is a variant; ``model-00001-of-00002.safetensors`` is not."""
    return name.count(".") > 1


def _weights(files: list[Path]) -> list[Path]:
    """The weight files the loader would read: plain safetensors, else plain bin, else whatever torch weights exist."""
    torch_weights = [f for f in files if f.suffix in TORCH_WEIGHTS]
    plain_st = [f for f in torch_weights if f.suffix == ".safetensors" and not _is_variant(f.name)]
    plain_bin = [f for f in torch_weights if f.suffix == ".bin" and not _is_variant(f.name)]
    return plain_st or plain_bin or torch_weights


def check_base_folder(base_dir: Path) -> None:
    """Raise one :class:`ModelError` naming everything missing, or return if ``base_dir`` looks complete."""
    if not base_dir.exists():
        raise ModelError(base_dir, "base model folder not found")
    if not base_dir.is_dir():
        raise ModelError(base_dir, "the base model must be a folder (Stable Diffusion 2.1-base in diffusers layout)")
    missing: list[str] = []
    for sub in REQUIRED_SUBFOLDERS:
        folder = base_dir / sub
        if not folder.is_dir():
            missing.append(f"{sub}/")
            continue
        files = _visible_files(folder)
        if not files:
            missing.append(f"{sub}/ (empty)")
            continue
        if sub in WEIGHTED:
            if not (folder / WEIGHTED[sub]).is_file():
                missing.append(f"{sub}/{WEIGHTED[sub]}")
            if not _weights(files):
                missing.append(f"{sub}/ weights (.safetensors or .bin)")
        if sub in CONFIGS and not (folder / CONFIGS[sub]).is_file():
            missing.append(f"{sub}/{CONFIGS[sub]}")
    if missing:
        raise ModelError(
            base_dir,
            "not a complete Stable Diffusion 2.1-base folder in diffusers layout; missing: " + ", ".join(missing),
        )


def select_base_files(base_dir: Path) -> list[str]:
    """Relative POSIX paths of the files to copy and hash: configs, tokenizer files and the weights the engine loads.

    Call :func:`check_base_folder` first.
    """
    chosen: list[Path] = [base_dir / n for n in TOP_LEVEL_FILES if (base_dir / n).is_file()]
    for sub in REQUIRED_SUBFOLDERS:
        files = [f for f in _visible_files(base_dir / sub) if f.suffix not in FOREIGN_WEIGHTS]
        others = [f for f in files if f.suffix not in TORCH_WEIGHTS]
        chosen += others + _weights(files)
    return sorted({f.relative_to(base_dir).as_posix() for f in chosen})


def adapter_files(adapter: Path) -> list[str]:
    """File names that make up the adapter (the file, plus the manifest of a ``.safetensors``); checks they exist."""
    if not adapter.exists():
        raise ModelError(adapter, "adapter file not found")
    if not adapter.is_file():
        raise ModelError(adapter, "is a folder; choose the adapter file (.pkl or .safetensors)")
    suffix = adapter.suffix.lower()
    if suffix not in ADAPTER_SUFFIXES:
        raise ModelError(adapter, "unknown adapter type (expected an official .pkl or the app's .safetensors)")
    if adapter.stat().st_size == 0:
        raise ModelError(adapter, "the file is empty")
    names = [adapter.name]
    if suffix == ".safetensors":
        manifest = adapter.with_suffix(".json")
        if not manifest.is_file():
            raise ModelError(manifest, "the manifest beside the .safetensors adapter is missing")
        names.append(manifest.name)
    return names


def validate_adapter(adapter: Path) -> None:
    """Load the adapter with the engine's reader (imports torch) so a wrong file is refused at import, not at first
    use. Runs in the caller's thread: the GUI calls it from its worker thread only."""
    from .checkpoint import load_checkpoint  # torch: deliberately not at module level

    load_checkpoint(adapter)
