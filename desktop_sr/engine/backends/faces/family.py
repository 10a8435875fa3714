"""Face models as a model family: one weights file of an architecture spandrel restores faces with (torch-free).

A face model restores one 512 x 512 aligned face, so the family says it is no upscaler (``Capabilities.upscaler``
False: never offered as the model that makes a result) and that it restores faces (``face_restoration``): the editor,
the CLI and the batch offer it where faces are restored, learning that from the capabilities, never from the kind.

Licences differ per architecture and several are non-commercial, so each architecture's licence is recorded at
import (``inspect``) and shown before first use; :data:`CATALOGUE` lists the official releases the model manager can
download, each with its licence.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModelError
from ...families import (
    WEIGHTS_SUFFIXES,
    Capabilities,
    Details,
    FileRole,
    ModelFamily,
    OpenOptions,
    Published,
    check_file,
    register,
)
from ...spec import ModelSpec

if TYPE_CHECKING:
    from ...control import Control
    from ...faces.restore import FaceRestorer

KIND = "faces"
WEIGHTS = FileRole(
    "weights",
    "Face model weights",
    suffixes=WEIGHTS_SUFFIXES,
    hint="GFPGAN v1.3/v1.4, RestoreFormer or CodeFormer (.pth), from their official releases",
)


@dataclass(frozen=True)
class Architecture:
    """A face architecture: how its file is recognised without torch, and its licence."""

    name: str  # spandrel's architecture id
    markers: tuple[bytes, ...]  # tensor names every file of it holds
    licence: str
    non_commercial: bool
    fidelity: bool = False  # takes CodeFormer's fidelity weight w


ARCHITECTURES = (
    Architecture(
        "GFPGAN",
        (b"stylegan_decoder.style_mlp", b"toRGB.0.weight"),
        "GFPGAN (TencentARC): Apache-2.0 code, with parts under the NVIDIA Source Code Licence (StyleGAN2) and "
        "CC BY-NC-SA 4.0: non-commercial use only",
        non_commercial=True,
    ),
    Architecture(
        "CodeFormer",
        (b"position_emb", b"idx_pred_layer", b"ft_layers"),
        "CodeFormer (S-Lab, NTU): S-Lab License 1.0: non-commercial use only",
        non_commercial=True,
        fidelity=True,
    ),
    Architecture(
        "RestoreFormer",
        (b"quantize.embedding", b"quant_conv.weight", b"encoder.conv_in"),
        "RestoreFormer (wzhouxiff): Apache-2.0, as its authors' repository states; check it before commercial use",
        non_commercial=False,
    ),
)


def _published(key: str, name: str, arch: str, url: str, page: str) -> Published:
    a = next(a for a in ARCHITECTURES if a.name == arch)
    return Published(key, name, url, page, a.licence, a.non_commercial)


#: The official releases (``desktop-sr models get KEY``, the model manager's Download). Their sha256 is recorded at
#: download: the projects publish none.
CATALOGUE = (
    _published("gfpgan-1.4", "GFPGAN v1.4", "GFPGAN",
               "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
               "https://github.com/TencentARC/GFPGAN"),
    _published("gfpgan-1.3", "GFPGAN v1.3", "GFPGAN",
               "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
               "https://github.com/TencentARC/GFPGAN"),
    _published("restoreformer", "RestoreFormer", "RestoreFormer",
               "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/RestoreFormer.pth",
               "https://github.com/wzhouxiff/RestoreFormer"),
    _published("codeformer", "CodeFormer", "CodeFormer",
               "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
               "https://github.com/sczhou/CodeFormer"),
)  # fmt: skip

#: How much of a bare (non-zip) pickle is searched for tensor names: they come first, before the tensors' bytes.
_PEEK_BYTES = 8 << 20


def tensor_names_blob(path: Path) -> bytes:
    """The bytes that hold a weights file's tensor names, read without torch: a ``.safetensors`` header, a zip
    checkpoint's ``data.pkl``, or the start of a bare pickle. b"" when unreadable."""
    try:
        if path.suffix.lower() == ".safetensors":
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > 100 << 20:
                    return b""
                return " ".join(json.loads(f.read(n))).encode()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                return z.read(names[0]) if names else b""
        with path.open("rb") as f:
            return f.read(_PEEK_BYTES)
    except (OSError, ValueError, struct.error, zipfile.BadZipFile, UnicodeDecodeError, KeyError):
        return b""


def architecture_of(path: Path) -> Architecture | None:
    """The face architecture a file's tensor names say, or None (torch-free, quick: the dialogs call it)."""
    blob = tensor_names_blob(path)
    for arch in ARCHITECTURES:
        if all(m in blob for m in arch.markers):
            return arch
    return None


class FaceFamily(ModelFamily):
    kind = KIND
    label = "Face restoration model (GFPGAN, RestoreFormer, CodeFormer)"
    roles = (WEIGHTS,)
    capabilities = Capabilities(
        strengths=False,
        scales=(),
        upscaler=False,
        face_restoration=True,
        licence_note="GFPGAN and CodeFormer: non-commercial use only; RestoreFormer: Apache-2.0. Each model's own "
        "licence is shown when it is imported",
    )
    published = CATALOGUE
    order = 15  # before the community family: it claims only files whose tensor names say a face model

    def claims(self, paths: Sequence[Path]) -> dict[str, Path] | None:
        if len(paths) != 1 or not paths[0].is_file() or paths[0].suffix.lower() not in WEIGHTS_SUFFIXES:
            return None
        return {WEIGHTS.key: paths[0]} if architecture_of(paths[0]) is not None else None

    def inspect(self, files: Mapping[str, Path]) -> Details:
        super().inspect(files)
        from .load import read_face_model

        descriptor = read_face_model(files[WEIGHTS.key])
        arch = next(a for a in ARCHITECTURES if a.name == descriptor.architecture.id)
        facts = {"architecture": arch.name, "restores": "faces (512 x 512)"}
        if arch.fidelity:
            facts["fidelity weight"] = "yes"
        facts["licence"] = arch.licence
        return Details(facts)

    def open(self, spec: ModelSpec, options: OpenOptions, control: Control | None = None):  # noqa: ANN201
        raise ModelError(
            Path(spec.name or KIND),
            "is a face restoration model: it restores the faces of a result (--restore-faces, the Faces panel), "
            "it does not make one; choose an upscaler or PiSA-SR as the model",
        )

    def open_restorer(self, spec: ModelSpec, options: OpenOptions) -> FaceRestorer:
        path = spec.file(WEIGHTS.key)
        if path is None:
            raise ModelError(Path(spec.name or KIND), "a face model needs its weights file")
        check_file(path, WEIGHTS)
        from .load import load_restorer

        return load_restorer(path, spec.name or path.stem, options)


FAMILY = register(FaceFamily())


def face_spec(weights: str | Path, name: str = "") -> ModelSpec:
    """The spec of a face model file (``--restore-faces FILE``, tests)."""
    return FAMILY.spec({WEIGHTS.key: weights}, name)
