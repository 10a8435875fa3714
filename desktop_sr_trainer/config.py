"""The training configuration: one TOML file, every setting with PiSA-SR's published default.

A run is fully described by its config file (plus the photos), so a studio can keep it next to the exported
adapters and re-run it. Unknown keys are errors, not silently ignored: a typo such as ``stage1_step`` would
otherwise train with the default and nobody would notice. Relative paths are resolved against the config file's
folder so a config and its data can be moved together.

The defaults are the official recipe (csslc/PiSA-SR: ``scripts/train/train_pisasr.sh``, the argument defaults of
``src/my_utils/training_utils.py`` and ``src/datasets/params.yml``); where this trainer differs, docs/training.md
says where and why. ``tests/test_trainer_recipe.py`` holds the published numbers and compares them key by key.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 installs tomli through the `train` extra
    import tomli as tomllib

#: The negative prompt of the official PiSA-SR training (``--neg_prompt_csd``, the unconditional branch of CSD),
#: verbatim: "oil painting" appears twice there, and a different string is a different text embedding.
DEFAULT_NEGATIVE_PROMPT = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG Style, 3D render, "
    "unreal engine, blurring, dirty, messy, worst quality, low quality, frames, watermark, signature, jpeg artifacts, "
    "deformed, lowres, over-smooth"
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")


class ConfigError(ValueError):
    """The config file is missing, not TOML, or has a wrong key or value; the message names which."""


@dataclass
class ModelConfig:
    base: str = ""  # SD-2.1-base in diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/)
    rank_pix: int = 4
    rank_sem: int = 4
    lora_alpha: float = 8.0  # peft's default with r = 4: scale 2.0, as the released adapters
    unet_timestep: int = 1  # PiSA-SR's input timestep; replaced per sample when [ldg] is enabled


@dataclass
class DataConfig:
    folders: list[str] = field(default_factory=list)
    crop: int = 512
    hflip: bool = True
    vflip: bool = False
    null_text_ratio: float = 0.5  # the SR UNet sees the caption half of the time (official null_text_ratio)
    default_caption: str = ""  # the caption of every photo without its own .txt (e.g. "old family photograph")
    num_workers: int = 2
    extensions: list[str] = field(default_factory=lambda: list(IMAGE_EXTENSIONS))


#: Real-ESRGAN x4plus's strengths (its ``train_realesrgan_x4plus.yml``) where they differ from PiSA-SR's: stronger
#: resize, noise and JPEG, more often a second blur. For collections that are badly degraded.
REALESRGAN_OVERRIDES: dict[str, Any] = {
    "resize_range": [0.15, 1.5],
    "noise_range": [1.0, 30.0],
    "poisson_scale_range": [0.05, 3.0],
    "jpeg_range": [30.0, 95.0],
    "second_blur_prob": 0.8,
    "resize_range2": [0.3, 1.2],
    "noise_range2": [1.0, 25.0],
    "poisson_scale_range2": [0.05, 2.5],
    "jpeg_range2": [30.0, 95.0],
}
DEGRADATION_PRESETS = ("pisa-sr", "realesrgan")


@dataclass
class DegradationConfig:
    """Real-ESRGAN's second-order pipeline with PiSA-SR's strengths (``src/datasets/params.yml``, x4).

    ``preset`` picks the starting values (``"pisa-sr"``, the default, or ``"realesrgan"``); any key set beside it
    in the config overrides that one value. PiSA-SR's params.yml also has ``color_jitter_prob`` and ``gray_prob``,
    both 0: those steps are off in the official training and have no keys here.
    """

    preset: str = "pisa-sr"
    scale: int = 4
    kernel_range: list[int] = field(default_factory=lambda: [7, 9, 11, 13, 15, 17, 19, 21])
    # first degradation
    kernel_list: list[str] = field(
        default_factory=lambda: ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
    )
    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # up, down, keep
    resize_range: list[float] = field(default_factory=lambda: [0.3, 1.5])
    gaussian_noise_prob: float = 0.5
    noise_range: list[float] = field(default_factory=lambda: [1.0, 15.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 2.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [60.0, 95.0])
    # second degradation
    second_blur_prob: float = 0.5
    kernel_list2: list[str] = field(
        default_factory=lambda: ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
    )
    kernel_prob2: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob2: float = 0.1
    blur_sigma2: list[float] = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob2: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list[float] = field(default_factory=lambda: [0.6, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list[float] = field(default_factory=lambda: [1.0, 12.0])
    poisson_scale_range2: list[float] = field(default_factory=lambda: [0.05, 1.0])
    gray_noise_prob2: float = 0.4
    jpeg_range2: list[float] = field(default_factory=lambda: [60.0, 100.0])
    # final sinc (applied in one of the two orders with the last JPEG, 50/50)
    final_sinc_prob: float = 0.8
    # bring the LQ back to the HR size before 8-bit quantisation; "random" picks area/bilinear/bicubic per sample
    # as the PiSA-SR data pipeline does, a fixed mode makes the input look exactly like the app's bicubic upscale
    resize_back_mode: str = "random"

    @classmethod
    def from_preset(cls, name: str) -> DegradationConfig:
        """The named preset's values: ``"pisa-sr"`` (PiSA-SR's params.yml) or ``"realesrgan"`` (x4plus)."""
        if name == "pisa-sr":
            return cls()
        if name == "realesrgan":
            return dataclasses.replace(
                cls(),
                preset=name,
                **{k: list(v) if isinstance(v, list) else v for k, v in REALESRGAN_OVERRIDES.items()},
            )
        raise ConfigError(f"unknown degradation preset {name!r} (known: {', '.join(DEGRADATION_PRESETS)})")


@dataclass
class TrainConfig:
    output_dir: str = "runs/pisa-sr"
    seed: int = 123
    device: str = "auto"
    stage1_steps: int = 4000  # pixel LoRA (PiSA-SR's pix_steps)
    stage2_steps: int = 4000  # semantic LoRA
    batch_size: int = 4
    grad_accum: int = 4  # 4 x 4 = 16 photos per optimizer step, the published 4 GPUs x batch 4
    lr: float = 5e-5
    lr_schedule: str = "constant"  # official default; or constant_with_warmup, linear, cosine (over optimizer steps)
    lr_warmup_steps: int = 0  # optimizer steps of linear warm-up (ignored by "constant", as in the official code)
    weight_decay: float = 1e-2
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # auto (bf16/fp16 on a GPU, off on the CPU), no, fp16, bf16
    gradient_checkpointing: bool = True
    log_every: int = 1
    sample_every: int = 500
    sample_count: int = 4
    checkpoint_every: int = 500
    keep_checkpoints: int = 3


@dataclass
class LossConfig:
    mse: float = 1.0
    lpips: float = 2.0
    csd: float = 1.0
    # both are required for stage 2 while lpips > 0: the trainer refuses to run LPIPS with random weights
    lpips_vgg_weights: str = ""  # torchvision vgg16 ImageNet state dict (vgg16-397923af.pth) or .safetensors
    lpips_lin_weights: str = ""  # the lpips package's weights/v0.1/vgg.pth (the five linear heads)


@dataclass
class CsdConfig:
    cfg: float = 7.5
    t_min: int = 20  # inclusive
    t_max: int = 500  # exclusive: t ~ U[20, 500) (official min/max_dm_step_ratio 0.02 / 0.5)
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT


@dataclass
class LdgConfig:
    """RCOD latent domain grouping (and degradation-aware CSD timestep sampling)."""

    enabled: bool = False
    k: int = 250
    n: int = 3
    das_min: int = 20
    das_max: int = 980
    calibration_samples: int = 64  # samples used to find M_min / M_max before training when not given
    m_min: float = math.nan
    m_max: float = math.nan


@dataclass
class ExportConfig:
    name: str = "my-pisa-sr"
    folder: str = ""  # default: <output_dir>/export
    official_pkl: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    csd: CsdConfig = field(default_factory=CsdConfig)
    ldg: LdgConfig = field(default_factory=LdgConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    source: str = ""  # the file it was read from (not a TOML key)

    @property
    def total_steps(self) -> int:
        return self.train.stage1_steps + self.train.stage2_steps

    def trained_timesteps(self) -> tuple[int, ...]:
        """The realism levels the adapters learn: RCOD's k, 2k, ..., nk with LDG, else the one input timestep."""
        if self.ldg.enabled:
            return tuple(self.ldg.k * i for i in range(1, self.ldg.n + 1))
        return (self.model.unet_timestep,)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based; steps count after gradient accumulation).

        A pure function of the step, so a resumed run (or one with a different ``grad_accum``) needs no scheduler
        state to stay on the schedule. The schedule spans the whole run, both stages, as the official single
        scheduler does; warm-up rises linearly to ``lr`` over ``lr_warmup_steps``.
        """
        t = self.train
        if t.lr_schedule == "constant":
            return t.lr
        if step < t.lr_warmup_steps:
            return t.lr * (step + 1) / t.lr_warmup_steps
        if t.lr_schedule == "constant_with_warmup":
            return t.lr
        span = max(1, self.total_steps - t.lr_warmup_steps)
        progress = min(1.0, (step - t.lr_warmup_steps) / span)
        if t.lr_schedule == "linear":
            return t.lr * (1.0 - progress)
        return t.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def validate(self) -> None:
        m, t, ldg, deg = self.model, self.train, self.ldg, self.degradation
        checks: list[tuple[bool, str]] = [
            (m.rank_pix >= 1 and m.rank_sem >= 1, "model.rank_pix and model.rank_sem must be at least 1"),
            (1 <= m.unet_timestep <= 999, "model.unet_timestep must be in 1..999"),
            (self.data.crop >= 8 and self.data.crop % 8 == 0, "data.crop must be a multiple of 8 (the VAE factor)"),
            (self.data.crop % deg.scale == 0, "data.crop must be a multiple of degradation.scale"),
            (0.0 <= self.data.null_text_ratio <= 1.0, "data.null_text_ratio must be in 0..1"),
            (t.stage1_steps >= 0 and t.stage2_steps >= 0, "train.stage1_steps/stage2_steps must be >= 0"),
            (t.batch_size >= 1 and t.grad_accum >= 1, "train.batch_size and train.grad_accum must be >= 1"),
            (t.lr > 0, "train.lr must be positive"),
            (t.lr_schedule in LR_SCHEDULES, f"train.lr_schedule: {', '.join(LR_SCHEDULES)}"),
            (t.lr_warmup_steps >= 0, "train.lr_warmup_steps must be >= 0"),
            (len(t.adam_betas) == 2, "train.adam_betas must have two numbers"),
            (t.mixed_precision in ("auto", "no", "fp16", "bf16"), "train.mixed_precision: auto, no, fp16 or bf16"),
            (t.checkpoint_every >= 1 and t.sample_every >= 1, "train.checkpoint_every/sample_every must be >= 1"),
            (t.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1"),
            (1 <= self.csd.t_min < self.csd.t_max <= 1000, "csd.t_min < csd.t_max within 1..1000"),
            (ldg.k >= 1 and ldg.n >= 1 and ldg.k * ldg.n <= 999, "ldg.k * ldg.n must be within 1..999"),
            (0 <= ldg.das_min <= ldg.das_max <= 999, "ldg.das_min <= ldg.das_max within 0..999"),
            (deg.preset in DEGRADATION_PRESETS, f"degradation.preset: {', '.join(DEGRADATION_PRESETS)}"),
            (deg.resize_back_mode in ("random", "area", "bilinear", "bicubic"),
             "degradation.resize_back_mode: random, area, bilinear or bicubic"),
            (len(deg.kernel_list) == len(deg.kernel_prob), "degradation.kernel_list and kernel_prob differ in length"),
            (len(deg.kernel_list2) == len(deg.kernel_prob2), "degradation.kernel_list2 and kernel_prob2 differ"),
            (all(k % 2 == 1 and 3 <= k <= 21 for k in deg.kernel_range), "degradation.kernel_range: odd sizes 3..21"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.source or 'config'}: {message}")
        if not math.isnan(ldg.m_min) and not math.isnan(ldg.m_max) and not ldg.m_min < ldg.m_max:
            raise ConfigError(f"{self.source or 'config'}: ldg.m_min must be smaller than ldg.m_max")


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source"}


def _section_class(name: str) -> type:
    return {
        "model": ModelConfig, "data": DataConfig, "degradation": DegradationConfig, "train": TrainConfig,
        "loss": LossConfig, "csd": CsdConfig, "ldg": LdgConfig, "export": ExportConfig,
    }[name]  # fmt: skip


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check a TOML value against the default's type (ints are accepted for floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        if default:
            return [_coerce(v, default[0], f"{where}[{i}]") for i, v in enumerate(value)]
        return list(value)
    return value


def from_dict(data: dict[str, Any], source: str = "", base_dir: Path | None = None) -> Config:
    """Build a config from parsed TOML, checking every key; ``base_dir`` resolves relative paths.

    ``degradation = "realesrgan"`` (a string instead of the table) is short for ``[degradation] preset = ...``;
    in the table, ``preset`` sets the starting values and every other key overrides one of them.
    """
    cfg = Config(source=source)
    where = source or "config"
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{where}: unknown section [{section}] (known: {', '.join(_SECTIONS)})")
        if section == "degradation" and isinstance(values, str):
            values = {"preset": values}
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        if section == "degradation":
            preset = values.get("preset", "pisa-sr")
            if not isinstance(preset, str):
                raise ConfigError(f"{where}: degradation.preset must be a string, not {preset!r}")
            try:
                cfg.degradation = DegradationConfig.from_preset(preset)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        target = getattr(cfg, section)
        known = {f.name for f in dataclasses.fields(_section_class(section))}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown key {section}.{key}")
            setattr(target, key, _coerce(value, getattr(target, key), f"{section}.{key}"))
    if base_dir is not None:
        _resolve_paths(cfg, base_dir)
    cfg.validate()
    return cfg


def _resolve_paths(cfg: Config, base_dir: Path) -> None:
    def res(p: str) -> str:
        return str((base_dir / p).resolve()) if p and not Path(p).expanduser().is_absolute() else p

    cfg.model.base = res(cfg.model.base)
    cfg.data.folders = [res(f) for f in cfg.data.folders]
    cfg.train.output_dir = res(cfg.train.output_dir)
    cfg.loss.lpips_vgg_weights = res(cfg.loss.lpips_vgg_weights)
    cfg.loss.lpips_lin_weights = res(cfg.loss.lpips_lin_weights)
    cfg.export.folder = res(cfg.export.folder)


def load_config(path: str | Path) -> Config:
    """Read and check a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return from_dict(data, source=str(path), base_dir=path.resolve().parent)


def to_toml(cfg: Config, header: str = "") -> str:
    """Write a config as TOML (every key, defaults included), for ``--print-config``, ``--show-defaults`` and the
    run folder; :func:`from_dict` reads it back to an equal config (``nan`` marks an LDG bound still to calibrate)."""
    lines: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    if lines:
        lines.append("")
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
