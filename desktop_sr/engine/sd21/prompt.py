"""CLIP text embeddings for the UNet's cross-attention, without keeping the text encoder in memory.

The empty prompt (the paper's inference default) is encoded once and stored in the app's cache folder
(platformdirs), keyed by a fingerprint of the text encoder: never in the model folder, which may be read-only,
shared between users, or under a checksum its owner keeps. A typed description loads the text encoder on
demand, encodes, and frees it again; the last few prompts stay memoised.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections import OrderedDict
from pathlib import Path

import platformdirs
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ... import durable
from ..errors import ModelError

log = logging.getLogger(__name__)


def _encoder_fingerprint(base_dir: Path) -> str:
    """Identifies the text encoder + tokenizer so a stored embedding is never reused for another model: their
    configs and vocabularies by content, the weight files by name, size and modification time (hashing 1.4 GB of
    weights at every start would cost seconds)."""
    h = hashlib.sha256()
    for rel in ("text_encoder/config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"):
        p = base_dir / rel
        if p.is_file():
            h.update(rel.encode())
            h.update(p.read_bytes())
    for weights in sorted((base_dir / "text_encoder").glob("*.safetensors")) + sorted(
        (base_dir / "text_encoder").glob("*.bin")
    ):
        st = weights.stat()
        h.update(f"{weights.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class PromptEmbeddings:
    """Gives ``(1, 77, D)`` prompt embeddings on the model's device and dtype."""

    def __init__(self, base_dir: Path, device: torch.device, dtype: torch.dtype, cache_dir: Path | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.device = device
        self.dtype = dtype
        self.cache_dir = Path(cache_dir) if cache_dir else Path(platformdirs.user_cache_dir("desktop-sr")) / "prompts"
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.encoder_loads = 0  # how often the text encoder was loaded (tests check it is not kept around)

    def get(self, prompt: str) -> torch.Tensor:
        prompt = prompt.strip()
        if prompt in self._memo:
            self._memo.move_to_end(prompt)
            return self._memo[prompt]
        emb = self._load_or_make_empty() if prompt == "" else self._encode([prompt])[0:1]
        emb = emb.to(self.device, self.dtype)
        self._memo[prompt] = emb
        while len(self._memo) > 8:
            self._memo.popitem(last=False)
        return emb

    # -- the stored empty-prompt embedding --------------------------------------------------------------------
    def _load_or_make_empty(self) -> torch.Tensor:
        fingerprint = _encoder_fingerprint(self.base_dir)
        path = self.cache_dir / f"{fingerprint}.safetensors"
        if path.is_file():
            try:
                tensors = load_file(str(path))
                with open(path, "rb") as fh:  # the fingerprint lives in the header metadata
                    header_len = int.from_bytes(fh.read(8), "little")
                    meta = json.loads(fh.read(header_len)).get("__metadata__", {})
            except (SafetensorError, OSError, ValueError) as exc:
                log.warning("ignoring unreadable stored prompt embedding %s: %s", path, exc)
            else:
                if meta.get("fingerprint") == fingerprint and "embeds" in tensors:
                    return tensors["embeds"]
        emb = self._encode([""])[0:1].contiguous()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"fingerprint": fingerprint, "prompt": ""}
            durable.replace_with(path, lambda tmp: save_file({"embeds": emb}, str(tmp), metadata=meta))
        except OSError as exc:  # a full or read-only cache only costs an encode next time
            log.info("cannot store the prompt embedding at %s (%s)", path, exc)
        return emb

    # -- the text encoder, loaded only while needed --------------------------------------------------------------
    def _encode(self, prompts: list[str]) -> torch.Tensor:
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        tok_dir, enc_dir = self.base_dir / "tokenizer", self.base_dir / "text_encoder"
        for folder in (tok_dir, enc_dir):
            if not folder.is_dir():
                raise ModelError(folder, "missing; the text encoder and tokenizer are needed to encode the prompt")
        try:
            tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
            encoder = CLIPTextModel.from_pretrained(str(enc_dir), torch_dtype=torch.float32)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(enc_dir, f"cannot load the text encoder ({exc})") from exc
        self.encoder_loads += 1
        try:
            encoder.eval()
            ids = tokenizer(
                prompts,
                max_length=tokenizer.model_max_length,
                padding="max_length",
                truncation=True,
                return_tensors="pt",
            ).input_ids
            with torch.no_grad():
                return encoder(ids)[0].detach().to(torch.float32).cpu()
        finally:
            del encoder
            gc.collect()
