"""The bundled Real-ESRGAN x4plus as an :class:`~desktop_sr.engine.upscaler.session.UpscalerSession`.

The network is the hand-written :class:`~.rrdbnet.RRDBNet` rather than spandrel's copy of the same architecture: it
checks for cancel between its 23 blocks (a 192 px tile takes seconds on a CPU, so Cancel answers within a block
rather than a tile) and reads the converted ncnn weights by their own names.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...api import ModelInfo
from ...errors import ModelError
from ...hardware.device import select_device, select_dtype
from ...upscaler.network import Network
from ...upscaler.session import UpscalerSession, color_fix_note, int_option, tiles_from_options
from ...upscaler.tiled import BYTES_PER_INPUT_PX, SCALE
from .files import BUNDLED_NAME
from .weights import LICENCE_SHORT, build_model, load_weights

log = logging.getLogger(__name__)

#: The bundled model's session is the generic upscaler's (the name stays for callers and tests).
BundledSession = UpscalerSession


def bundled_info() -> ModelInfo:
    return ModelInfo(
        name=BUNDLED_NAME,
        kind="bundled",
        device="",
        dtype="",
        supports_realism=False,
        supports_prompt=False,
        supports_color_fix=False,
        color_fix_note=color_fix_note("the bundled model"),
        licence=LICENCE_SHORT,
        scales=(1, 2, 3, 4),
    )


def load_bundled_session(
    device: str | torch.device = "auto",
    dtype: str = "auto",
    *,
    cache_mb: int | str = 1024,
    weights: str | Path | None = None,
    models_dir: str | Path | None = None,
    tile: int | str | None = None,
    overlap: int | str | None = None,
    **unknown: object,
) -> UpscalerSession:
    """Load the bundled Real-ESRGAN x4plus upscaler (converting its weights on first use; see weights.py).

    Options may arrive as strings (they come from ``ModelSpec.options`` and settings files): ``weights`` = an
    explicit converted ``.safetensors`` or official ``RealESRGAN_x4plus.pth``; ``models_dir`` = where the converted
    copy lives; ``tile``/``overlap`` = input-pixel tile geometry (default: from free memory).
    """
    if unknown:
        raise ModelError(Path("bundled"), f"unknown option(s) for the bundled model: {', '.join(sorted(unknown))}")
    tiles = tiles_from_options(tile, overlap)
    budget_mb = int_option("cache_mb", cache_mb, 1, 1 << 20)
    dev = select_device(device)
    dt = select_dtype(dtype, dev)
    loaded = load_weights(Path(weights) if weights else None, Path(models_dir) if models_dir else None)
    if loaded.converted_now:
        log.info("converted the bundled weights into %s", loaded.path)
    model = build_model(loaded.state, dev, dt)
    network = Network(model, SCALE, bundled_info(), takes_check=True, bytes_per_input_px=BYTES_PER_INPUT_PX)
    return UpscalerSession(network, device=dev, dtype=dt, tiles=tiles, cache_mb=budget_mb, weights_path=loaded.path)
