"""PiSA-SR: Stable Diffusion 2.1-base with a pixel and a semantic LoRA adapter, one diffusion step.

``family`` (torch-free: the roles, capabilities and opening), ``layout`` (the files on disk, torch-free),
``checkpoint`` and ``lora`` (the adapters), ``model`` (the networks), ``session`` (the cached pipeline), ``local``
(local strengths), ``latent_strength``, ``synthetic`` (random models for tests and benchmarks), ``training_support``
(what the trainer needs).
"""

from .family import FAMILY, KIND, pisa_spec

__all__ = ["FAMILY", "KIND", "pisa_spec"]
