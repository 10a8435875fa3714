"""Random Stable Diffusion models in diffusers layout, for tests, demos and benchmarks (nothing is downloaded).

``tiny`` builds a few-MB SD look-alike (same block types, 8x VAE, CLIP text encoder and tokenizer) that runs in
milliseconds; ``sd21`` builds SD-2.1-base-shaped weights (same shapes, same cost) for honest benchmarks. Both come
with a random LoRA checkpoint in the official PiSA-SR layout, module lists chosen exactly as the official code does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import BRANCHES, GROUPS, OFFICIAL_LORA_ALPHA, LoraCheckpoint, adapter_name, official_module_lists

TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8,
)  # fmt: skip
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(16, 32, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
    sample_size=64, scaling_factor=0.18215,
)  # fmt: skip
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)

SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
)  # fmt: skip
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=768,
    scaling_factor=0.18215,
)  # fmt: skip
SD21_TEXT = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16, projection_dim=512,
    hidden_act="gelu",
)  # fmt: skip


def _bytes_to_unicode() -> list[str]:
    """CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tiny_tokenizer(folder: Path) -> int:
    """A byte-level CLIP tokenizer with no merges (every character is a token). Returns the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                    "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer"}),
        encoding="utf-8",
    )  # fmt: skip
    return len(vocab)


def build_random_sd(root: str | Path, shape: str = "tiny", *, seed: int = 0, text_encoder: bool = True) -> Path:
    """Write a random SD model in diffusers layout to ``root`` and return it."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(root)
    unet_cfg, vae_cfg, text_cfg = (
        (TINY_UNET, TINY_VAE, TINY_TEXT) if shape == "tiny" else (SD21_UNET, SD21_VAE, SD21_TEXT)
    )
    torch.manual_seed(seed)
    UNet2DConditionModel(**unet_cfg).save_pretrained(root / "unet")
    AutoencoderKL(**vae_cfg).save_pretrained(root / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
                  prediction_type="epsilon").save_pretrained(root / "scheduler")  # fmt: skip
    vocab = write_tiny_tokenizer(root / "tokenizer")
    if text_encoder:
        cfg = CLIPTextConfig(vocab_size=vocab, max_position_embeddings=77, bos_token_id=vocab - 2,
                             eos_token_id=vocab - 1, pad_token_id=vocab - 1, **text_cfg)  # fmt: skip
        CLIPTextModel(cfg).save_pretrained(root / "text_encoder")
    (root / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0"}), encoding="utf-8"
    )
    return root


def random_lora(
    unet: torch.nn.Module, *, rank: int = 4, seed: int = 0, strength: float = 1.0, timesteps: tuple[int, ...] = (1,)
) -> LoraCheckpoint:
    """A random pixel + semantic LoRA for ``unet`` in the official layout (both branches on the same modules)."""
    gen = torch.Generator().manual_seed(seed)
    modules = official_module_lists(unet)
    state: dict[str, torch.Tensor] = {}
    for branch in BRANCHES:
        for group in GROUPS:
            for name in modules[group]:
                w = unet.get_submodule(name).weight
                tag = adapter_name(group, branch)
                if w.ndim == 4:
                    a = (
                        torch.randn((rank, w.shape[1], w.shape[2], w.shape[3]), generator=gen)
                        / (w.shape[1] * w[0, 0].numel()) ** 0.5
                    )
                    b = torch.randn((w.shape[0], rank, 1, 1), generator=gen) * 0.02 * strength
                else:
                    a = torch.randn((rank, w.shape[1]), generator=gen) / w.shape[1] ** 0.5
                    b = torch.randn((w.shape[0], rank), generator=gen) * 0.02 * strength
                state[f"{name}.lora_A.{tag}.weight"] = a
                state[f"{name}.lora_B.{tag}.weight"] = b
    return LoraCheckpoint(
        modules={b: {g: list(modules[g]) for g in GROUPS} for b in BRANCHES},
        ranks={b: rank for b in BRANCHES},
        alphas={b: OFFICIAL_LORA_ALPHA for b in BRANCHES},
        state_dict=state,
        timesteps=timesteps,
        name=f"random-r{rank}-s{seed}",
    )


def write_official_pkl(ckpt: LoraCheckpoint, path: str | Path) -> Path:
    """Save exactly the official layout (no alpha or timesteps stored)."""
    from .checkpoint import save_official

    return save_official(ckpt, path, extras=False)
