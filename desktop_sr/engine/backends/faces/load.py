"""Reading a face model file safely and running one aligned face through it with spandrel's architecture classes.

The file is read by :func:`~desktop_sr.engine.weights_file.read_state` (tensors only). Only the face architectures
are tried (a registry of their own: GFPGAN and RestoreFormer from spandrel, CodeFormer from spandrel-extra-arches
when it is installed), so a community upscaler given as a face model is named as what it is. The networks read and
write RGB in [-1, 1] (their training normalisation); spandrel's own call functions differ in this, so the networks
are called here directly.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ...errors import ModelError
from ...families import OpenOptions
from ...hardware.device import select_device, select_dtype
from ...weights_file import import_spandrel, read_state
from .family import ARCHITECTURES, Architecture

log = logging.getLogger(__name__)


def _face_registry():  # noqa: ANN202 - spandrel's ArchRegistry
    from spandrel import ArchRegistry, ArchSupport
    from spandrel.architectures.GFPGAN import GFPGANArch
    from spandrel.architectures.RestoreFormer import RestoreFormerArch

    registry = ArchRegistry()
    registry.add(ArchSupport.from_architecture(GFPGANArch()), ArchSupport.from_architecture(RestoreFormerArch()))
    try:
        with warnings.catch_warnings():  # its module decorates a helper with torch.jit.script, which torch 2.14
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)  # deprecates
            from spandrel_extra_arches.architectures.CodeFormer import CodeFormerArch
    except ImportError:
        log.info("spandrel-extra-arches is not installed: CodeFormer models cannot be read")
    else:
        registry.add(ArchSupport.from_architecture(CodeFormerArch()))
    return registry


def descriptor_from_state(state: dict[str, torch.Tensor], path: Path):  # noqa: ANN201 - ImageModelDescriptor
    """Build the face network a state dict describes; :class:`ModelError` naming what the file is otherwise."""
    import_spandrel(path)
    from spandrel import MAIN_REGISTRY, UnsupportedModelError, canonicalize_state_dict

    state = canonicalize_state_dict(state)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _face_registry().load(state)
    except UnsupportedModelError:
        pass
    except (KeyError, ValueError, RuntimeError, AssertionError, TypeError, IndexError) as exc:
        raise ModelError(path, f"the weights look like a face model but do not fit it ({exc})") from exc
    if "position_emb" in state and "idx_pred_layer.1.weight" in state:
        raise ModelError(path, "is a CodeFormer model: install spandrel-extra-arches (desktop-sr[faces]) to read it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            other = MAIN_REGISTRY.load(state)
    except Exception:  # noqa: BLE001 - any failure here only means "not a known model"
        other = None
    if other is not None:
        raise ModelError(
            path,
            f"is a {other.architecture.name} {other.purpose} model, not a face restoration model (GFPGAN, "
            "RestoreFormer, CodeFormer): import it as an upscaler instead",
        )
    raise ModelError(path, "not a face restoration model this app knows (GFPGAN v1.3/v1.4, RestoreFormer, CodeFormer)")


def read_face_model(path: Path):  # noqa: ANN201 - ImageModelDescriptor
    return descriptor_from_state(read_state(path, "a face model file"), path)


class SpandrelFaceRestorer:
    """One face network on a device: an aligned 512 x 512 RGB face in, the restored face out (numpy, [0, 1])."""

    def __init__(self, descriptor, name: str, device: torch.device, dtype: torch.dtype) -> None:  # noqa: ANN001
        self.arch: Architecture = next(a for a in ARCHITECTURES if a.name == descriptor.architecture.id)
        self.name = name
        self.architecture = self.arch.name
        self.has_fidelity = self.arch.fidelity
        self.licence = self.arch.licence
        self.device, self.dtype = device, dtype
        self.module = descriptor.model.to(device=device, dtype=dtype).eval()
        self.module.requires_grad_(False)

    @torch.inference_mode()
    def restore(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crop, np.float32)).permute(2, 0, 1)[None]
        x = (x * 2 - 1).to(self.device, self.dtype)
        if self.architecture == "GFPGAN":
            out = self.module(x, return_rgb=False, randomize_noise=False)[0]
        elif self.architecture == "CodeFormer":
            out = self.module(x, weight=float(fidelity))[0]
        else:
            out = self.module(x)[0]
        out = ((out.float() + 1) / 2).clamp_(0, 1)
        return out[0].permute(1, 2, 0).cpu().numpy()


def load_restorer(path: Path, name: str, options: OpenOptions) -> SpandrelFaceRestorer:
    """Open a face model file on the device ``options`` ask for (fp32, or bf16 where asked: none supports fp16)."""
    descriptor = read_face_model(path)
    device = select_device(options.device)
    dtype = select_dtype(options.dtype, device)
    if dtype == torch.float16 or (dtype == torch.bfloat16 and not descriptor.supports_bfloat16):
        dtype = torch.float32  # these architectures overflow in fp16 (spandrel says so)
    return SpandrelFaceRestorer(descriptor, name, device, dtype)
