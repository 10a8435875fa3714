"""PiSA-SR's small-photo rule, torch-free: the model computes a small photo enlarged, which both the kernels (to do
it) and the family (to say what a render costs before anything loads) need to know."""

from __future__ import annotations

#: The reference script enlarges photos whose short side is under this over the scale (its ``process_size``).
PROCESS_SIZE = 512


def enlarged_size(width: int, height: int, scale: int, process_size: int = PROCESS_SIZE) -> tuple[int, int] | None:
    """The size the reference script enlarges a small photo to before a ``scale`` upscale, or None.

    PiSA-SR's test script enlarges any photo with a side under ``512 // scale`` so its short side becomes exactly
    that (Pillow bicubic), runs the model, and resizes the result back to scale x the original: the model was
    trained on 512 px crops and a tiny latent is far outside what it saw."""
    side = process_size // scale
    if width >= side and height >= side:
        return None
    f = side / min(width, height)
    return int(f * width), int(f * height)
