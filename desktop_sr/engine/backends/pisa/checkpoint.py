"""LoRA checkpoints: the official PiSA-SR ``.pkl`` and the app's ``.safetensors`` + JSON manifest.

Both load into one :class:`LoraCheckpoint`, so the rest of the engine never cares where weights came from.
The official file does not store LoRA alpha; its training code used peft's default ``lora_alpha = 8`` with
rank 4, i.e. a scale of 2.0. Using alpha = rank would silently halve the effect, so the default alpha is 8.
A ``.pkl`` written here (by the trainer's export) adds two keys the official loader ignores: ``lora_alpha`` and
``timesteps`` (the realism levels it was trained for); they are read when present, so a model trained with another
alpha or with RCOD grouping means the same from its ``.pkl`` as from its ``.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .... import durable
from ...errors import ModelError

GROUPS = ("encoder", "decoder", "others")
BRANCHES = ("pix", "sem")
OFFICIAL_LORA_ALPHA = 8.0
MANIFEST_FORMAT = "desktop-sr-lora"
MANIFEST_VERSION = 1

#: Substrings of UNet parameter names that PiSA-SR (and OSEDiff before it) put LoRA on.
OFFICIAL_PATTERNS = (
    "to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
    "proj_in", "proj_out", "ff.net.2", "ff.net.0.proj",
)  # fmt: skip

_KEY_RE = re.compile(
    r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.default_(?P<group>encoder|decoder|others)_(?P<branch>pix|sem)\.weight$"
)


def adapter_name(group: str, branch: str) -> str:
    """peft adapter name used by the official checkpoint, e.g. ``default_encoder_pix``."""
    return f"default_{group}_{branch}"


def official_module_lists(unet: torch.nn.Module) -> dict[str, list[str]]:
    """The official grouping of LoRA target modules (encoder / decoder / others) for a diffusers UNet.

    A parameter is targeted when its name contains one of :data:`OFFICIAL_PATTERNS` and is neither a bias nor a
    norm; it goes to ``encoder`` inside ``down_blocks``/``conv_in``, to ``decoder`` inside ``up_blocks``/``conv_out``
    and to ``others`` elsewhere. Trainer and tests use this so their adapters look exactly like released ones.
    """
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, _ in unet.named_parameters():
        if "bias" in name or "norm" in name or "lora_" in name:
            continue
        for pattern in OFFICIAL_PATTERNS:
            if pattern not in name:
                continue
            module = name.removesuffix(".weight").replace(".base_layer", "")
            if "down_blocks" in name or "conv_in" in name:
                groups["encoder"].append(module)
            elif "up_blocks" in name or "conv_out" in name:
                groups["decoder"].append(module)
            else:
                groups["others"].append(module)
            break
    return groups


@dataclass
class LoraCheckpoint:
    """Pixel and semantic LoRA adapters for the SD UNet, with what is needed to rebuild them exactly."""

    modules: dict[str, dict[str, list[str]]]  # branch -> group -> UNet module names
    ranks: dict[str, int]  # branch -> rank
    alphas: dict[str, float]  # branch -> lora_alpha
    state_dict: dict[str, torch.Tensor]  # peft key names; non-LoRA keys override base UNet weights
    timesteps: tuple[int, ...] = (1,)  # realism levels the adapters were trained for
    source: Path = field(default_factory=lambda: Path("<memory>"))
    name: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def scale(self, branch: str) -> float:
        return self.alphas[branch] / self.ranks[branch]

    def lora_keys(self, branch: str) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict.items() if f"_{branch}.weight" in k and ".lora_" in k}

    def base_overrides(self) -> dict[str, torch.Tensor]:
        """Non-LoRA tensors (some OSEDiff-family checkpoints also store ``conv_in``)."""
        return {k: v for k, v in self.state_dict.items() if ".lora_" not in k}

    def fingerprint(self) -> str:
        """A content hash of the adapters: keys the latent cache so a different model never reuses it."""
        h = hashlib.sha256()
        h.update(json.dumps(self.manifest(), sort_keys=True).encode())
        for key in sorted(self.state_dict):
            t = self.state_dict[key].detach().to(torch.float32).contiguous().cpu()
            h.update(key.encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def manifest(self) -> dict[str, object]:
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "name": self.name,
            "ranks": self.ranks,
            "alphas": self.alphas,
            "modules": self.modules,
            "timesteps": list(self.timesteps),
            **({"extra": self.extra} if self.extra else {}),
        }

    def validate(self) -> None:
        """Check internal consistency: every listed module has A and B of matching rank, nothing unlisted."""
        src = self.source
        for branch in BRANCHES:
            if branch not in self.ranks or branch not in self.modules:
                raise ModelError(src, f"the checkpoint has no {branch} adapter")
            if self.ranks[branch] < 1:
                raise ModelError(src, f"the {branch} rank must be positive, not {self.ranks[branch]}")
        seen: set[tuple[str, str, str]] = set()
        for key, tensor in self.state_dict.items():
            if ".lora_" not in key:
                continue
            m = _KEY_RE.match(key)
            if not m:
                raise ModelError(src, f"unexpected LoRA tensor name {key!r}")
            module, ab, group, branch = m["module"], m["ab"], m["group"], m["branch"]
            if module not in self.modules[branch].get(group, ()):
                raise ModelError(src, f"tensor {key!r} is for a module not listed in the {group}/{branch} modules")
            rank = self.ranks[branch]
            dim = tensor.shape[0] if ab == "A" else (tensor.shape[1] if tensor.ndim > 1 else -1)
            if dim != rank:
                raise ModelError(src, f"tensor {key!r} has shape {tuple(tensor.shape)}, not rank {rank}")
            seen.add((module, ab, adapter_name(group, branch)))
        for branch in BRANCHES:
            for group in GROUPS:
                for module in self.modules[branch].get(group, ()):
                    for ab in "AB":
                        if (module, ab, adapter_name(group, branch)) not in seen:
                            raise ModelError(
                                src, f"missing tensor {module}.lora_{ab}.{adapter_name(group, branch)}.weight"
                            )


def _torch_load(path: Path) -> object:
    """Load a pickled checkpoint, preferring the safe loader; the official file only holds lists, ints, tensors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Unsupported global" not in str(exc):
            raise
    # Some exports pickle extra Python objects; the official loader used weights_only=False as well.
    return torch.load(path, map_location="cpu", weights_only=False)


def load_official(path: str | Path) -> LoraCheckpoint:
    """Read the official PiSA-SR ``.pkl`` (a ``torch.save`` dict, see DESIGN.md section 2)."""
    path = Path(path)
    _check_file(path)
    try:
        sd = _torch_load(path)
    except Exception as exc:  # a corrupt pickle can fail in any way: all of them mean "not readable"
        raise ModelError(path, f"not a readable PiSA-SR checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(sd, Mapping):
        raise ModelError(path, "not a PiSA-SR checkpoint (expected a dict)")
    try:
        modules = {b: {g: [str(m) for m in sd[f"unet_lora_{g}_modules_{b}"]] for g in GROUPS} for b in BRANCHES}
        ranks = {b: int(sd[f"lora_rank_unet_{b}"]) for b in BRANCHES}
        state = sd["state_dict_unet"]
    except KeyError as exc:
        raise ModelError(path, f"not a PiSA-SR checkpoint: key {exc.args[0]!r} is missing") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(path, "state_dict_unet is not a dict of tensors")
    try:
        alpha = float(sd.get("lora_alpha", OFFICIAL_LORA_ALPHA))
        alphas = {b: float(sd.get(f"lora_alpha_unet_{b}", alpha)) for b in BRANCHES}
        timesteps = tuple(int(t) for t in sd.get("timesteps", (1,)))
    except (TypeError, ValueError) as exc:
        raise ModelError(path, f"lora_alpha / timesteps are not numbers ({exc})") from exc
    if not timesteps or not all(1 <= t <= 999 for t in timesteps) or not all(a > 0 for a in alphas.values()):
        raise ModelError(path, f"implausible lora_alpha {alphas} or timesteps {list(timesteps)}")
    ckpt = LoraCheckpoint(
        modules=modules,
        ranks=ranks,
        alphas=alphas,
        state_dict=dict(state),
        timesteps=timesteps,
        source=path,
        name=path.stem,
    )
    ckpt.validate()
    return ckpt


def manifest_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def load_app(path: str | Path) -> LoraCheckpoint:
    """Read the app's format: ``NAME.safetensors`` with ``NAME.json`` beside it."""
    path = Path(path)
    _check_file(path)
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise ModelError(mpath, "the manifest beside the .safetensors file is missing")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(mpath, f"the manifest is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(mpath, f"not a desktop-sr LoRA manifest (format must be {MANIFEST_FORMAT!r})")
    if int(manifest.get("version", 0)) > MANIFEST_VERSION:
        raise ModelError(mpath, f"manifest version {manifest['version']} is newer than this app understands")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(path, f"corrupt .safetensors file ({exc})") from exc
    try:
        ckpt = LoraCheckpoint(
            modules={b: {g: list(manifest["modules"][b][g]) for g in GROUPS} for b in BRANCHES},
            ranks={b: int(manifest["ranks"][b]) for b in BRANCHES},
            alphas={b: float(manifest["alphas"][b]) for b in BRANCHES},
            state_dict=state,
            timesteps=tuple(int(t) for t in manifest.get("timesteps", [1])),
            source=path,
            name=str(manifest.get("name") or path.stem),
            extra=dict(manifest.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(mpath, f"the manifest is incomplete ({type(exc).__name__}: {exc})") from exc
    ckpt.validate()
    return ckpt


def load_checkpoint(path: str | Path) -> LoraCheckpoint:
    """Load either format, chosen by the file extension."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return load_app(path)
    if path.suffix.lower() in (".pkl", ".pt", ".pth", ".ckpt"):
        return load_official(path)
    raise ModelError(path, "unknown LoRA checkpoint type (expected .pkl or .safetensors)")


def save_app(ckpt: LoraCheckpoint, path: str | Path) -> Path:
    """Write ``.safetensors`` + manifest atomically (temp files, then rename), so a crash never leaves half a model."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in ckpt.state_dict.items()}
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"format": MANIFEST_FORMAT}))
    text = json.dumps(ckpt.manifest(), indent=2, sort_keys=True)
    _atomic(manifest_path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def save_official(ckpt: LoraCheckpoint, path: str | Path, *, extras: bool = True) -> Path:
    """Write the official ``.pkl`` layout so adapters trained here also open in the reference code.

    With ``extras``, ``lora_alpha`` and ``timesteps`` are added (the reference loader ignores them); branches with
    different alphas get ``lora_alpha_unet_pix`` / ``_sem`` instead, named like the official rank keys. Without,
    the file holds exactly the keys a released PiSA-SR ``.pkl`` holds.
    """
    path = Path(path)
    sd: dict[str, object] = {}
    for b in BRANCHES:
        for g in GROUPS:
            sd[f"unet_lora_{g}_modules_{b}"] = list(ckpt.modules[b][g])
        sd[f"lora_rank_unet_{b}"] = ckpt.ranks[b]
    if extras and len({float(ckpt.alphas[b]) for b in BRANCHES}) == 1:
        sd["lora_alpha"] = float(ckpt.alphas[BRANCHES[0]])
    elif extras:
        for b in BRANCHES:
            sd[f"lora_alpha_unet_{b}"] = float(ckpt.alphas[b])
    if extras:
        sd["timesteps"] = [int(t) for t in ckpt.timesteps]
    sd["state_dict_unet"] = {k: v.detach().cpu() for k, v in ckpt.state_dict.items()}
    _atomic(path, lambda tmp: torch.save(sd, tmp))
    return path


def convert_pkl_to_app(src: str | Path, dst: str | Path) -> Path:
    """Convert an official ``.pkl`` into the app's ``.safetensors`` + manifest."""
    return save_app(load_official(src), dst)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(path, "file not found")
    if not path.is_file():
        raise ModelError(path, "is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise ModelError(path, "the file is empty")


def _atomic(path: Path, write: object) -> None:
    """Through :func:`desktop_sr.durable.replace_with`: temp beside, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.replace_with(path, lambda tmp: write(str(tmp)))  # type: ignore[operator]


def iter_lora_modules(ckpt: LoraCheckpoint, branch: str) -> Iterable[tuple[str, str]]:
    """(group, module) pairs of one branch."""
    for group in GROUPS:
        for module in ckpt.modules[branch][group]:
            yield group, module
