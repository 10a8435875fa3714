"""Reading a diffusers network's weights straight into the memory the inference keeps.

diffusers maps a ``.safetensors`` file and hands out tensors that view the mapping. For a network used as stored
that is ideal (no copy), but PiSA-SR merges the pixel LoRA into the UNet's weights in place, and a write to a mapped
page first faults the file page in, then copies it (copy-on-write), one 4 KiB page at a time: measured on this
machine, merging into the mapped SD-2.1 UNet took 6-14 s, against 1.6 s to read the whole 3.4 GB file into ordinary
memory with ``readinto``. The first UNet forward then pays the page faults of every weight the merge did not touch.
So the engine reads the file itself, tensor by tensor, into tensors it allocates (in their final dtype: a fp16 GPU
model never holds a fp32 copy of the network), and gives them to a network built on the meta device. Peak memory is
the weights once, as before; nothing stays mapped.

Anything this fast path does not recognise (a sharded or ``.bin`` checkpoint, keys in an old naming that diffusers
converts while loading, buffers the state dict does not hold) returns None, and the caller uses ``from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import torch

log = logging.getLogger(__name__)

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

#: The safetensors header is a JSON object behind its 8-byte length; anything larger is not a safetensors file.
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(
    path: Path, dtype: torch.dtype | None = None, expect: set[str] | None = None
) -> dict[str, torch.Tensor] | None:
    """All tensors of a ``.safetensors`` file, read (not mapped) into fresh tensors; floating-point ones cast to
    ``dtype`` one at a time when given. None, before any data is read, when the names differ from ``expect``.
    Raises ValueError for a file that is not a well-formed safetensors file."""
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb", buffering=0) as fh:
        (size,) = struct.unpack("<Q", fh.read(8).ljust(8, b"\xff"))
        if size > _MAX_HEADER:
            raise ValueError(f"{path.name}: not a safetensors file")
        try:
            header = json.loads(fh.read(size))
        except ValueError as exc:
            raise ValueError(f"{path.name}: not a safetensors file") from exc
        base = 8 + size
        entries = sorted(
            ((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]
        )
        if expect is not None and {k for k, _ in entries} != expect:
            return None
        for name, entry in entries:
            stored = _DTYPES.get(entry["dtype"])
            if stored is None:
                raise ValueError(f"{path.name}: tensor {name} has unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            tensor = torch.empty(entry["shape"], dtype=stored)
            nbytes = tensor.numel() * tensor.element_size()
            if nbytes != end - begin:
                raise ValueError(f"{path.name}: tensor {name} has {end - begin} bytes, its shape needs {nbytes}")
            if nbytes:
                fh.seek(base + begin)
                view = memoryview(tensor.view(-1).view(torch.uint8).numpy())
                if fh.readinto(view) != nbytes:
                    raise ValueError(f"{path.name}: truncated at tensor {name}")
            if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            out[name] = tensor
    return out


def load_read(cls: type, folder: Path, dtype: torch.dtype) -> torch.nn.Module | None:
    """``cls`` (a diffusers model class) from ``folder`` with its weights read by :func:`read_safetensors`, or None
    when the folder is not one this fast path handles exactly (the caller then uses ``from_pretrained``)."""
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        return None
    config = cls.load_config(str(folder))
    with torch.device("meta"):
        model = cls.from_config(config)
    state = read_safetensors(weights, dtype, expect=set(model.state_dict()))
    if state is None:
        log.debug("%s: names differ from %s's, loading with diffusers", weights, cls.__name__)
        return None
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return None
    return model.eval()
