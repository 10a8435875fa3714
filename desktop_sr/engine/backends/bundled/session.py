"""The bundled Real-ESRGAN x4plus as an :class:`~desktop_sr.engine.upscaler.session.UpscalerSession`.

The network is the hand-written :class:`~.rrdbnet.RRDBNet` rather than spandrel's copy of the same architecture: it
checks for cancel between its 23 blocks (a 192 px tile takes seconds on a CPU, so Cancel answers within a block
rather than a tile) and reads the converted ncnn weights by their own names.

On a Vulkan device (``vulkan:N``, or ``auto`` where torch has no GPU and a hardware Vulkan GPU is here) the same
session runs :class:`~.vulkan.VulkanNetwork`, ncnn on the original ``.param``/``.bin``, and keeps the torch network
as its fallback: a device that cannot start loads the torch network on the CPU at once, one that fails during a
render finishes it there (:mod:`desktop_sr.engine.upscaler.fallback`); the session's ``notice`` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ...api import ModelInfo
from ...errors import DeviceFailed, ModelError
from ...hardware.device import resolve_device, select_device, select_dtype
from ...hardware.vulkan import VulkanGpu, is_vulkan_name
from ...upscaler.fallback import Fallback, fallback_notice
from ...upscaler.network import Network
from ...upscaler.session import UpscalerSession, color_fix_note, int_option, tiles_from_options
from ...upscaler.tiled import BYTES_PER_INPUT_PX, SCALE, NetTiles
from .family import KIND
from .files import BUNDLED_NAME, find_source
from .weights import LICENCE_SHORT, build_model, load_weights

log = logging.getLogger(__name__)

#: The bundled model's session is the generic upscaler's (the name stays for callers and tests).
BundledSession = UpscalerSession


def bundled_info() -> ModelInfo:
    return ModelInfo(
        name=BUNDLED_NAME,
        kind=KIND,
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
    copy lives; ``tile``/``overlap`` = input-pixel tile geometry (default: from free memory). ``device`` may name
    a Vulkan device (``vulkan:N``): see the module's docstring.
    """
    if unknown:
        raise ModelError(Path("bundled"), f"unknown option(s) for the bundled model: {', '.join(sorted(unknown))}")
    tiles = tiles_from_options(tile, overlap)
    budget_mb = int_option("cache_mb", cache_mb, 1, 1 << 20)
    weights_file, root = Path(weights) if weights else None, Path(models_dir) if models_dir else None
    where = resolve_device(device, vulkan=True)
    notice = ""
    if is_vulkan_name(where) and weights_file is not None:  # a .pth or .safetensors is torch's to read
        notice = f"{where} runs the bundled model's own ncnn files, not {weights_file.name}: running on the CPU"
        where, dtype = "cpu", "auto"
    elif is_vulkan_name(where):
        try:
            return vulkan_session(where, dtype, tiles, budget_mb, lambda: torch_network(None, root, "cpu"))
        except DeviceFailed as exc:
            notice = fallback_notice(exc)
            log.info("%s", notice)
            where, dtype = "cpu", "auto"
    dev = select_device(where)
    dt = select_dtype(dtype, dev)
    network, path = torch_network(weights_file, root, dev, dt)
    return UpscalerSession(network, device=dev, dtype=dt, tiles=tiles, cache_mb=budget_mb, weights_path=path,
                           notice=notice)  # fmt: skip


def torch_network(
    weights: Path | None, root: Path | None, device: str | torch.device, dtype: torch.dtype = torch.float32
) -> tuple[Network, Path]:
    """The torch RRDBNet on ``device`` (the weights converted from the ncnn files on first use), and its file."""
    loaded = load_weights(weights, root)
    if loaded.converted_now:
        log.info("converted the bundled weights into %s", loaded.path)
    model = build_model(loaded.state, torch.device(device), dtype)
    network = Network(model, SCALE, bundled_info(), takes_check=True, bytes_per_input_px=BYTES_PER_INPUT_PX)
    return network, loaded.path


def vulkan_session(
    device: str,
    dtype: str | torch.dtype,
    tiles: NetTiles | None,
    cache_mb: int,
    cpu_network: Callable[[], tuple[Network, Path]],
) -> UpscalerSession:
    """The session on Vulkan device ``device`` (``vulkan:N``), falling back to ``cpu_network`` (built only if the
    device fails). Raises :class:`DeviceFailed` when the device cannot start."""
    from .vulkan import VulkanNetwork, VulkanPrecision, find_gpu  # ncnn: imported only now, on the loading thread

    _, _, number = device.partition(":")
    gpu = find_gpu(int(number or 0))
    try:
        source = find_source()
    except ModelError as exc:  # converted weights kept, the package since removed: the torch network still runs
        raise DeviceFailed(device, f"the model's ncnn files are missing ({exc.reason})", at_start=True) from exc
    precision = VulkanPrecision.for_dtype(dtype if isinstance(dtype, str) else str(dtype).rsplit(".", 1)[-1])
    module = VulkanNetwork(source, gpu, precision)
    network = Network(module, SCALE, bundled_info(), takes_check=True, bytes_per_input_px=BYTES_PER_INPUT_PX,
                      device=module.label, precision=module.precision.value)  # fmt: skip
    fallback = Fallback(lambda: cpu_network()[0], keeps_tiles=module.precision.matches_cpu)
    cpu = torch.device("cpu")  # ncnn takes and gives CPU float32 tiles
    return UpscalerSession(network, device=cpu, dtype=torch.float32, tiles=tiles or vulkan_tiles(gpu),
                           cache_mb=cache_mb, weights_path=source.bin, fallback=fallback)  # fmt: skip


#: Input tiles on a Vulkan device: 200 px with more than 1.9 GB of heap budget, as realesrgan-ncnn-vulkan picks them
#: for this model (one tile is one GPU submission, and Windows resets a GPU whose submission runs past about 2 s),
#: else 100 px (its 64 and 32 px tiles for small budgets put visible seams: see upscaler/fallback.py's MIN_TILE).
#: A software device gets 100 px too: about a minute a tile on two cores, which Cancel waits for.
_LARGE_BUDGET_MB, _LARGE_TILE, _SMALL_TILE = 1900, 200, 100


def vulkan_tiles(gpu: VulkanGpu) -> NetTiles:
    """Tiles for ``gpu`` by its heap budget (read by ncnn at load); the overlap the session blends over."""
    budget_mb = gpu.memory_bytes // 1024**2 if gpu.memory_bytes else 0
    tile = _LARGE_TILE if budget_mb > _LARGE_BUDGET_MB and not gpu.software else _SMALL_TILE
    return NetTiles(tile=tile, overlap=32)
