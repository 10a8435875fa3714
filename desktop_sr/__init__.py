"""desktop-sr: a desktop photo editor for diffusion-based super-resolution."""

__version__ = "0.1.0"
