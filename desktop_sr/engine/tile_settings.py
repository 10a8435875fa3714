"""Tile sizes: plain data with no torch, so the GUI and the CLI can hold them without importing the engine's
compute code (the GUI reaches torch only from its worker thread)."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Bytes of the centred GroupNorm statistics' temporaries (two float32 chunks, see :mod:`.moments`).
GROUPNORM_TEMP_BYTES = 2 * 64 * 1024**2


def vae_bytes_per_latent_px(dtype_bytes: int) -> int:
    """A decoder tile's working memory per latent pixel: four 128-channel maps at 64 output pixels each."""
    return 4 * 128 * 64 * dtype_bytes


@dataclass(frozen=True)
class TileSettings:
    """Tile sizes, in latent pixels (one latent pixel = 8 image pixels for SD). Part of every cache key."""

    unet_tile: int = 96
    unet_overlap: int = 32
    vae_tile: int = 128
    vae_overlap: int = 16

    def key(self) -> tuple[int, ...]:
        return (self.unet_tile, self.unet_overlap, self.vae_tile, self.vae_overlap)

    def vae_working_bytes(self, dtype_bytes: int = 4) -> int:
        """One VAE decoder tile's working set: its activations and the GroupNorm statistics' temporaries."""
        return self.vae_tile**2 * vae_bytes_per_latent_px(dtype_bytes) + GROUPNORM_TEMP_BYTES

    @staticmethod
    def for_budget(budget_bytes: int, dtype_bytes: int = 4) -> TileSettings:
        """Tiles sized to a memory budget (free GPU memory, or a share of RAM).

        The VAE decoder dominates: at full resolution it holds a few 128-channel maps of 64 output pixels per
        latent pixel, about ``4 * 128 * 64 * dtype_bytes`` bytes per latent pixel (the GroupNorm statistics'
        temporaries are bounded, :data:`GROUPNORM_TEMP_BYTES`); half the budget goes to it, the other half to the
        lockstep's state (:func:`~desktop_sr.engine.hardware.budget.state_budget`).
        The UNet's activations per latent pixel are smaller but its attention grows with the square of the tile,
        so it keeps the reference's 96 unless the budget is tight. Out-of-memory still halves a tile and retries.
        """
        per_latent_px = vae_bytes_per_latent_px(dtype_bytes)
        side = int(math.sqrt(max(budget_bytes, 1) * 0.5 / per_latent_px))
        vae = max(32, min(256, side // 8 * 8))
        unet = 96 if vae >= 96 else max(32, vae)
        return TileSettings(unet_tile=unet, unet_overlap=unet // 3, vae_tile=vae)
