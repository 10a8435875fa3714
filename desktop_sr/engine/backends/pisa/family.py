"""PiSA-SR as a model family: a Stable Diffusion 2.1-base folder plus a pixel/semantic adapter file (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModelError
from ...families import Capabilities, Details, FileRole, ModelFamily, OpenOptions, RoleFiles, register
from ...kernels.small_photo import enlarged_size
from ...spec import ModelSpec
from .layout import ADAPTER_SUFFIXES, adapter_files, check_base_folder, select_base_files

if TYPE_CHECKING:
    from ...control import Control
    from .session import PisaSession

KIND = "pisa-sr"
BASE = FileRole(
    "base",
    "Stable Diffusion 2.1-base folder",
    folder=True,
    hint="stabilityai/stable-diffusion-2-1-base in diffusers layout (unet, vae, text_encoder, tokenizer, scheduler)",
)
ADAPTER = FileRole(
    "adapter",
    "PiSA-SR adapter",
    suffixes=ADAPTER_SUFFIXES,
    hint="the official pisa_sr.pkl, or a .safetensors adapter with its .json manifest (from desktop-sr-train)",
)


class PisaFamily(ModelFamily):
    kind = KIND
    label = "PiSA-SR (Stable Diffusion 2.1 + pixel/semantic adapters)"
    roles = (BASE, ADAPTER)
    capabilities = Capabilities(strengths=True, realism=True, prompt=True, color_fix=True, scales=(1, 2, 3, 4))
    order = 10

    def role_files(self, role: FileRole, path: Path) -> RoleFiles:
        if role.key == BASE.key:
            check_base_folder(path)
            return RoleFiles(path, tuple(select_base_files(path)), "")
        names = adapter_files(path)
        return RoleFiles(path.parent, tuple(names), path.name)

    def claims(self, paths: Sequence[Path]) -> dict[str, Path] | None:
        if len(paths) == 2 and paths[0].is_dir() and paths[1].suffix.lower() in ADAPTER_SUFFIXES:
            return {BASE.key: paths[0], ADAPTER.key: paths[1]}
        return None

    def work_megapixels(self, width: int, height: int, scale: int) -> float:
        """A small photo is computed enlarged (the reference script's rule): its render costs the enlarged size."""
        w, h = enlarged_size(width, height, scale) or (width, height)
        return w * h * scale * scale / 1e6

    def inspect(self, files: Mapping[str, Path]) -> Details:
        super().inspect(files)
        from .checkpoint import load_checkpoint  # torch: only when a model is imported

        ckpt = load_checkpoint(files[ADAPTER.key])
        ranks = sorted(set(ckpt.ranks.values()))
        facts = {"rank": "/".join(map(str, ranks)), "realism levels": ", ".join(map(str, ckpt.timesteps))}
        return Details(facts)

    def open(self, spec: ModelSpec, options: OpenOptions, control: Control | None = None) -> PisaSession:
        base, adapter = spec.file(BASE.key), spec.file(ADAPTER.key)
        if base is None or adapter is None:
            where = base or Path(spec.name or KIND)
            raise ModelError(where, "a PiSA-SR model needs a base model folder and an adapter")
        from .session import load_pisa_session

        return load_pisa_session(
            base, adapter, device=options.device, dtype=options.dtype, cache_mb=options.cache_mb, tiles=options.tiles
        )


FAMILY = register(PisaFamily())


def pisa_spec(base_dir: str | Path, adapter: str | Path, name: str = "") -> ModelSpec:
    """The spec of a PiSA-SR model from its two parts (the CLI's --model/--lora, tests)."""
    return FAMILY.spec({BASE.key: base_dir, ADAPTER.key: adapter}, name)
