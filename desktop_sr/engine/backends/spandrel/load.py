"""Reading a community upscaler file safely and running it through spandrel.

Safety first: the file is read by :func:`~desktop_sr.engine.weights_file.read_state` (tensors only, never a pickle's
objects, never TorchScript, which spandrel would try for ``.pt``). Then spandrel's registry recognises the
architecture from the tensor names and shapes alone.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from ...api import ModelInfo
from ...errors import ModelError
from ...families import OpenOptions
from ...hardware.device import conv_memory_format, select_device, select_dtype
from ...upscaler.network import Network
from ...upscaler.session import UpscalerSession, color_fix_note, int_option, tiles_from_options
from ...upscaler.tiled import NetTiles
from ...weights_file import import_spandrel, read_state
from .family import KIND

log = logging.getLogger(__name__)

#: Architectures built on windowed self-attention: several times a CNN's working memory per pixel, and tiles kept
#: small on the CPU (attention cost grows with the tile).
TRANSFORMERS = frozenset({"SwinIR", "Swin2SR", "HAT", "DAT", "RGT", "DRCT", "ATD", "GRL", "IPT", "SRFormer", "MoESR"})
#: Purposes this app can use: a whole photo in, the same photo larger (or restored) out.
USABLE_PURPOSES = ("SR", "Restoration")
CNN_BYTES_PER_INPUT_PX = 16 * 1024  # measured for RRDBNet x4 (three 64-channel maps at 16x the pixels dominate)
TRANSFORMER_BYTES_PER_INPUT_PX = 64 * 1024


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
        use = " (use it to restore faces: import it as a face model, or --restore-faces)" if purpose == "FaceSR" else ""
        raise ModelError(path, f"{descriptor.architecture.name} is {what}, not an upscaler for whole photos{use}")
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
