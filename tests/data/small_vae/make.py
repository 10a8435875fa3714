"""Train the small SD-style VAE that the fidelity tests use (tiling, colour fix, previews).

Why it exists: a tiny *random* VAE turns a half-level change of its input into output changes of up to 255 levels,
so it cannot tell a faithful tiler or colour fix from a poor one. This VAE has Stable Diffusion's structure (4 blocks,
factor 8, mid-block attention, GroupNorm with 32 groups, 4 latent channels) at a fraction of the width, and is trained
for a few CPU minutes on real photos, so it reconstructs photos smoothly and reacts to small input changes as SD's does.

Photos: scikit-image's bundled samples and Debian's ``mate-backgrounds`` / ``lomiri-wallpapers-16.04`` (pass the
folders where their packages were extracted; licences in their copyright files). Two scikit-image samples are held out
for the reported PSNR. Run::

    python tests/data/small_vae/make.py --photos /path/to/usr/share/backgrounds --minutes 12

It writes ``config.json`` and ``diffusion_pytorch_model.safetensors`` beside this file and prints the held-out PSNR,
which README.md records.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).parent
CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64, 64),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=128, scaling_factor=0.18215,
)  # fmt: skip
HELD_OUT = ("astronaut", "coffee")


def skimage_photos() -> dict[str, np.ndarray]:
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "motorcycle_left", "cat")
    out = {}
    for name in names:
        try:
            img = getattr(data, name)()
        except Exception:  # some samples need a download; skip them
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            out[name] = np.asarray(img[..., :3], dtype=np.float32) / 255.0
    return out


def folder_photos(folders: list[Path], short_side: int) -> list[np.ndarray]:
    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            img = Image.open(path).convert("RGB")
            f = short_side / min(img.size)
            img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS)
            out.append(np.asarray(img, dtype=np.float32) / 255.0)
    return out


def random_crops(photos: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    crops = []
    for _ in range(n):
        img = photos[rng.integers(len(photos))]
        h, w = img.shape[:2]
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        c = img[y : y + size, x : x + size]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        crops.append(np.ascontiguousarray(c.transpose(2, 0, 1)))
    return torch.from_numpy(np.stack(crops)) * 2 - 1


def psnr(vae: torch.nn.Module, img: np.ndarray) -> float:
    h, w = (img.shape[0] // 8) * 8, (img.shape[1] // 8) * 8
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w].transpose(2, 0, 1)))[None] * 2 - 1
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    mse = float(((y - x) / 2).pow(2).mean())
    return 10 * math.log10(1 / mse)


def main() -> None:
    from diffusers import AutoencoderKL

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, nargs="*", default=[], help="folders of extra training photos")
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from the weights beside this file")
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sk = skimage_photos()
    train = [v for k, v in sk.items() if k not in HELD_OUT] + folder_photos(args.photos, 384)
    held = [sk[k] for k in HELD_OUT if k in sk]
    print(f"{len(train)} training photos, {len(held)} held out")

    vae = AutoencoderKL.from_pretrained(HERE) if args.resume else AutoencoderKL(**CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    start, step = time.monotonic(), 0
    budget = args.minutes * 60
    while time.monotonic() - start < budget:
        frac = (time.monotonic() - start) / budget
        for g in opt.param_groups:  # cosine decay to 5 % of the peak
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        x = random_crops(train, args.batch, args.crop, rng)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample()).sample
        loss = (y - x).abs().mean() + (y - x).pow(2).mean() + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step}  loss {loss.item():.4f}  {time.monotonic() - start:.0f} s", flush=True)
    vae.eval()
    vae.save_pretrained(HERE, safe_serialization=True)
    for name, img in zip([k for k in HELD_OUT if k in sk], held, strict=True):
        print(f"held-out {name}: reconstruction PSNR {psnr(vae, img):.2f} dB")
    print(f"{step} steps in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
