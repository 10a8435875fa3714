"""desktop-sr's bundled trainer: PiSA-SR two-stage dual-LoRA training on your own photos.

Stage 1 trains the pixel LoRA (MSE), stage 2 the semantic LoRA (MSE + LPIPS + CSD) on Real-ESRGAN-degraded crops,
optionally with RCOD's latent domain grouping for realism levels; the result opens directly in the app.
The model math lives in :mod:`desktop_sr.engine`; this package only adds data, losses and the loop.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
