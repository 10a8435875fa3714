"""Reading a weights file safely: its tensors, never code (shared by the families that read community files).

A ``.pth``/``.pt``/``.ckpt`` is a pickle, and unpickling can run any code the file's author wrote. So the file is
read with ``torch.load(weights_only=True)`` (tensors and plain containers only; anything else is refused before it
is built) and never with TorchScript. ``.safetensors`` holds tensors only.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .errors import ModelError
from .families import WEIGHTS_SUFFIXES


def read_state(path: Path, what: str = "an upscaler file") -> dict[str, torch.Tensor]:
    """The file's tensors, without running any code from it. Raises :class:`ModelError` naming the file."""
    suffix = path.suffix.lower()
    if suffix not in WEIGHTS_SUFFIXES:
        raise ModelError(path, f"not {what} (expected {', '.join(WEIGHTS_SUFFIXES)})")
    if not path.is_file():
        raise ModelError(path, "not found" if not path.exists() else "is a folder; choose the weights file")
    if path.stat().st_size == 0:
        raise ModelError(path, "the file is empty")
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(path, f"not a readable .safetensors file ({exc})") from exc
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not looks_like_checkpoint(path):  # bytes that are no checkpoint at all, rather than a refused object
            raise ModelError(path, "not a model file, or a damaged one (it is not a PyTorch checkpoint)") from exc
        raise ModelError(
            path,
            "refused: the file holds Python objects besides weights, and loading them could run code. "
            "Ask for a .safetensors version, or convert it where you trust it",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(path, f"not a model file, or a damaged one ({str(exc).splitlines()[0][:160]})") from exc
    if not isinstance(raw, dict):
        raise ModelError(path, f"holds a {type(raw).__name__}, not a dictionary of weights")
    return raw  # spandrel's canonicalisation unwraps "params_ema", "state_dict", "model" and the like


def looks_like_checkpoint(path: Path) -> bool:
    """A PyTorch checkpoint is a zip archive (torch.save since 1.6) or a bare pickle (protocol 2+ starts with 0x80)."""
    if zipfile.is_zipfile(path):
        return True
    with path.open("rb") as f:
        return f.read(1) == b"\x80"


def import_spandrel(path: Path) -> None:
    """Import spandrel, or raise a :class:`ModelError` that says what to install: it imports torchvision, which must
    match torch exactly (a mismatched pair fails at import with "operator torchvision::nms does not exist")."""
    try:
        import spandrel  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        raise ModelError(
            path,
            f"community upscalers need spandrel with a torchvision that matches this torch {torch.__version__} "
            f"({str(exc).splitlines()[0][:120]}); see the README's set-up command",
        ) from exc
