"""Reading a community upscaler file safely and running it through spandrel.

Safety first: a ``.pth``/``.pt``/``.ckpt`` is a pickle, and unpickling can run any code the file's author wrote. So
the file is read with ``torch.load(weights_only=True)`` (tensors and plain containers only; anything else is refused
before it is built) and never with TorchScript (which spandrel would try for ``.pt``). ``.safetensors`` holds
tensors only. Then spandrel's registry recognises the architecture from the tensor names and shapes alone.
"""

from __future__ import annotations

import logging
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from ...api import ModelInfo
from ...errors import ModelError
from ...families import OpenOptions
from ...hardware.device import conv_memory_format, select_device, select_dtype
from ...upscaler.network import Network
from ...upscaler.session import UpscalerSession, color_fix_note, int_option, tiles_from_options
from ...upscaler.tiled import NetTiles
from .family import KIND, SUFFIXES

log = logging.getLogger(__name__)

#: Architectures built on windowed self-attention: several times a CNN's working memory per pixel, and tiles kept
#: small on the CPU (attention cost grows with the tile).
TRANSFORMERS = frozenset({"SwinIR", "Swin2SR", "HAT", "DAT", "RGT", "DRCT", "ATD", "GRL", "IPT", "SRFormer", "MoESR"})
#: Purposes this app can use: a whole photo in, the same photo larger (or restored) out.
USABLE_PURPOSES = ("SR", "Restoration")
CNN_BYTES_PER_INPUT_PX = 16 * 1024  # measured for RRDBNet x4 (three 64-channel maps at 16x the pixels dominate)
TRANSFORMER_BYTES_PER_INPUT_PX = 64 * 1024


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, without running any code from it. Raises :class:`ModelError` naming the file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ModelError(path, f"not an upscaler file (expected {', '.join(SUFFIXES)})")
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
        if not _looks_like_checkpoint(path):  # bytes that are no checkpoint at all, rather than a refused object
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


def _looks_like_checkpoint(path: Path) -> bool:
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


def read_model(path: Path):  # noqa: ANN201 - spandrel's ImageModelDescriptor, imported lazily
    """Recognise the architecture of the file's weights; :class:`ModelError` with the reason otherwise."""
    import_spandrel(path)  # a clear message when spandrel or a matching torchvision is missing
    from spandrel import MAIN_REGISTRY, ImageModelDescriptor, UnsupportedModelError, canonicalize_state_dict

    state = read_state(path)
    try:
        with warnings.catch_warnings():  # architectures' own deprecation notes are not the user's business
            warnings.simplefilter("ignore", UserWarning)
            descriptor = MAIN_REGISTRY.load(canonicalize_state_dict(state))
    except UnsupportedModelError as exc:
        keys = ", ".join(list(state)[:3])
        raise ModelError(
            path,
            f"unknown architecture: none of the {len(MAIN_REGISTRY)} that spandrel knows matches its weights "
            f"(first keys: {keys})",
        ) from exc
    except (KeyError, ValueError, RuntimeError, AssertionError, TypeError, IndexError) as exc:
        raise ModelError(path, f"the weights look like a known architecture but do not fit it ({exc})") from exc
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose not in USABLE_PURPOSES:
        purpose = getattr(descriptor, "purpose", "another task")
        what = {"FaceSR": "a face restoration model", "Inpainting": "an inpainting model"}.get(purpose, purpose)
        raise ModelError(path, f"{descriptor.architecture.name} is {what}, not an upscaler for whole photos")
    if descriptor.output_channels not in (1, 3, 4) or descriptor.input_channels not in (1, 3, 4):
        raise ModelError(path, f"reads {descriptor.input_channels} and writes {descriptor.output_channels} channels")
    return descriptor


def describe(descriptor) -> dict[str, str]:  # noqa: ANN001
    """What the model manager and ``models list`` show about a detected model."""
    req = descriptor.size_requirements
    channels = {1: "grey", 3: "RGB", 4: "RGBA"}[descriptor.input_channels]
    facts = {
        "architecture": descriptor.architecture.name,
        "scale": f"x{descriptor.scale}",
        "input": channels,
        "fp16": "yes" if descriptor.supports_half else "no",
    }
    if req.multiple_of > 1 or req.minimum > 0:
        facts["size"] = f"multiple of {req.multiple_of}" + (f", at least {req.minimum} px" if req.minimum else "")
    if descriptor.purpose == "Restoration":
        facts["purpose"] = "restoration (x1)"
    return facts


def load_community_session(
    path: Path,
    name: str,
    options: OpenOptions,
    *,
    tile: int | str | None = None,
    overlap: int | str | None = None,
    cache_mb: int | str | None = None,
    **unknown: object,
) -> UpscalerSession:
    """Open a community upscaler file as a session on the device ``options`` ask for."""
    if unknown:
        raise ModelError(path, f"unknown option(s) for a community upscaler: {', '.join(sorted(unknown))}")
    descriptor = read_model(path)
    device = select_device(options.device)
    dtype = select_dtype(options.dtype, device)
    if dtype == torch.float16 and not descriptor.supports_half:
        dtype = torch.float32  # e.g. some transformers overflow in fp16: the architecture says so
        log.info("%s runs in fp32: %s does not support fp16", path.name, descriptor.architecture.name)
    if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
        dtype = torch.float32
    descriptor.to(device).to(dtype).eval()
    module = descriptor.model.to(memory_format=conv_memory_format(device))
    module.requires_grad_(False)
    arch = descriptor.architecture.name
    transformer = arch in TRANSFORMERS
    info = ModelInfo(
        name=name or path.stem,
        kind=KIND,
        device="",
        dtype="",
        supports_realism=False,
        supports_prompt=False,
        supports_color_fix=False,
        color_fix_note=color_fix_note(name or path.stem),
        licence=f"{arch} x{descriptor.scale} from {path.name}: see where you downloaded it for its licence",
        scales=tuple(sorted({1, 2, 3, 4, descriptor.scale})),
    )
    per_px = TRANSFORMER_BYTES_PER_INPUT_PX if transformer else CNN_BYTES_PER_INPUT_PX
    per_px = max(per_px, per_px * descriptor.scale**2 // 16)
    network = Network(
        descriptor,  # its __call__ pads to the architecture's size rules and crops the output back
        descriptor.scale,
        info,
        input_channels=descriptor.input_channels,
        bytes_per_input_px=per_px,
        largest_tile=128 if transformer and device.type == "cpu" else None,
    )
    tiles = tiles_from_options(tile, overlap)
    if tiles is None and descriptor.tiling.name == "INTERNAL":
        tiles = NetTiles(tile=1 << 14, overlap=0)  # the model tiles itself: hand it the whole photo
    budget = int_option("cache_mb", cache_mb, 1, 1 << 20) if cache_mb is not None else options.cache_mb
    return UpscalerSession(network, device=device, dtype=dtype, tiles=tiles, cache_mb=budget, weights_path=path)
