"""Training pairs: HR crops from folders of photos and their synthetic LQ, addressed by a global sample index.

Every random choice (which photo, where to crop, flips, the whole degradation) is derived from (seed, sample index),
not from a shared RNG stream. So sample ``i`` is the same whether it is drawn by worker 0 or 3, in the first run or
after a resume from step ``s`` (which simply starts at index ``s * batch * accumulation``): no data loader state has
to be saved, and a resumed run sees exactly the batches the killed run would have seen.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .config import DataConfig, DegradationConfig
from .degradations import Degrader

log = logging.getLogger(__name__)


class DataError(RuntimeError):
    """No usable training photos (missing folder, no images, or every image unreadable)."""


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (nearby indices give unrelated streams)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def find_images(folders: list[str], extensions: list[str]) -> list[Path]:
    """All image files under ``folders`` (recursive), sorted so the order never depends on the file system."""
    if not folders:
        raise DataError("no training folders given: set data.folders in the config")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"{root}: training folder not found")
        files.extend(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(exts))}) found in {', '.join(folders)}")
    return sorted(files)


def read_caption(image: Path) -> str:
    """The ``.txt`` beside an image (same stem), stripped; empty when there is none or it is unreadable."""
    txt = image.with_suffix(".txt")
    if not txt.is_file():
        return ""
    try:
        return " ".join(txt.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return ""


@dataclass
class CaptionCount:
    """How many training photos have a caption, and where the captions come from."""

    photos: int
    own: int  # photos with their own .txt
    default: int  # photos that take data.default_caption

    @property
    def captioned(self) -> int:
        return self.own + self.default


def count_captions(files: list[Path], default_caption: str) -> CaptionCount:
    """Count the photos with a non-empty caption (their ``.txt``, else the folder-wide default)."""
    own = sum(1 for f in files if read_caption(f))
    default = len(files) - own if default_caption.strip() else 0
    return CaptionCount(photos=len(files), own=own, default=default)


def load_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1], EXIF orientation applied. Raises OSError/ValueError for unreadable files."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("empty image")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def random_crop(img: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """A ``size`` square crop; a smaller photo is first padded by reflection (Real-ESRGAN) or, if tiny, upscaled."""
    _, h, w = img.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        if ph < h and pw < w:
            img = F.pad(img[None], (0, pw, 0, ph), mode="reflect")[0]
        else:
            scale = size / min(h, w)
            img = F.interpolate(img[None], size=(math.ceil(h * scale), math.ceil(w * scale)), mode="bicubic",
                                align_corners=False)[0].clamp(0, 1)  # fmt: skip
        _, h, w = img.shape
    top = int(torch.randint(h - size + 1, (), generator=gen))
    left = int(torch.randint(w - size + 1, (), generator=gen))
    return img[:, top : top + size, left : left + size]


@dataclass
class Sample:
    hr: torch.Tensor  # (3, crop, crop) in [0, 1]
    lq: torch.Tensor  # same size, 8-bit values
    caption: str
    index: int
    path: str


class PairDataset(torch.utils.data.Dataset):
    """Maps a global sample index to a (HR crop, degraded LQ, caption) triple. Unbounded: epochs wrap around."""

    def __init__(self, data: DataConfig, degradation: DegradationConfig, seed: int) -> None:
        self.cfg = data
        self.files = find_images(data.folders, data.extensions)
        self.degrade = Degrader(degradation)
        self.seed = int(seed)
        self._perm_epoch = -1
        self._perm: list[int] = []
        self._bad: set[Path] = set()

    def __len__(self) -> int:  # a nominal epoch; the sampler asks for any index
        return len(self.files)

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x9E37))
            self._perm = torch.randperm(len(self.files), generator=gen).tolist()
            self._perm_epoch = epoch
        return self._perm

    def _load(self, index: int) -> tuple[torch.Tensor, Path]:
        """The photo for ``index``; an unreadable file is skipped (warned once) in favour of the next one."""
        n = len(self.files)
        epoch, pos = divmod(index, n)
        perm = self._permutation(epoch)
        for j in range(n):
            path = self.files[perm[(pos + j) % n]]
            if path in self._bad:
                continue
            try:
                return load_rgb(path), path
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                self._bad.add(path)
                message = f"skipping unreadable training image {path}: {exc}"
                log.warning(message)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        raise DataError(f"none of the {n} training images could be read")

    def __getitem__(self, index: int) -> Sample:
        img, path = self._load(int(index))
        gen = torch.Generator().manual_seed(mix_seed(self.seed, int(index), 0xC20B))
        hr = random_crop(img, self.cfg.crop, gen)
        if self.cfg.hflip and bool(torch.rand((), generator=gen) < 0.5):
            hr = hr.flip(-1)
        if self.cfg.vflip and bool(torch.rand((), generator=gen) < 0.5):
            hr = hr.flip(-2)
        hr = hr.contiguous()
        lq = self.degrade(hr, gen)
        caption = read_caption(path) or " ".join(self.cfg.default_caption.split())
        return Sample(hr=hr, lq=lq, caption=caption, index=int(index), path=str(path))

    def caption_count(self) -> CaptionCount:
        return count_captions(self.files, self.cfg.default_caption)


@dataclass
class Batch:
    hr: torch.Tensor  # (B, 3, H, W) in [0, 1]
    lq: torch.Tensor
    captions: list[str]
    indices: list[int]

    def to(self, device: torch.device) -> Batch:
        return Batch(self.hr.to(device), self.lq.to(device), self.captions, self.indices)


def collate(samples: list[Sample]) -> Batch:
    return Batch(
        hr=torch.stack([s.hr for s in samples]),
        lq=torch.stack([s.lq for s in samples]),
        captions=[s.caption for s in samples],
        indices=[s.index for s in samples],
    )


class IndexSampler(torch.utils.data.Sampler[int]):
    """Global sample indices start, start + 1, ... (forever); the loop stops when its step budget is spent."""

    def __init__(self, start: int) -> None:
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers each degrade one image; more threads only fight over the cores


def batches(dataset: PairDataset, batch_size: int, start_index: int, num_workers: int) -> Iterator[Batch]:
    """Batches of consecutive global sample indices from ``start_index``."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=IndexSampler(start_index),
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )
    return iter(loader)


def fixed_batch(dataset: PairDataset, indices: list[int]) -> Batch:
    """A batch of chosen samples (the sample grid and tests use it)."""
    return collate([dataset[i] for i in indices])
