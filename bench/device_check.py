"""Device check (issue 24): the GPU model against CPU fp32, its speed, and small cards simulated, in one command.

Three sections, each printed as a table and written to one JSON file (after every section, so a run cut short
still leaves what it measured):

1. precision - each precision policy against a CPU fp32 render of the same photo, on the tiny random UNet with the
   trained small VAE (tests/data/small_vae; a random VAE turns half a level into hundreds) and the astronaut photo
   (resized whole, and a crop with large smooth background): max / mean / 99.9th percentile difference in 8-bit
   levels, PSNR, non-finite values (result and cached tensors) and the dtypes the session cache keeps (z_L, eps).
   Cases: untiled, tiled (small VAE tiles), a half-0 / half-1 semantic strength map, a visible region (a window of
   a tiled result rendered before the whole). Policies: ``fp32``; ``gpu`` (the engine's choice on a CUDA card of
   compute capability 8.0+: UNet fp16, VAE fp32 with TF32 convolutions); ``gpu-sm75`` (a pre-Ampere card: no
   TF32); ``vae-bf16`` (``--dtype bf16``); ``vae-fp16-noupcast`` (``--dtype fp16`` with the VAE config's
   ``force_upcast`` cleared: the VAE in fp16). On the CPU each policy is emulated (``PisaModel(emulate=...)``: fp16
   and bf16 run here, TF32 operands are rounded); on a CUDA device the preference is passed as is, the card's own
   traits decide (``gpu-sm75`` alone is emulated there, to turn TF32 off). The goal: the ``gpu`` policy within
   1 level mean and 2 levels at the 99.9th percentile of CPU fp32, in every case.
2. speed - SD-2.1-shaped random weights (bench/engine.py's ``sd21_model``; under ``--quick`` the tiny model at tiny
   sizes, the same code), at 512 px and at 2048 x 1536 (1024 px VAE tiles, 768 px UNet tiles: what a 6-8 GB card
   gets; exact lockstep statistics forced): the first render of a fresh photo (both branches, encode to decode), a
   slider change (both branches cached), a realism change and a visible region (the middle quarter; a small result
   is rendered whole). Synchronised timings, the median of ``--repeats`` photos after a warm-up; peak GPU memory
   per case (peak RSS of the process on the CPU). Then, each against the baseline measured in the same run, as
   ratios: contiguous against channels_last decode, the VAE decode in fp32 / fp16 / bf16, the UNet pass in fp16 /
   fp32, cuDNN benchmark mode off, and ``torch.compile`` of the UNet (run last: compiling takes a minute or two;
   "unavailable" if it fails, skipped under ``--quick`` or when the time budget runs short).
3. cards (CUDA only) - an 8 GB and a 12 GB card simulated by a ballast allocation that leaves ~6 GB / ~10 GB free,
   then 2048 x 1536 and 4096 x 3072 rendered with the budgets and tiles the engine computes itself: the tile sizes
   tried (``session.attempts``), whether an out-of-memory retry happened, peak memory, or the refusal.

On a GPU machine, from a bare one (the project and its wheels at hand); the whole thing, installs and the one-time
build of the SD-2.1-shaped weights included, must fit 8 minutes (``--budget-s``, the script's own share, skips
torch.compile and then card cases when it runs short):

    pip install torch==<the CUDA build> -e .
    python bench/device_check.py --device cuda --json $OUT/device_check.json

Here, on tiny models in one CPU thread (tests/test_device_check.py runs this; only ratios from one run mean
anything on a shared machine, and no test asserts a time):

    python bench/device_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import math
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built here; a GPU machine may reach no network
sys.path.insert(0, str(Path(__file__).parent))

from engine import OUT, sd21_model  # noqa: E402  (bench/engine.py: the SD-2.1-shaped weights)

from desktop_sr.engine.api import Region, RenderParams  # noqa: E402
from desktop_sr.engine.backends.pisa.model import PisaModel, load_unet  # noqa: E402
from desktop_sr.engine.backends.pisa.session import PisaSession  # noqa: E402
from desktop_sr.engine.backends.pisa.synthetic import build_random_sd, random_lora, write_official_pkl  # noqa: E402
from desktop_sr.engine.errors import OutOfMemory, TooLarge  # noqa: E402
from desktop_sr.engine.hardware.budget import free_memory  # noqa: E402
from desktop_sr.engine.hardware.device import empty_cache, is_out_of_memory, synchronize  # noqa: E402
from desktop_sr.engine.hardware.precision import DeviceTraits, dtype_name  # noqa: E402
from desktop_sr.engine.kernels.tiling import Attempt  # noqa: E402
from desktop_sr.engine.strength_map import StrengthMaps  # noqa: E402
from desktop_sr.engine.tile_settings import TileSettings  # noqa: E402

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SECTIONS = ("precision", "speed", "cards")
MB, GB = 1024**2, 1024**3
LEVELS = 255.0
#: The fidelity goal of the ``gpu`` policy against CPU fp32 (issue 24), in 8-bit levels.
GOAL_MEAN, GOAL_P999 = 1.0, 2.0
#: Seconds of the script's own time that torch.compile (compilation included) and a large card case need at least.
COMPILE_NEEDS_S, CARD_CASE_NEEDS_S = 150.0, 45.0


# -- shared ----------------------------------------------------------------------------------------------------------
class Clock:
    """Seconds since the start and what is left of the budget."""

    def __init__(self, budget_s: float) -> None:
        self.start, self.budget = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


@dataclass
class Setup:
    """What every section works with."""

    device: torch.device
    quick: bool
    work: Path
    clock: Clock
    repeats: int


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``fn()`` once the device finished its queued work."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since :func:`reset_peak`; on the CPU the process's peak RSS (it never resets)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release(device: torch.device) -> None:
    """Free what the last case left on a GPU (a collection costs 0.4 s here, and the CPU needs none)."""
    if device.type != "cpu":
        gc.collect()
        empty_cache(device)


@contextlib.contextmanager
def patched(obj: object, **attrs: object) -> Iterator[None]:
    """Set attributes of ``obj`` for the block (a model's VAE, UNet, dtype) and put the old ones back."""
    old = {name: getattr(obj, name) for name in attrs}
    for name, value in attrs.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(obj, name, value)


def cast(net: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``net`` in ``dtype`` by torch's own ``to`` (the diffusers one logs a warning on every cast)."""
    return torch.nn.Module.to(net, dtype=dtype)


def real_photo(width: int, height: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The astronaut (tests/data, public domain), or a ``box`` of it, resized to width x height, float32 in [0, 1]."""
    from PIL import Image

    img = Image.open(DATA / "astronaut_512.jpg").convert("RGB")
    if box is not None:
        img = img.crop(box)
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def smooth_photo(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random 'photo' (low-frequency noise, as bench/engine.py's): a fresh one per timed first render."""
    from desktop_sr.engine.kernels.processing import resize_rgb

    rng = np.random.default_rng(seed)
    small = rng.random((height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    return np.clip(resize_rgb(small, (width, height)), 0, 1)


def session_for(model: PisaModel, tiles: TileSettings | None = None) -> PisaSession:
    """A session at the photo's own size (no enlargement of small photos: the tiny sizes of ``--quick``)."""
    session = PisaSession(model, tiles=tiles)
    session.process_size = 0
    return session


def tiny_models(work: Path) -> tuple[Path, Path, Path]:
    """The tiny random SD with the trained small VAE, its random LoRA, and a copy whose VAE runs in fp16 (its
    config's ``force_upcast`` cleared). Built once into ``work``."""
    root = work / "device_check_tiny"
    base, noupcast, lora = root / "sd", root / "sd_noupcast", root / "pisa_tiny.pkl"
    if not (lora.is_file() and (noupcast / "vae" / "config.json").is_file()):
        shutil.rmtree(root, ignore_errors=True)
        build_random_sd(base)
        write_official_pkl(random_lora(load_unet(base), seed=1), lora)
        shutil.rmtree(base / "vae")
        (base / "vae").mkdir()
        for name in ("config.json", "diffusion_pytorch_model.safetensors"):
            shutil.copy(DATA / "small_vae" / name, base / "vae" / name)
        shutil.copytree(base, noupcast)
        cfg = noupcast / "vae" / "config.json"
        cfg.write_text(json.dumps({**json.loads(cfg.read_text(encoding="utf-8")), "force_upcast": False}))
    return base, noupcast, lora


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    sys.stdout.flush()


# -- 1. precision ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """A precision policy: the preference given to :class:`PisaModel`, the device emulated on the CPU, and whether
    the VAE config asks for the fp32 upcast."""

    name: str
    dtype: str
    traits: DeviceTraits
    upcast: bool = True
    #: Emulated on a CUDA device too (the real card's traits would pick another policy).
    emulate_on_cuda: bool = False


AMPERE, TURING = DeviceTraits.cuda_ampere(), DeviceTraits.cuda_turing()
POLICIES = (
    Policy("fp32", "fp32", AMPERE),
    Policy("gpu", "auto", AMPERE),
    Policy("gpu-sm75", "auto", TURING, emulate_on_cuda=True),
    Policy("vae-bf16", "bf16", AMPERE),
    Policy("vae-fp16-noupcast", "fp16", AMPERE, upcast=False),
)


@dataclass(frozen=True)
class Case:
    """One render compared: which photo, the tiles, the setting and the window (None: the whole result)."""

    name: str
    photo: str
    tiles: TileSettings
    params: RenderParams
    region: Region | None = None


@dataclass
class Rendered:
    image: np.ndarray
    z_dtype: str
    eps_dtype: str
    nonfinite_cache: int


@dataclass
class FidelityRow:
    policy: str
    label: str
    case: str
    max_levels: float
    mean_levels: float
    p999_levels: float
    psnr_db: float
    nonfinite: int
    z_dtype: str
    eps_dtype: str


UNTILED = TileSettings(unet_tile=512, vae_tile=512)


def fidelity_inputs(quick: bool) -> tuple[dict[str, np.ndarray], list[Case]]:
    """The photos (the astronaut resized; a crop of it with large smooth background) and the cases."""
    w, h = (40, 32) if quick else (192, 144)
    photos = {"photo": real_photo(w, h), "crop": real_photo(w * 2 // 3, h * 2 // 3, box=(256, 0, 512, 192))}
    tiled = TileSettings(unet_tile=512, vae_tile=16 if quick else 48, vae_overlap=8 if quick else 16)
    half = np.ones((h, w), np.float32)
    half[:, : w // 2] = 0.0
    cases = [
        Case("untiled", "photo", UNTILED, RenderParams()),
        Case("untiled crop", "crop", UNTILED, RenderParams()),
        Case("local map", "photo", UNTILED, RenderParams(maps=StrengthMaps(sem=half))),
        Case("tiled", "photo", tiled, RenderParams()),
        # a window of 1/16 of the result, before the whole is rendered: statistics from a sample of tiles
        Case("region", "photo", tiled, RenderParams(pix=0.8, sem=1.2), region=(w, h, 2 * w, 2 * h)),
    ]
    return photos, cases


def render_cases(model: PisaModel, photos: dict[str, np.ndarray], cases: list[Case]) -> dict[str, Rendered]:
    """Every case on ``model``; cases on one photo and tiling share a session (a map reuses the cached eps)."""
    sessions: dict[tuple[str, TileSettings], PisaSession] = {}
    out = {}
    for case in cases:
        session = sessions.get((case.photo, case.tiles))
        if session is None:
            session = sessions[(case.photo, case.tiles)] = session_for(model, case.tiles)
            session.set_photo(photos[case.photo])
        image = np.array(session.render(case.params, region=case.region))
        out[case.name] = Rendered(image, *cached_dtypes(session, case.params))
    return out


def cached_dtypes(session: PisaSession, params: RenderParams) -> tuple[str, str, int]:
    """The dtypes of the cached z_L and eps (the branches computed), and their non-finite values."""
    z = session.latent(params.scale)  # cached by the render
    eps = [
        session.eps(params, branch)
        for branch, (pix, sem) in (("pix", (1.0, 0.0)), ("full", (1.0, 1.0)))
        if session.is_cached(params.with_(pix=pix, sem=sem, maps=None))
    ]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in (z, *eps))
    return dtype_name(z.dtype), "/".join(sorted({dtype_name(e.dtype) for e in eps})) or "-", bad


def compare(policy: str, label: str, case: str, got: Rendered, ref: np.ndarray) -> FidelityRow:
    """Differences in 8-bit levels; a non-finite pixel counts as a full-scale error."""
    ok = np.isfinite(got.image)
    diff = np.where(ok, np.abs(np.where(ok, got.image, 0.0) - ref), 1.0).astype(np.float64)
    levels = diff * LEVELS
    mse = max(float(np.mean(diff**2)), 1e-12)
    return FidelityRow(
        policy=policy,
        label=label,
        case=case,
        max_levels=float(levels.max()),
        mean_levels=float(levels.mean()),
        p999_levels=float(np.percentile(levels, 99.9)),
        psnr_db=10 * math.log10(1.0 / mse),
        nonfinite=int((~ok).sum()) + got.nonfinite_cache,
        z_dtype=got.z_dtype,
        eps_dtype=got.eps_dtype,
    )


def load_policy(policy: Policy, setup: Setup, base: Path, noupcast: Path, lora: Path) -> PisaModel:
    folder = base if policy.upcast else noupcast
    on_cuda = setup.device.type == "cuda"
    emulate = policy.traits if (not on_cuda or policy.emulate_on_cuda) else None
    return PisaModel(folder, lora, device=setup.device, dtype=policy.dtype, emulate=emulate)


def precision_section(setup: Setup) -> dict[str, object]:
    base, noupcast, lora = tiny_models(setup.work)
    photos, cases = fidelity_inputs(setup.quick)
    reference = render_cases(PisaModel(base, lora, device="cpu", dtype="fp32"), photos, cases)
    rows: list[FidelityRow] = []
    unavailable: dict[str, str] = {}
    for policy in POLICIES:
        try:
            model = load_policy(policy, setup, base, noupcast, lora)
            got = render_cases(model, photos, cases)
        except Exception as exc:  # noqa: BLE001 - a policy this device cannot run is a finding, not a crash
            unavailable[policy.name] = f"{type(exc).__name__}: {exc}"[:200]
            release(setup.device)
            continue
        label = model.precision.label()
        rows.extend(compare(policy.name, label, c.name, got[c.name], reference[c.name].image) for c in cases)
        del model, got
        release(setup.device)
    gpu = [r for r in rows if r.policy == "gpu"]
    met = bool(gpu) and all(r.mean_levels < GOAL_MEAN and r.p999_levels <= GOAL_P999 for r in gpu)
    print_table(
        f"1. precision against CPU fp32 (tiny UNet, trained small VAE; {setup.device.type}"
        f"{', emulated' if setup.device.type == 'cpu' else ''})",
        ["policy", "case", "max", "mean", "p99.9", "PSNR dB", "non-finite", "z_L", "eps", "label"],
        [[r.policy, r.case, f"{r.max_levels:.2f}", f"{r.mean_levels:.3f}", f"{r.p999_levels:.2f}",
          f"{r.psnr_db:.1f}", str(r.nonfinite), r.z_dtype, r.eps_dtype, r.label] for r in rows],
    )  # fmt: skip
    for name, reason in unavailable.items():
        print(f"  {name}: unavailable ({reason})")
    verdict = "met" if met else "MISSED"
    print(f"  goal (gpu: mean < {GOAL_MEAN:g}, p99.9 <= {GOAL_P999:g} levels, every case): {verdict}")
    return {
        "photo_sizes": {k: list(v.shape[1::-1]) for k, v in photos.items()},
        "rows": [dataclasses.asdict(r) for r in rows],
        "unavailable": unavailable,
        "goal": {"policy": "gpu", "mean_levels_below": GOAL_MEAN, "p999_levels_at_most": GOAL_P999, "met": met},
    }


# -- 2. speed --------------------------------------------------------------------------------------------------------
@dataclass
class SpeedRow:
    size: str
    case: str
    seconds: float
    #: Peak GPU memory allocated during the case, weights included (on the CPU: the process's peak RSS so far).
    peak_mb: float
    #: GPU memory allocated when the case began (the weights and the session's cache); None on the CPU.
    before_mb: float | None = None
    note: str = ""


@dataclass
class VariantRow:
    what: str
    baseline: str
    variant: str
    baseline_s: float | None
    variant_s: float | None
    #: variant / baseline (above 1: the variant is slower); None where it could not run.
    ratio: float | None
    note: str = ""


def speed_model(setup: Setup) -> PisaModel:
    if setup.quick:
        base, _noupcast, lora = tiny_models(setup.work)
    else:
        base, lora = sd21_model(setup.work)
    return PisaModel(base, lora, device=setup.device, dtype="auto")


def measure(rows: list[SpeedRow], size: str, case: str, fn: Callable[[], T], device: torch.device, note: str = "") -> T:
    """Time ``fn()`` as one row, with the peak memory it reached; returns what it returned."""
    reset_peak(device)
    before = torch.cuda.memory_allocated(device) / MB if device.type == "cuda" else None
    out: list[T] = []
    seconds = timed(lambda: out.append(fn()), device)
    rows.append(SpeedRow(size, case, seconds, peak_mb(device), before, note))
    return out[0]


def first_render(model: PisaModel, width: int, height: int, seed: int, tiles: TileSettings | None) -> PisaSession:
    """A session holding a fresh photo, first rendered at an adjustable setting (both branches, encode to decode)."""
    session = session_for(model, tiles)
    if tiles is not None:
        session.state_budget = 1 << 50  # exact lockstep statistics, whatever the device has free
    session.set_photo(smooth_photo(width // 4, height // 4, seed))
    session.render(RenderParams(pix=0.8, sem=1.2))
    return session


def size_cases(setup: Setup, model: PisaModel, width: int, height: int, tiles: TileSettings | None) -> list[SpeedRow]:
    """The first render, a slider change, a realism change and a visible region (the middle quarter): the median of
    ``setup.repeats`` fresh photos each, after one warm-up render (cuDNN picks its algorithms per shape)."""
    dev, size = setup.device, f"{width}x{height}"
    first_render(model, width, height, seed=999, tiles=tiles)  # warm-up
    rows: list[SpeedRow] = []
    region = (width // 4, height // 4, width * 3 // 4, height * 3 // 4)
    for r in range(setup.repeats):
        session = measure(rows, size, "first render", lambda r=r: first_render(model, width, height, r, tiles), dev,
                          "both branches, encode to decode")  # fmt: skip
        measure(rows, size, "slider change", lambda s=session: s.render(RenderParams(pix=1.3, sem=0.6)), dev,
                "pix/sem, branches cached")  # fmt: skip
        later = RenderParams(pix=0.8, sem=1.2, realism=500 + r)
        measure(rows, size, "realism change", lambda s=session, p=later: s.render(p), dev, "both branches at t")
        params = RenderParams(pix=1.1, sem=0.7)
        whole = session.region_is_exact(params, region)  # the engine renders a small result whole
        measure(rows, size, "visible region", lambda s=session, p=params: s.render(p, region=region), dev,
                "the whole result (small)" if whole else "the middle quarter only")  # fmt: skip
        session.cache.clear()
        del session
        release(dev)
    merged = []
    for case in dict.fromkeys(r.case for r in rows):
        same = [r for r in rows if r.case == case]
        merged.append(SpeedRow(size, case, statistics.median(r.seconds for r in same), max(r.peak_mb for r in same),
                               same[0].before_mb, same[0].note))  # fmt: skip
    return merged


def decode_variants(setup: Setup, model: PisaModel, side: int) -> list[VariantRow]:
    """A ``side`` px decode: contiguous against the model's layout, the VAE in each dtype against the model's."""
    dev, n = setup.device, setup.repeats
    z = torch.randn(1, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(0)).to(dev)
    what = f"VAE decode {side} px"
    layout = "channels_last" if model.memory_format == torch.channels_last else "contiguous"
    base_label = f"{dtype_name(model.vae_dtype)} {layout}"
    baseline = median_time(lambda: model.decode(z), dev, n)
    rows = []
    other = torch.contiguous_format if model.memory_format == torch.channels_last else torch.channels_last
    model.vae.to(memory_format=other)
    try:
        with patched(model, memory_format=other):
            t = median_time(lambda: model.decode(z), dev, n)
    finally:
        model.vae.to(memory_format=model.memory_format)
    name = "contiguous" if other == torch.contiguous_format else "channels_last"
    rows.append(VariantRow(what, base_label, f"{dtype_name(model.vae_dtype)} {name}", baseline, t, t / baseline))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        if dtype == model.vae_dtype:
            continue
        label = f"{dtype_name(dtype)} {layout}"
        try:
            vae = cast(copy.deepcopy(model.vae), dtype)
            with patched(model, vae=vae, vae_dtype=dtype):
                t = median_time(lambda: model.decode(z), dev, n)
            rows.append(VariantRow(what, base_label, label, baseline, t, t / baseline))
        except Exception as exc:  # noqa: BLE001 - a dtype this device lacks: say so
            rows.append(VariantRow(what, base_label, label, baseline, None, None, f"unavailable: {exc}"[:120]))
        finally:
            vae = None
            release(dev)
    return rows


def unet_pass(model: PisaModel, z: torch.Tensor) -> Callable[[], object]:
    cond = model.prompts.get("").to(model.dtype)
    return lambda: model.eps(z, 1, cond, "full")


def unet_variants(setup: Setup, model: PisaModel, side: int) -> list[VariantRow]:
    """The UNet pass (full branch, one ``side`` px tile) in the other of fp16 / fp32."""
    dev, n = setup.device, setup.repeats
    z = torch.randn(1, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(1)).to(dev)
    baseline = median_time(unet_pass(model, z), dev, n)
    other = torch.float32 if model.dtype == torch.float16 else torch.float16
    what, label = f"UNet pass {side} px", dtype_name(model.dtype)
    try:
        unet = cast(copy.deepcopy(model.unet), other)
        with patched(model, unet=unet, dtype=other):
            t = median_time(unet_pass(model, z), dev, n)
        row = VariantRow(what, label, dtype_name(other), baseline, t, t / baseline)
    except Exception as exc:  # noqa: BLE001
        row = VariantRow(what, label, dtype_name(other), baseline, None, None, f"unavailable: {exc}"[:120])
    finally:
        unet = None
        release(dev)
    return [row]


def cudnn_variant(setup: Setup, model: PisaModel, side: int) -> list[VariantRow]:
    """A first render with cuDNN's benchmark mode off against on (the engine turns it on for CUDA)."""
    what = f"first render {side} px"
    if setup.device.type != "cuda":
        return [VariantRow(what, "cudnn.benchmark on", "off", None, None, None, f"n/a on {setup.device.type}")]
    times = {}
    for on in (True, False):
        torch.backends.cudnn.benchmark = model.cudnn_benchmark = on  # the UNet's (global) and the VAE's (per pass)
        first_render(model, side, side, seed=900 + on, tiles=None)  # this mode's warm-up
        times[on] = statistics.median(
            timed(lambda s=s: first_render(model, side, side, seed=910 + s, tiles=None), setup.device)
            for s in range(setup.repeats)
        )
    torch.backends.cudnn.benchmark = model.cudnn_benchmark = True
    return [VariantRow(what, "cudnn.benchmark on", "off", times[True], times[False], times[False] / times[True])]


def compile_variant(setup: Setup, model: PisaModel, side: int) -> list[VariantRow]:
    """The UNet pass compiled (``torch.compile``, default mode) against eager; compilation timed apart."""
    what = f"UNet pass {side} px"
    if setup.quick:
        return [VariantRow(what, "eager", "torch.compile", None, None, None, "skipped (--quick)")]
    if setup.clock.left() < COMPILE_NEEDS_S:
        return [VariantRow(what, "eager", "torch.compile", None, None, None, "skipped: time budget")]
    dev, n = setup.device, setup.repeats
    z = torch.randn(1, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(2)).to(dev)
    baseline = median_time(unet_pass(model, z), dev, n)
    eager = model.unet
    try:
        with patched(model, unet=torch.compile(eager)):
            start = time.perf_counter()
            for _ in range(2):  # compilation, and a first guard check
                unet_pass(model, z)()
            synchronize(dev)
            compile_s = time.perf_counter() - start
            t = median_time(unet_pass(model, z), dev, n, warmup=0)
        return [VariantRow(what, "eager", "torch.compile", baseline, t, t / baseline, f"compiled in {compile_s:.0f} s")]
    except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported op: report, do not fail the check
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [VariantRow(what, "eager", "torch.compile", baseline, None, None, f"unavailable: {first}"[:160])]
    finally:
        release(dev)


def speed_sizes(quick: bool) -> tuple[int, tuple[int, int, TileSettings]]:
    """The small (square) output side, and the large output with its tiles."""
    if quick:
        return 128, (256, 192, TileSettings(unet_tile=16, unet_overlap=8, vae_tile=16, vae_overlap=8))
    return 512, (2048, 1536, TileSettings())


def speed_section(setup: Setup, model: PisaModel) -> dict[str, object]:
    small, (lw, lh, large_tiles) = speed_sizes(setup.quick)
    rows = size_cases(setup, model, small, small, None)
    rows += size_cases(setup, model, lw, lh, large_tiles)
    variants = decode_variants(setup, model, small)
    variants += unet_variants(setup, model, small)
    variants += cudnn_variant(setup, model, small)
    memory = "peak GPU MB" if setup.device.type == "cuda" else "peak RSS MB"
    print_table(
        f"2. speed ({model.name}, {model.precision.label()} on {setup.device}; median of {setup.repeats})",
        ["size", "case", "seconds", memory, "held before MB", "note"],
        [[r.size, r.case, f"{r.seconds:.3f}", f"{r.peak_mb:.0f}", fmt(r.before_mb, ".0f"), r.note] for r in rows],
    )
    print_variants(variants)
    return {
        "model": model.name,
        "precision": model.precision.label(),
        "large_tiles": dataclasses.asdict(large_tiles),
        "peak_memory": "max_memory_allocated per case" if setup.device.type == "cuda" else "process peak RSS",
        "rows": [dataclasses.asdict(r) for r in rows],
        "variants": [dataclasses.asdict(v) for v in variants],
    }


def print_variants(variants: list[VariantRow], title: str = "   against the baseline, same run") -> None:
    print_table(
        title,
        ["what", "baseline", "variant", "baseline s", "variant s", "ratio", "note"],
        [[v.what, v.baseline, v.variant, fmt(v.baseline_s), fmt(v.variant_s), fmt(v.ratio, ".2f"), v.note]
         for v in variants],
    )  # fmt: skip


# -- 3. small cards --------------------------------------------------------------------------------------------------
@dataclass
class CardRow:
    card: str
    size: str
    free_mb: float | None = None
    vae_tile: int | None = None
    unet_tile: int | None = None
    state_budget_mb: float | None = None
    #: Every tiled pass tried, in order: (tile in latent px, lockstep state budget in bytes or None).
    attempts: list[list[int | None]] = dataclasses.field(default_factory=list)
    oom_retry: bool | None = None
    #: Peak GPU memory allocated during the render, the model's weights included and the ballast not.
    peak_mb: float | None = None
    seconds: float | None = None
    error: str = ""


#: (card, GB left free by the ballast): what an 8 GB and a 12 GB card have free with the model loaded.
CARDS = (("8 GB", 6), ("12 GB", 10))


def had_retry(attempts: list[Attempt]) -> bool:
    """Whether a pass was tried again: an attempt that is the one before it made smaller (the engine's own step)."""
    return any(b == a.smaller(1) for a, b in zip(attempts, attempts[1:], strict=False))


def card_case(setup: Setup, model: PisaModel, card: str, width: int, height: int, ballast: int) -> CardRow:
    dev = setup.device
    free = free_memory(dev) or 0
    session = session_for(model)  # tiles and budgets as the engine computes them with this much free
    session.set_photo(smooth_photo(width // 4, height // 4, seed=width))
    session.attempts.clear()
    budget = session.current_state_budget()
    reset_peak(dev)
    error, seconds = "", None
    try:
        seconds = timed(lambda: session.render(RenderParams(pix=0.8, sem=1.2)), dev)
    except Exception as exc:
        if not isinstance(exc, OutOfMemory | TooLarge) and not is_out_of_memory(exc):
            raise
        error = f"{type(exc).__name__}: {exc}"
    row = CardRow(card, f"{width}x{height}", free / MB, session.tiles.vae_tile, session.tiles.unet_tile, budget / MB,
                  [[a.tile, a.state_budget] for a in session.attempts], had_retry(session.attempts),
                  peak_mb(dev) - ballast / MB, seconds, error)  # fmt: skip
    session.cache.clear()
    return row


def cards_section(setup: Setup, model: PisaModel) -> dict[str, object] | None:
    if setup.device.type != "cuda":
        print("\n3. simulated small cards: needs a CUDA device")
        return None
    dev, rows = setup.device, []
    for card, free_gb in CARDS:
        release(dev)
        ballast_bytes = max(0, (free_memory(dev) or 0) - free_gb * GB)
        ballast = torch.empty(ballast_bytes, dtype=torch.uint8, device=dev)
        try:
            for width, height in ((2048, 1536), (4096, 3072)):
                if setup.clock.left() < CARD_CASE_NEEDS_S:
                    rows.append(CardRow(card, f"{width}x{height}", error="skipped: time budget"))
                    continue
                rows.append(card_case(setup, model, card, width, height, ballast_bytes))
                release(dev)
        finally:
            del ballast
            release(dev)
    print_table(
        "3. simulated small cards (ballast leaves the free memory shown; the engine's own tiles and budgets)",
        ["card", "size", "free MB", "VAE tile", "UNet tile", "state MB", "attempts (tile, state)", "OOM retry",
         "peak MB", "seconds", "error"],
        [[r.card, r.size, fmt(r.free_mb, ".0f"), str(r.vae_tile or "-"), str(r.unet_tile or "-"),
          fmt(r.state_budget_mb, ".0f"), " ".join(f"{t}/{'-' if s is None else round(s / MB)}" for t, s in r.attempts),
          {True: "yes", False: "no", None: "-"}[r.oom_retry], fmt(r.peak_mb, ".0f"), fmt(r.seconds), r.error]
         for r in rows],
    )  # fmt: skip
    return {"ballast": "leaves the card's free memory", "rows": [dataclasses.asdict(r) for r in rows]}


# -- main ------------------------------------------------------------------------------------------------------------
def meta(setup: Setup) -> dict[str, object]:
    info: dict[str, object] = {
        "device": str(setup.device),
        "quick": setup.quick,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "repeats": setup.repeats,
    }
    if setup.device.type == "cuda":
        props = torch.cuda.get_device_properties(setup.device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}", total_mb=props.total_memory / MB)
    else:
        import platform

        info.update(name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def write(path: Path, result: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, allow_nan=False), encoding="utf-8")


def sanitise(value: object) -> object:
    """NaN and infinities become null (strict JSON)."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: sanitise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitise(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cuda[:N], cpu, ... (as the app's --device)")
    ap.add_argument("--quick", action="store_true", help="tiny models and sizes (the test, on the CPU)")
    ap.add_argument("--json", type=Path, default=OUT / "device_check.json", help="where the results go")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--work", type=Path, default=OUT, help="where built models are kept (default bench/out)")
    ap.add_argument("--repeats", type=int, help="timed repeats per case (default 3, 1 with --quick)")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default 1 with --quick, else torch's)")
    ap.add_argument("--budget-s", type=float, default=360.0,
                    help="the script's own time: torch.compile and card cases are skipped near its end")  # fmt: skip
    args = ap.parse_args(argv)

    from desktop_sr.engine.hardware.device import select_device

    threads = args.threads or (1 if args.quick else None)
    if threads:  # tiny models gain nothing from threads, and on a busy machine threads waiting for each other
        torch.set_num_threads(threads)  # made them 10-100 x slower here

    setup = Setup(select_device(args.device), args.quick, args.work, Clock(args.budget_s),
                  args.repeats or (1 if args.quick else 3))  # fmt: skip
    setup.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"meta": meta(setup), "precision": None, "speed": None, "cards": None}
    print(f"device check on {setup.device} ({result['meta']['name']}), torch {torch.__version__}", flush=True)
    timings: dict[str, float] = {}
    result["seconds"] = timings

    def done(section: str, value: object, since: float, what: str = "") -> None:
        result[section] = value
        timings[what or section] = time.perf_counter() - since
        timings["total"] = setup.clock.elapsed()
        write(args.json, sanitise(result))  # type: ignore[arg-type]

    if "precision" in args.sections:
        t = time.perf_counter()
        done("precision", precision_section(setup), t)
    model = None
    if "speed" in args.sections or "cards" in args.sections:
        t = time.perf_counter()
        model = speed_model(setup)
        timings["speed model (built once, loaded)"] = time.perf_counter() - t
    if "speed" in args.sections:
        t = time.perf_counter()
        done("speed", speed_section(setup, model), t)  # type: ignore[arg-type]
    if "cards" in args.sections:
        t = time.perf_counter()
        done("cards", cards_section(setup, model), t)  # type: ignore[arg-type]
    if "speed" in args.sections:  # last: compilation takes long, and the compiled UNet must not serve the cards
        t = time.perf_counter()
        side = speed_sizes(setup.quick)[0]
        compiled = compile_variant(setup, model, side)  # type: ignore[arg-type]
        print_variants(compiled, "2. speed (continued): torch.compile, against eager in the same run")
        speed = result["speed"]
        assert isinstance(speed, dict)
        speed["variants"] = [*speed["variants"], *(dataclasses.asdict(v) for v in compiled)]
        done("speed", speed, t, "torch.compile")
    print(f"\n{setup.clock.elapsed():.0f} s in all; JSON in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
