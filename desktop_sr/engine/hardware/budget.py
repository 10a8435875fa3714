"""How much device memory a render may use, split between one VAE tile's working set and the lockstep's state.

Read at every render, not once per session: another model (a batch) or another program may have taken memory since.
On a GPU the two parts share one budget (most of the free memory): the lockstep keeps every tile's activations
(the state) while one tile at a time computes (its working set, GroupNorm temporaries included), so the state gets
what the working set leaves. Counting both against the same 80 % planned about 6.9 GB on an 8 GB card (6 GB free)
for a 2048 x 1536 result; split, it plans at most the 4.8 GB it has and takes downsampled statistics beyond.
"""

from __future__ import annotations

import torch

from ..tile_settings import TileSettings
from .memory import available_ram, total_ram

#: Share of the free GPU memory a render plans for (the rest absorbs the allocator's fragmentation).
GPU_SHARE = 0.8


def free_memory(device: torch.device) -> int | None:
    """Bytes a new allocation on ``device`` can get now, or None where the backend does not say."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "xpu":
        info = getattr(torch.xpu, "mem_get_info", None)
        if info is not None:
            return int(info(device)[0])
        props = torch.xpu.get_device_properties(device)
        return int(props.total_memory - torch.xpu.memory_reserved(device))
    if device.type == "mps":  # unified memory: what Metal recommends for this process, less what it holds
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return available_ram()


def memory_budget(device: torch.device, ram_share: float = 0.25) -> int:
    """Bytes a render may use: most of the free GPU memory, or a share of the machine's RAM on the CPU."""
    if device.type == "cpu":
        return int((total_ram() or 8 * 1024**3) * ram_share)
    free = free_memory(device)
    return int((free if free is not None else 2 * 1024**3) * GPU_SHARE)


def state_budget(
    device: torch.device,
    available: int | None = None,
    *,
    tiles: TileSettings | None = None,
    itemsize: int = 4,
) -> int:
    """Bytes the tiled VAE may keep alive between GroupNorms (every tile's activations, see :mod:`.vae_tiling`).

    Exact whole-image statistics need all of them at once, so on the CPU this may exceed the tile budget: 60 % of
    the memory available now (the rest covers one tile's working memory and headroom), never less than
    :func:`memory_budget`. An SD-width 2560 x 1920 result keeps about 9 GB: a 24 GB machine with the model loaded has
    17 GB available, so its statistics are exact, where a fixed quarter of RAM (6 GB) would not hold them. On a GPU
    (``available`` = its free memory), what :func:`memory_budget` leaves after one tile's working set (``tiles``)."""
    if device.type != "cpu":
        budget = memory_budget(device) if available is None else int(available * GPU_SHARE)
        working = tiles.vae_working_bytes(itemsize) if tiles is not None else budget // 2
        return max(0, budget - working)
    budget = memory_budget(device)
    if available is None:
        available = available_ram()
    return max(budget, int(0.6 * available)) if available else budget


__all__ = ["GPU_SHARE", "free_memory", "memory_budget", "state_budget"]
